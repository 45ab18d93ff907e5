//! `h1_request`: the listener side of the HTTP/1.1 codec — the request head parser — on
//! arbitrary bytes, plus the response head encoder on values taken from the same input.
//!
//! Input layout: byte 0 picks the head limit, bytes 1..3 seed the prefix lengths tried, the
//! rest is the request as received. Invariants:
//!
//! - any prefix parses as `Partial` before the head's end and as the same head from there on;
//!   an error on a prefix stays an error on the whole;
//! - a head agrees with a reference reading by `httparse`: method, raw target, version, every
//!   header line in order (so a repeated `x-orca-internal` is two values), `Host`, framing
//!   rules, keep-alive, whether a body follows; no non-ASCII or NUL byte in an accepted head;
//!   `consumed <= max_head`;
//! - `path()` and `query()` re-assemble the target's origin-form part exactly (nothing
//!   normalised);
//! - an encoded response head parses back (through the client parser) to its status, length
//!   and `connection: close`.

use orca_cluster_core::fill::{DeclaredFraming, HeaderProblem, MalformedHeader};
use orca_cluster_core::h1::{
    self, BodyFraming, HeadError, MAX_HEADERS, Parsed, RequestHead, ResponseSpec, Version,
};

use crate::h1_common::{Cuts, check_prefixes, head_limit, reference_framing, trim_ows};

pub fn h1_request(data: &[u8]) {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let Some((seed, msg)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let max_head = head_limit(limit);
    let mut cuts = Cuts::new(u16::from_le_bytes(*seed));

    let full = h1::parse_request_head(msg, max_head);
    if let Err(e) = &full {
        let _ = e.to_string();
        let status = e.status();
        assert!(status == 400 || status == 431, "{e:?} answered {status}");
        assert_eq!(
            status == 431,
            matches!(
                e,
                HeadError::TooLarge { .. } | HeadError::TooManyHeaders { .. }
            )
        );
    }
    check_prefixes(msg, max_head, &full, h1::parse_request_head, &mut cuts);
    check_reference(msg, max_head, &full);
    if let Ok(Parsed::Complete { head, consumed }) = &full {
        assert!(*consumed <= max_head && *consumed <= msg.len());
        check_target(head);
    }
    encode_round_trip(msg, &mut cuts);
}

fn has_bad_byte(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == 0 || b >= 0x80)
}

fn check_reference(msg: &[u8], max_head: usize, full: &Result<Parsed<RequestHead<'_>>, HeadError>) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(msg) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            let want = if has_bad_byte(msg) {
                Err(HeadError::NotAscii)
            } else if msg.len() >= max_head {
                Err(HeadError::TooLarge { limit: max_head })
            } else {
                Ok(Parsed::Partial)
            };
            assert_eq!(full, &want);
            return;
        }
        Err(e) => {
            match full {
                Err(HeadError::NotAscii) => assert!(has_bad_byte(msg)),
                Err(HeadError::TooManyHeaders { .. }) => {
                    assert_eq!(e, httparse::Error::TooManyHeaders)
                }
                Err(HeadError::Malformed { .. }) => {
                    assert_ne!(e, httparse::Error::TooManyHeaders)
                }
                other => panic!("httparse refused ({e}), codec gave {other:?}"),
            }
            return;
        }
    };
    if has_bad_byte(&msg[..len]) {
        assert_eq!(full, &Err(HeadError::NotAscii));
        return;
    }
    if len > max_head {
        assert_eq!(full, &Err(HeadError::TooLarge { limit: max_head }));
        return;
    }
    let target = request.path.expect("complete");
    let lower = target.to_ascii_lowercase();
    if !(target.starts_with('/') || lower.starts_with("http://") || lower.starts_with("https://")) {
        assert_eq!(
            full,
            &Err(HeadError::Malformed {
                part: "request-target"
            })
        );
        return;
    }
    let http10 = request.version == Some(0);
    let hosts: Vec<&[u8]> = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value)
        .collect();
    if hosts.len() > 1 || (hosts.is_empty() && !http10) {
        assert_eq!(full, &Err(HeadError::Malformed { part: "host" }));
        return;
    }
    let declared = match reference_framing(request.headers) {
        Ok(DeclaredFraming::Chunked) if http10 => Err(MalformedHeader {
            field: "transfer-encoding",
            problem: HeaderProblem::InHttp10,
        }),
        other => other,
    };
    let declared = match declared {
        Ok(d) => d,
        Err(e) => {
            assert_eq!(full, &Err(HeadError::Framing(e)));
            return;
        }
    };
    let Ok(Parsed::Complete { head, consumed }) = full else {
        panic!("reference parsed a head, codec gave {full:?}");
    };
    assert_eq!(*consumed, len);
    assert_eq!(Some(head.method), request.method);
    assert_eq!(head.target, target);
    assert_eq!(
        head.version,
        if http10 {
            Version::Http10
        } else {
            Version::Http11
        }
    );
    assert_eq!(head.host.map(str::as_bytes), hosts.first().copied());
    assert_eq!(head.declared, declared);
    // Every header line, in order, as httparse read it.
    let ours: Vec<(&str, &[u8])> = head.headers().map(|f| (f.name, f.value)).collect();
    let theirs: Vec<(&str, &[u8])> = request.headers.iter().map(|h| (h.name, h.value)).collect();
    assert_eq!(ours, theirs);
    let internal: Vec<&[u8]> = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-orca-internal"))
        .map(|h| h.value)
        .collect();
    assert_eq!(head.internal_values().collect::<Vec<_>>(), internal);
    let close = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|t| trim_ows(t).eq_ignore_ascii_case(b"close"));
    assert_eq!(head.keep_alive, !http10 && !close);
    assert_eq!(
        head.has_body,
        matches!(declared, DeclaredFraming::Chunked)
            || matches!(declared, DeclaredFraming::Length(n) if n > 0)
    );
}

fn check_target(head: &RequestHead<'_>) {
    let origin = if head.target.starts_with('/') {
        head.target
    } else {
        let after = &head.target[head.target.find("://").expect("absolute-form") + 3..];
        after.find(['/', '?']).map_or("", |i| &after[i..])
    };
    let mut rebuilt = head.path().to_string();
    if let Some(q) = head.query() {
        rebuilt.push('?');
        rebuilt.push_str(q);
    }
    assert_eq!(rebuilt, origin, "path and query re-assemble the target");
    assert!(!head.path().contains('?'));
}

/// Encodes a response head from values taken from `msg`, then parses it back.
fn encode_round_trip(msg: &[u8], cuts: &mut Cuts) {
    let status = 100 + cuts.below(900) as u16;
    let content_length = cuts.below(usize::MAX).wrapping_mul(7) as u64;
    let close = cuts.below(2) == 0;
    let text = String::from_utf8_lossy(&msg[..msg.len().min(40)]);
    let (content_type, allow) = text.split_once(' ').unwrap_or((&text, ""));
    let spec = ResponseSpec {
        status,
        content_type,
        content_length,
        allow: (!allow.is_empty()).then_some(allow),
        close,
    };
    let mut out = b"prefix".to_vec();
    match h1::encode_response_head(&spec, &mut out) {
        Err(e) => {
            assert_eq!(out, b"prefix", "a refused head left bytes behind");
            let _ = e.to_string();
            let valid = |v: &str| {
                v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
                    && !v.starts_with([' ', '\t'])
                    && !v.ends_with([' ', '\t'])
            };
            assert!(!valid(content_type) || !spec.allow.is_none_or(valid));
        }
        Ok(()) => {
            let encoded = &out[6..];
            match h1::parse_response_head(encoded, encoded.len()) {
                Ok(Parsed::Complete { head, consumed }) => {
                    assert_eq!(consumed, encoded.len());
                    assert_eq!(head.status, status);
                    assert_eq!(head.declared, DeclaredFraming::Length(content_length));
                    if !matches!(status, 204 | 304) {
                        assert_eq!(head.body, BodyFraming::Length(content_length));
                    }
                    assert_eq!(head.keep_alive, !close);
                }
                // Interim statuses are skipped by the client parser; 101 is refused.
                Ok(Parsed::Partial) => assert!((100..200).contains(&status) && status != 101),
                Err(HeadError::SwitchingProtocols) => assert_eq!(status, 101),
                Err(e) => panic!(
                    "encoded head {:?} refused: {e}",
                    String::from_utf8_lossy(encoded)
                ),
            }
        }
    }
}
