//! `h1_response`: the client side of the HTTP/1.1 codec — response head parser, fill verdict
//! and body decoder — on arbitrary bytes.
//!
//! Input layout: byte 0 picks the head limit, bytes 1..3 seed the cut points, the rest is the
//! response as received (head, then body). Invariants:
//!
//! - parsing any prefix of the response gives `Partial` before the head's end and the same
//!   head from there on; an error on a prefix stays an error on the whole;
//! - the head agrees with a reference reading of the same bytes by `httparse` (status, framing
//!   rules of `fill::declared_framing` re-derived independently, keep-alive);
//! - the body decoder, fed at once and fed in arbitrary cuts through a caller-style buffer,
//!   yields the same bytes, the same end and the same error, matching a whole-input reference
//!   decoder; `data.end <= consumed <= input.len()` at every step; a `Content-Length` body
//!   never yields more than declared.

use orca_cluster_core::fill::{
    DeclaredFraming, FillCheckError, HeaderProblem, MalformedHeader, ResponseVerdict,
};
use orca_cluster_core::h1::{
    self, BodyError, BodyFraming, HeadError, MAX_CHUNK_LINE, MAX_HEADERS, MAX_INTERIM_RESPONSES,
    MAX_TRAILERS, Parsed, ResponseHead, Version,
};

use crate::h1_common::{Cuts, check_prefixes, head_limit, reference_framing, trim_ows};

pub fn h1_response(data: &[u8]) {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let Some((seed, msg)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let max_head = head_limit(limit);
    let mut cuts = Cuts::new(u16::from_le_bytes(*seed));

    let full = h1::parse_response_head(msg, max_head);
    if let Err(e) = &full {
        let _ = e.to_string();
        let _ = e.status();
    }
    check_prefixes(msg, max_head, &full, h1::parse_response_head, &mut cuts);
    check_reference_head(msg, max_head, &full);

    let Ok(Parsed::Complete { head, consumed }) = full else {
        return;
    };
    assert!(consumed <= msg.len());
    check_verdict(&head, u64::from(u16::from_le_bytes(*seed)));
    check_verdict(
        &head,
        match head.declared {
            DeclaredFraming::Length(n) => n,
            _ => 0,
        },
    );
    check_body(&head, &msg[consumed..], &mut cuts);
}

fn check_reference_head(
    msg: &[u8],
    max_head: usize,
    full: &Result<Parsed<ResponseHead>, HeadError>,
) {
    let mut offset = 0;
    let mut interim = 0;
    loop {
        let rest = &msg[offset..];
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(rest) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if rest.len() >= max_head {
                    assert_eq!(full, &Err(HeadError::TooLarge { limit: max_head }));
                } else {
                    assert_eq!(full, &Ok(Parsed::Partial));
                }
                return;
            }
            Err(httparse::Error::TooManyHeaders) => {
                assert_eq!(full, &Err(HeadError::TooManyHeaders { limit: MAX_HEADERS }));
                return;
            }
            Err(_) => {
                assert!(
                    matches!(full, Err(HeadError::Malformed { .. })),
                    "httparse refused, codec gave {full:?}"
                );
                return;
            }
        };
        if len > max_head {
            assert_eq!(full, &Err(HeadError::TooLarge { limit: max_head }));
            return;
        }
        let code = response.code.expect("a complete head has a status");
        match code {
            0..=99 => {
                assert_eq!(
                    full,
                    &Err(HeadError::Malformed {
                        part: "status code"
                    })
                );
                return;
            }
            101 => {
                assert_eq!(full, &Err(HeadError::SwitchingProtocols));
                return;
            }
            100..=199 => {
                interim += 1;
                if interim > MAX_INTERIM_RESPONSES {
                    assert_eq!(
                        full,
                        &Err(HeadError::TooManyInterim {
                            limit: MAX_INTERIM_RESPONSES
                        })
                    );
                    return;
                }
                offset += len;
                continue;
            }
            _ => {}
        }
        let http10 = response.version == Some(0);
        let declared = match reference_framing(response.headers) {
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
        assert_eq!(*consumed, offset + len);
        assert_eq!(head.status, code);
        assert_eq!(
            head.version,
            if http10 {
                Version::Http10
            } else {
                Version::Http11
            }
        );
        assert_eq!(head.declared, declared);
        let body = match (code, declared) {
            (204 | 304, _) => BodyFraming::Empty,
            (_, DeclaredFraming::Absent) => BodyFraming::UntilClose,
            (_, DeclaredFraming::Length(n)) => BodyFraming::Length(n),
            (_, DeclaredFraming::Chunked) => BodyFraming::Chunked,
        };
        assert_eq!(head.body, body);
        let close = response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| trim_ows(t).eq_ignore_ascii_case(b"close"));
        assert_eq!(
            head.keep_alive,
            !http10 && !close && body != BodyFraming::UntilClose
        );
        return;
    }
}

fn check_verdict(head: &ResponseHead, expected: u64) {
    match head.classify(expected) {
        ResponseVerdict::Reject(FillCheckError::NotCoordinator) => assert_eq!(head.status, 409),
        ResponseVerdict::Reject(FillCheckError::LengthMismatch {
            declared,
            expected: e,
        }) => {
            assert!((200..=299).contains(&head.status));
            assert_eq!(head.declared, DeclaredFraming::Length(declared));
            assert_eq!(e, expected);
            assert_ne!(declared, expected);
        }
        ResponseVerdict::Reject(other) => panic!("unexpected rejection {other:?}"),
        ResponseVerdict::Body(check) => {
            assert!((200..=299).contains(&head.status));
            assert_eq!(check.expected(), expected);
            if let DeclaredFraming::Length(n) = head.declared {
                assert_eq!(n, expected);
            }
        }
        ResponseVerdict::ErrorBody(e) => {
            assert!(!(200..=299).contains(&head.status) && head.status != 409);
            assert_eq!(e.code(), head.status);
        }
    }
}

/// What decoding a whole body gave.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    /// Input bytes the body took, when it ended by its framing.
    end: Option<usize>,
    error: Option<BodyError>,
    /// `finish()` at end of input, when the body had not ended.
    eof: Option<Result<(), BodyError>>,
    reusable: bool,
}

/// Feeds `body` in pieces ending at `points` (sorted, last = len) through a caller buffer.
fn decode(head: &ResponseHead, body: &[u8], points: &[usize]) -> Outcome {
    let mut decoder = head.body_decoder();
    let mut buf: Vec<u8> = Vec::new();
    let mut data = Vec::new();
    let mut taken = 0usize;
    let mut from = 0;
    for &to in points {
        buf.extend_from_slice(&body[from..to]);
        from = to;
        loop {
            match decoder.decode(&buf) {
                Err(e) => {
                    let _ = e.to_string();
                    return Outcome {
                        data,
                        end: None,
                        error: Some(e),
                        eof: None,
                        reusable: decoder.is_reusable(),
                    };
                }
                Ok(step) => {
                    assert!(step.data.start <= step.data.end, "{step:?}");
                    assert!(step.data.end <= step.consumed, "{step:?}");
                    assert!(step.consumed <= buf.len(), "{step:?} of {}", buf.len());
                    data.extend_from_slice(&buf[step.data.clone()]);
                    if let BodyFraming::Length(n) = head.body {
                        assert!(data.len() as u64 <= n, "more than content-length {n}");
                    }
                    taken += step.consumed;
                    buf.drain(..step.consumed);
                    if step.done {
                        assert!(decoder.is_done());
                        return Outcome {
                            data,
                            end: Some(taken),
                            error: None,
                            eof: None,
                            reusable: decoder.is_reusable(),
                        };
                    }
                    if step.consumed == 0 {
                        assert!(buf.is_empty(), "nothing consumed from {} bytes", buf.len());
                        break;
                    }
                }
            }
        }
    }
    let eof = decoder.finish();
    Outcome {
        data,
        end: None,
        error: None,
        eof: Some(eof),
        reusable: decoder.is_reusable(),
    }
}

fn check_body(head: &ResponseHead, body: &[u8], cuts: &mut Cuts) {
    let whole = decode(head, body, &[body.len()]);
    let points = cuts.points(body.len());
    let split = decode(head, body, &points);
    // Bytes past the end make the connection unclean only when they arrive with the end; a
    // whole-input feed always delivers them with it.
    let Outcome {
        data,
        end,
        error,
        eof,
        reusable,
    } = &split;
    assert_eq!(
        (data, end, error, eof),
        (&whole.data, &whole.end, &whole.error, &whole.eof),
        "split at {points:?}"
    );
    if whole.reusable {
        assert!(*reusable, "reusable at once, not in pieces");
    } else {
        let past_end = whole.end.is_some_and(|e| e < body.len());
        assert!(!reusable || past_end, "reusable only in pieces");
    }

    let reference = reference_body(head.body, body);
    assert_eq!(whole.data, reference.data, "data against the reference");
    assert_eq!(whole.end, reference.end, "end against the reference");
    assert_eq!(whole.error, reference.error, "error against the reference");
    match head.body {
        BodyFraming::Empty => assert_eq!(whole.end, Some(0)),
        BodyFraming::UntilClose => {
            assert_eq!(whole.data, body);
            assert_eq!(whole.eof, Some(Ok(())));
            assert!(!whole.reusable);
        }
        BodyFraming::Length(n) => {
            assert!(whole.error.is_none());
            let got = whole.data.len() as u64;
            assert_eq!(got, n.min(body.len() as u64));
            if got < n {
                assert_eq!(
                    whole.eof,
                    Some(Err(BodyError::UnexpectedEof {
                        remaining: Some(n - got)
                    }))
                );
            }
        }
        BodyFraming::Chunked => {}
    }
    if whole.reusable {
        assert!(head.keep_alive && whole.end == Some(body.len()));
    }
}

/// A whole-input chunked decoder written from the documented grammar, as the oracle.
struct Reference {
    data: Vec<u8>,
    end: Option<usize>,
    error: Option<BodyError>,
}

fn reference_body(framing: BodyFraming, body: &[u8]) -> Reference {
    let done = |data: Vec<u8>, end| Reference {
        data,
        end: Some(end),
        error: None,
    };
    match framing {
        BodyFraming::Empty => done(Vec::new(), 0),
        BodyFraming::Length(n) => {
            let take = usize::try_from(n).map_or(body.len(), |n| n.min(body.len()));
            if take as u64 == n {
                done(body[..take].to_vec(), take)
            } else {
                Reference {
                    data: body.to_vec(),
                    end: None,
                    error: None,
                }
            }
        }
        BodyFraming::UntilClose => Reference {
            data: body.to_vec(),
            end: None,
            error: None,
        },
        BodyFraming::Chunked => reference_chunked(body),
    }
}

fn reference_chunked(body: &[u8]) -> Reference {
    let mut out = Reference {
        data: Vec::new(),
        end: None,
        error: None,
    };
    let fail = |mut out: Reference, e| {
        out.error = Some(e);
        out
    };
    let mut pos = 0;
    loop {
        // chunk-size line: 1*HEXDIG *(SP/HTAB) [";" ext-bytes] CRLF, at most MAX_CHUNK_LINE.
        let line_start = pos;
        let mut size: u64 = 0;
        let mut digits = 0;
        let mut in_ext = false;
        let mut spaces = false;
        loop {
            let Some(&b) = body.get(pos) else {
                return out; // incomplete
            };
            if pos - line_start + 2 > MAX_CHUNK_LINE {
                return fail(
                    out,
                    BodyError::ChunkLineTooLong {
                        limit: MAX_CHUNK_LINE,
                    },
                );
            }
            pos += 1;
            if in_ext {
                match b {
                    b'\r' => break,
                    b'\n' => {
                        return fail(
                            out,
                            BodyError::MissingCrlf {
                                after: "chunk size",
                            },
                        );
                    }
                    b'\t' => {}
                    0..=0x1f | 0x7f => return fail(out, BodyError::InvalidChunkLine),
                    _ => {}
                }
                continue;
            }
            match b {
                _ if b.is_ascii_hexdigit() && !spaces => {
                    let v = (b as char).to_digit(16).expect("hex") as u64;
                    size = match size.checked_mul(16).and_then(|s| s.checked_add(v)) {
                        Some(s) => s,
                        None => return fail(out, BodyError::ChunkSizeOverflow),
                    };
                    digits += 1;
                }
                b' ' | b'\t' if digits > 0 => spaces = true,
                b';' if digits > 0 => in_ext = true,
                b'\r' if digits > 0 => break,
                b'\n' if digits > 0 => {
                    return fail(
                        out,
                        BodyError::MissingCrlf {
                            after: "chunk size",
                        },
                    );
                }
                _ => return fail(out, BodyError::InvalidChunkLine),
            }
        }
        match body.get(pos) {
            None => return out,
            Some(b'\n') => pos += 1,
            Some(_) => {
                return fail(
                    out,
                    BodyError::MissingCrlf {
                        after: "chunk size",
                    },
                );
            }
        }
        if size == 0 {
            break;
        }
        let available = (body.len() - pos) as u64;
        if available < size {
            out.data.extend_from_slice(&body[pos..]);
            return out;
        }
        let end = pos + size as usize;
        out.data.extend_from_slice(&body[pos..end]);
        pos = end;
        for want in [b'\r', b'\n'] {
            match body.get(pos) {
                None => return out,
                Some(&b) if b == want => pos += 1,
                Some(_) => {
                    return fail(
                        out,
                        BodyError::MissingCrlf {
                            after: "chunk data",
                        },
                    );
                }
            }
        }
    }
    // Trailer section: lines ending in CRLF, then CRLF; at most MAX_TRAILERS bytes in all.
    let start = pos;
    let mut line_start = true;
    loop {
        let Some(&b) = body.get(pos) else {
            return out;
        };
        if pos - start + 1 > MAX_TRAILERS {
            return fail(
                out,
                BodyError::TrailersTooLarge {
                    limit: MAX_TRAILERS,
                },
            );
        }
        pos += 1;
        let at_line_start = line_start;
        match b {
            b'\r' => {
                let Some(&next) = body.get(pos) else {
                    return out;
                };
                if pos - start + 1 > MAX_TRAILERS {
                    return fail(
                        out,
                        BodyError::TrailersTooLarge {
                            limit: MAX_TRAILERS,
                        },
                    );
                }
                if next != b'\n' {
                    let after = if at_line_start {
                        "trailer section"
                    } else {
                        "trailer field"
                    };
                    return fail(out, BodyError::MissingCrlf { after });
                }
                pos += 1;
                if at_line_start {
                    out.end = Some(pos);
                    return out;
                }
                line_start = true;
            }
            b'\n' => {
                let after = if at_line_start {
                    "trailer section"
                } else {
                    "trailer field"
                };
                return fail(out, BodyError::MissingCrlf { after });
            }
            _ => line_start = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_reads_a_chunked_body() {
        let r = reference_chunked(b"3;x\r\nabc\r\n0\r\nt: 1\r\n\r\nrest");
        assert_eq!(
            (r.data.as_slice(), r.end, r.error),
            (&b"abc"[..], Some(21), None)
        );
    }
}
