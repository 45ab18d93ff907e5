//! The fill RPC's wire format: `GET /internal/fill?<query>` with seven form-urlencoded
//! parameters.
//!
//! Encoding is byte-compatible with Go's `url.Values.Encode`: keys in sorted byte order
//! (`bucket, chunk_size, etag, index, key, object_size, origin_id`), space as `+`, every byte but
//! `A-Z a-z 0-9 - _ . ~` percent-encoded with upper-case hex. Decoding follows the listener rules
//! of the design: numbers are plain decimal, `chunk_size` and `object_size` are positive,
//! `origin_id` and `key` are non-empty, unknown parameters are ignored, a repeated parameter
//! uses its first value, and, unlike Go, a chunk that starts at or past the end of the object or
//! whose offset overflows is rejected. Every error names the parameter.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::chunk::{ChunkError, ChunkKey};

/// Path of the fill RPC.
pub const FILL_PATH: &str = "/internal/fill";
/// Name of the header that marks a request as internal; its value must be [`INTERNAL_HEADER_VALUE`].
pub const INTERNAL_HEADER: &str = "x-orca-internal";
/// Required value of [`INTERNAL_HEADER`].
pub const INTERNAL_HEADER_VALUE: &str = "1";

/// One of the seven query parameters of the fill RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    /// `bucket` — [`ChunkKey::bucket`].
    Bucket,
    /// `chunk_size` — [`ChunkKey::chunk_size`].
    ChunkSize,
    /// `etag` — [`ChunkKey::etag`].
    Etag,
    /// `index` — [`ChunkKey::index`].
    Index,
    /// `key` — [`ChunkKey::object_key`].
    Key,
    /// `object_size` — the authoritative size of the whole object in bytes.
    ObjectSize,
    /// `origin_id` — [`ChunkKey::origin_id`].
    OriginId,
}

impl Param {
    /// All parameters in wire (sorted) order.
    pub const ALL: [Param; 7] = [
        Param::Bucket,
        Param::ChunkSize,
        Param::Etag,
        Param::Index,
        Param::Key,
        Param::ObjectSize,
        Param::OriginId,
    ];

    /// The parameter's name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Param::Bucket => "bucket",
            Param::ChunkSize => "chunk_size",
            Param::Etag => "etag",
            Param::Index => "index",
            Param::Key => "key",
            Param::ObjectSize => "object_size",
            Param::OriginId => "origin_id",
        }
    }

    fn from_name(name: &[u8]) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.name().as_bytes() == name)
    }

    const fn slot(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a fill query was rejected. Every variant names the offending parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The parameter is absent.
    Missing(Param),
    /// The parameter is present but empty where a value is required.
    Empty(Param),
    /// The parameter has a malformed percent-escape.
    BadEscape(Param),
    /// The parameter's decoded bytes are not UTF-8.
    NotUtf8(Param),
    /// The parameter is not a plain decimal number that fits in 64 bits.
    NotDecimal(Param),
    /// The parameter is zero where a positive number is required.
    Zero(Param),
    /// `index`: the chunk starts at or past the end of the object.
    IndexPastEnd {
        /// The chunk index.
        index: u64,
        /// The chunk size in bytes.
        chunk_size: u64,
        /// The object size in bytes.
        object_size: u64,
    },
    /// `index`: `index * chunk_size` overflows 64 bits.
    OffsetOverflow {
        /// The chunk index.
        index: u64,
        /// The chunk size in bytes.
        chunk_size: u64,
    },
    /// `chunk_size`: above the listener's maximum
    /// ([`crate::ClusterConfig::max_chunk_size`]); reported by admission, not by
    /// [`decode_query`].
    ChunkSizeTooLarge {
        /// The chunk size in bytes.
        chunk_size: u64,
        /// The maximum in bytes.
        max: u64,
    },
}

impl DecodeError {
    /// The parameter the error is about.
    pub fn param(&self) -> Param {
        match self {
            DecodeError::Missing(p)
            | DecodeError::Empty(p)
            | DecodeError::BadEscape(p)
            | DecodeError::NotUtf8(p)
            | DecodeError::NotDecimal(p)
            | DecodeError::Zero(p) => *p,
            DecodeError::IndexPastEnd { .. } | DecodeError::OffsetOverflow { .. } => Param::Index,
            DecodeError::ChunkSizeTooLarge { .. } => Param::ChunkSize,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Missing(p) => write!(f, "{p}: missing"),
            DecodeError::Empty(p) => write!(f, "{p}: must not be empty"),
            DecodeError::BadEscape(p) => write!(f, "{p}: malformed percent-escape"),
            DecodeError::NotUtf8(p) => write!(f, "{p}: not valid UTF-8"),
            DecodeError::NotDecimal(p) => write!(f, "{p}: not a decimal number below 2^64"),
            DecodeError::Zero(p) => write!(f, "{p}: must be greater than zero"),
            DecodeError::IndexPastEnd {
                index,
                chunk_size,
                object_size,
            } => write!(
                f,
                "index: chunk {index} of size {chunk_size} starts at or past the end of an object of {object_size} bytes"
            ),
            DecodeError::OffsetOverflow { index, chunk_size } => write!(
                f,
                "index: chunk {index} of size {chunk_size} starts past 2^64 bytes"
            ),
            DecodeError::ChunkSizeTooLarge { chunk_size, max } => write!(
                f,
                "chunk_size: {chunk_size} bytes is above the maximum of {max} bytes"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// A decoded fill request: the chunk and the authoritative object size.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct FillQuery {
    /// The requested chunk.
    pub key: ChunkKey,
    /// Size of the whole object in bytes (> 0).
    pub object_size: u64,
}

impl FillQuery {
    /// Length in bytes of the chunk's body. Always > 0 for a query returned by [`decode_query`].
    pub fn expected_len(&self) -> Result<u64, ChunkError> {
        self.key.expected_len(self.object_size)
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[allow(clippy::indexing_slicing)] // nibbles are < 16
fn push_escaped(out: &mut String, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
            }
        }
    }
}

/// Encodes the query string (without the leading `?`) of a fill request, byte-compatible with
/// Go's `url.Values.Encode`.
///
/// ```
/// use orca_cluster_core::{ChunkKey, wire::encode_query};
/// let key = ChunkKey {
///     origin_id: "s3".into(), bucket: "b".into(), object_key: "a b/c".into(),
///     etag: "\"x\"".into(), chunk_size: 8, index: 1,
/// };
/// assert_eq!(
///     encode_query(&key, 20),
///     "bucket=b&chunk_size=8&etag=%22x%22&index=1&key=a+b%2Fc&object_size=20&origin_id=s3"
/// );
/// ```
pub fn encode_query(key: &ChunkKey, object_size: u64) -> String {
    let mut out = String::with_capacity(
        96 + key.origin_id.len() + key.bucket.len() + key.object_key.len() + key.etag.len(),
    );
    for (i, param) in Param::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(param.name());
        out.push('=');
        match param {
            Param::Bucket => push_escaped(&mut out, &key.bucket),
            Param::ChunkSize => push_decimal(&mut out, key.chunk_size),
            Param::Etag => push_escaped(&mut out, &key.etag),
            Param::Index => push_decimal(&mut out, key.index),
            Param::Key => push_escaped(&mut out, &key.object_key),
            Param::ObjectSize => push_decimal(&mut out, object_size),
            Param::OriginId => push_escaped(&mut out, &key.origin_id),
        }
    }
    out
}

fn push_decimal(out: &mut String, v: u64) {
    use core::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Form-decodes one component (`+` is space, `%XX` is a byte). `None` on a malformed escape.
fn unescape(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut iter = raw.iter();
    while let Some(&b) = iter.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_value(*iter.next()?)?;
                let lo = hex_value(*iter.next()?)?;
                out.push((hi << 4) | lo);
            }
            _ => out.push(b),
        }
    }
    Some(out)
}

fn parse_decimal(param: Param, value: &str) -> Result<u64, DecodeError> {
    if value.is_empty() {
        return Err(DecodeError::Empty(param));
    }
    let mut n: u64 = 0;
    for b in value.bytes() {
        let digit = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return Err(DecodeError::NotDecimal(param)),
        };
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(digit))
            .ok_or(DecodeError::NotDecimal(param))?;
    }
    Ok(n)
}

/// Decodes and validates the query string (without the leading `?`) of a fill request.
///
/// Never panics, whatever the input. See the module docs for the rules.
#[allow(clippy::indexing_slicing)] // `Param::slot` is < 7, the array's length
pub fn decode_query(query: &str) -> Result<FillQuery, DecodeError> {
    let mut raw: [Option<&[u8]>; 7] = [None; 7];
    for pair in query.as_bytes().split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (
                pair.get(..at).unwrap_or(&[]),
                pair.get(at + 1..).unwrap_or(&[]),
            ),
            None => (pair, &[][..]),
        };
        // Parameter names are plain ASCII; an escaped name is an unknown parameter (ignored),
        // unless it decodes to a known name.
        let decoded_name;
        let name = if name.iter().any(|&b| b == b'%' || b == b'+') {
            match unescape(name) {
                Some(n) => {
                    decoded_name = n;
                    &decoded_name[..]
                }
                None => continue,
            }
        } else {
            name
        };
        if let Some(param) = Param::from_name(name) {
            let slot = &mut raw[param.slot()];
            if slot.is_none() {
                *slot = Some(value);
            }
        }
    }

    let text = |param: Param| -> Result<String, DecodeError> {
        let value = raw[param.slot()].ok_or(DecodeError::Missing(param))?;
        let bytes = unescape(value).ok_or(DecodeError::BadEscape(param))?;
        String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8(param))
    };
    let number = |param: Param| -> Result<u64, DecodeError> { parse_decimal(param, &text(param)?) };

    let origin_id = text(Param::OriginId)?;
    if origin_id.is_empty() {
        return Err(DecodeError::Empty(Param::OriginId));
    }
    let bucket = text(Param::Bucket)?;
    let object_key = text(Param::Key)?;
    if object_key.is_empty() {
        return Err(DecodeError::Empty(Param::Key));
    }
    let etag = text(Param::Etag)?;
    let chunk_size = number(Param::ChunkSize)?;
    if chunk_size == 0 {
        return Err(DecodeError::Zero(Param::ChunkSize));
    }
    let index = number(Param::Index)?;
    let object_size = number(Param::ObjectSize)?;
    if object_size == 0 {
        return Err(DecodeError::Zero(Param::ObjectSize));
    }
    let start = index
        .checked_mul(chunk_size)
        .ok_or(DecodeError::OffsetOverflow { index, chunk_size })?;
    if start >= object_size {
        return Err(DecodeError::IndexPastEnd {
            index,
            chunk_size,
            object_size,
        });
    }
    Ok(FillQuery {
        key: ChunkKey {
            origin_id,
            bucket,
            object_key,
            etag,
            chunk_size,
            index,
        },
        object_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn key() -> ChunkKey {
        ChunkKey {
            origin_id: "azure-eastus".into(),
            bucket: "models".into(),
            object_key: "llama/weights/shard 00042.safetensors".into(),
            etag: "\"9b2c\"".into(),
            chunk_size: 8_388_608,
            index: 3,
        }
    }

    #[test]
    fn encodes_like_go_url_values() {
        // Expected string follows Go's url.QueryEscape rules (space '+', '/' and '"' escaped, '~' kept).
        assert_eq!(
            encode_query(&key(), 40_000_000),
            "bucket=models&chunk_size=8388608&etag=%229b2c%22&index=3&key=llama%2Fweights%2Fshard+00042.safetensors&object_size=40000000&origin_id=azure-eastus"
        );
        let mut k = key();
        k.object_key = "~a*b!'()é".into();
        let q = encode_query(&k, 40_000_000);
        assert!(q.contains("key=~a%2Ab%21%27%28%29%C3%A9&"), "{q}");
    }

    #[test]
    fn round_trips() {
        let q = encode_query(&key(), 40_000_000);
        let d = decode_query(&q).unwrap();
        assert_eq!(d.key, key());
        assert_eq!(d.object_size, 40_000_000);
        assert_eq!(d.expected_len(), Ok(8_388_608));
    }

    #[test]
    fn rejections_name_the_parameter() {
        let good = encode_query(&key(), 40_000_000);
        let cases: &[(&str, &str, DecodeError)] = &[
            (
                "chunk_size=8388608",
                "chunk_size=0",
                DecodeError::Zero(Param::ChunkSize),
            ),
            (
                "chunk_size=8388608",
                "chunk_size=-1",
                DecodeError::NotDecimal(Param::ChunkSize),
            ),
            (
                "chunk_size=8388608",
                "chunk_size=",
                DecodeError::Empty(Param::ChunkSize),
            ),
            ("index=3", "index=x", DecodeError::NotDecimal(Param::Index)),
            (
                "index=3",
                "index=99999999999999999999",
                DecodeError::NotDecimal(Param::Index),
            ),
            (
                "object_size=40000000",
                "object_size=0",
                DecodeError::Zero(Param::ObjectSize),
            ),
            (
                "origin_id=azure-eastus",
                "origin_id=",
                DecodeError::Empty(Param::OriginId),
            ),
            (
                "origin_id=azure-eastus",
                "origin_idx=a",
                DecodeError::Missing(Param::OriginId),
            ),
            ("key=llama", "key=%zz", DecodeError::BadEscape(Param::Key)),
            (
                "etag=%229b2c%22",
                "etag=%FF",
                DecodeError::NotUtf8(Param::Etag),
            ),
        ];
        for (from, to, want) in cases {
            let q = good.replacen(from, to, 1);
            let err = decode_query(&q).unwrap_err();
            assert_eq!(&err, want, "{q}");
            assert!(format!("{err}").starts_with(want.param().name()), "{err}");
        }
        let q = good.replacen("key=llama%2Fweights%2Fshard+00042.safetensors", "key=", 1);
        assert_eq!(decode_query(&q), Err(DecodeError::Empty(Param::Key)));
    }

    #[test]
    fn index_past_end_and_overflow_rejected() {
        let q = "bucket=&chunk_size=10&etag=&index=3&key=k&object_size=30&origin_id=o";
        assert!(matches!(
            decode_query(q),
            Err(DecodeError::IndexPastEnd { .. })
        ));
        let q = "bucket=&chunk_size=10&etag=&index=2&key=k&object_size=30&origin_id=o";
        assert_eq!(decode_query(q).unwrap().expected_len(), Ok(10));
        let q = "bucket=&chunk_size=18446744073709551615&etag=&index=2&key=k&object_size=30&origin_id=o";
        assert!(matches!(
            decode_query(q),
            Err(DecodeError::OffsetOverflow { .. })
        ));
    }

    #[test]
    fn empty_bucket_and_etag_allowed_unknown_ignored_first_value_wins() {
        let q = "zzz=1&bucket=&chunk_size=10&etag=&index=0&key=k&key=other&object_size=5&origin_id=o&index=7";
        let d = decode_query(q).unwrap();
        assert_eq!(d.key.object_key, "k");
        assert_eq!(d.key.index, 0);
        assert_eq!(d.expected_len(), Ok(5));
        for p in Param::ALL {
            let q = q.replace(&format!("{}=", p.name()), "ignored=");
            assert_eq!(decode_query(&q).unwrap_err().param(), p);
        }
    }

    #[test]
    fn garbage_never_panics() {
        for q in [
            "",
            "&&&",
            "=",
            "%",
            "%%",
            "a=%",
            "a=%4",
            "%zz=1",
            "index=%41",
            "\u{0}=\u{0}",
        ] {
            let _ = decode_query(q);
        }
    }

    proptest::proptest! {
        #[test]
        fn prop_round_trip(
            origin_id in ".{1,20}", bucket in ".{0,20}", object_key in ".{1,40}", etag in ".{0,20}",
            chunk_size in 1u64..=u64::MAX, index in 0u64..1_000_000, extra in 1u64..=u64::MAX,
        ) {
            let key = ChunkKey { origin_id, bucket, object_key, etag, chunk_size, index };
            if let Some(start) = index.checked_mul(chunk_size) {
                let object_size = start.saturating_add(extra);
                if object_size > start {
                    let q = encode_query(&key, object_size);
                    let d = decode_query(&q).unwrap();
                    proptest::prop_assert_eq!(d.key, key);
                    proptest::prop_assert_eq!(d.object_size, object_size);
                }
            }
        }

        #[test]
        fn prop_decode_never_panics(s in ".{0,200}") {
            let _ = decode_query(&s);
        }
    }
}
