//! Helpers shared by the `h1_*` targets.

use orca_cluster_core::fill::{DeclaredFraming, HeaderProblem, MalformedHeader};
use orca_cluster_core::h1::{HeadError, Parsed};

/// The head limit a target runs with, from one input byte: small limits reach the size checks,
/// the large one lets long heads complete.
pub(crate) fn head_limit(byte: u8) -> usize {
    match byte % 4 {
        0 => 1 + usize::from(byte / 4), // 1..=64
        1 => 256,
        2 => 1024,
        _ => 16 * 1024,
    }
}

/// Spaces and tabs trimmed on both sides (the reference reading of a header value).
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Reproducible cut points from a 16-bit seed (SplitMix64).
pub(crate) struct Cuts(u64);

impl Cuts {
    pub(crate) fn new(seed: u16) -> Cuts {
        Cuts(u64::from(seed) ^ 0x5eed_1234_abcd_0000)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Sorted end points of the pieces to feed `len` bytes in; the last is `len`. Sometimes
    /// one byte at a time, sometimes a few random cuts.
    pub(crate) fn points(&mut self, len: usize) -> Vec<usize> {
        let mut points: Vec<usize> = if len <= 512 && self.below(4) == 0 {
            (1..len).collect()
        } else {
            let n = self.below(8);
            (0..n).map(|_| self.below(len + 1)).collect()
        };
        points.push(len);
        points.sort_unstable();
        points
    }
}

/// The framing a reference reading of the header lines gives, following the documented
/// rules independently of `fill::declared_framing`.
pub(crate) fn reference_framing(
    headers: &[httparse::Header<'_>],
) -> Result<DeclaredFraming, MalformedHeader> {
    let lengths: Vec<&[u8]> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value)
        .collect();
    let codings: Vec<&[u8]> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|h| h.value)
        .collect();
    let bad = |field, problem| MalformedHeader { field, problem };
    let length = match lengths.as_slice() {
        [] => None,
        [one] if !one.contains(&b',') => {
            let text = std::str::from_utf8(trim_ows(one)).unwrap_or("x");
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("content-length", HeaderProblem::NotDigits));
            }
            // Digits only: the one failure left is overflow.
            Some(
                text.parse::<u64>()
                    .map_err(|_| bad("content-length", HeaderProblem::Overflow))?,
            )
        }
        _ => return Err(bad("content-length", HeaderProblem::Repeated)),
    };
    let chunked = match codings.as_slice() {
        [] => false,
        [one] if !one.contains(&b',') => {
            if !trim_ows(one).eq_ignore_ascii_case(b"chunked") {
                return Err(bad("transfer-encoding", HeaderProblem::UnsupportedCoding));
            }
            true
        }
        _ => return Err(bad("transfer-encoding", HeaderProblem::Repeated)),
    };
    match (length, chunked) {
        (Some(_), true) => Err(bad("transfer-encoding", HeaderProblem::WithContentLength)),
        (Some(n), false) => Ok(DeclaredFraming::Length(n)),
        (None, true) => Ok(DeclaredFraming::Chunked),
        (None, false) => Ok(DeclaredFraming::Absent),
    }
}

/// The prefix rule of both head parsers: every prefix of `msg` shorter than a complete head
/// parses as `Partial`; a prefix holding the complete head parses as the whole input does; no
/// prefix is complete when the whole input is not; and a prefix does not fail when the whole
/// input is merely partial. Checks every prefix of short inputs, 16 random ones of long inputs.
pub(crate) fn check_prefixes<'m, T: PartialEq + core::fmt::Debug>(
    msg: &'m [u8],
    max_head: usize,
    full: &Result<Parsed<T>, HeadError>,
    parse: impl Fn(&'m [u8], usize) -> Result<Parsed<T>, HeadError>,
    cuts: &mut Cuts,
) {
    let lens: Vec<usize> = if msg.len() <= 96 {
        (0..=msg.len()).collect()
    } else {
        (0..16).map(|_| cuts.below(msg.len() + 1)).collect()
    };
    for k in lens {
        let prefix = parse(&msg[..k], max_head);
        match (full, &prefix) {
            (Ok(Parsed::Complete { consumed, .. }), _) if k < *consumed => {
                assert_eq!(prefix, Ok(Parsed::Partial), "prefix of {k} bytes");
            }
            (Ok(Parsed::Complete { .. }), _) => assert_eq!(&prefix, full, "prefix of {k}"),
            (_, Ok(Parsed::Complete { .. })) => {
                panic!("prefix of {k} bytes complete, whole input {full:?}")
            }
            (Ok(Parsed::Partial), Err(e)) => {
                panic!("prefix of {k} bytes failed ({e}), whole input partial")
            }
            _ => {}
        }
    }
}
