//! Round trips through the codec: what one side encodes, the other side parses back, in any
//! split.

use alloc::string::String;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::fill::{DeclaredFraming, FillDescriptor, Scheme, declared_framing};
use crate::wire::decode_query;
use crate::{ChunkKey, Peer};

/// Encodes chunks as a chunked body: sizes in hex (upper or lower case, as `upper` says),
/// optional extensions, then the last chunk and optional trailers.
fn chunked(chunks: &[Vec<u8>], upper: bool, ext: bool, trailers: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        let size = if upper {
            alloc::format!("{:X}", chunk.len())
        } else {
            alloc::format!("{:x}", chunk.len())
        };
        out.extend_from_slice(size.as_bytes());
        if ext {
            out.extend_from_slice(b" ;name=\"v a\"");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for t in trailers {
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Feeds `input` through a caller-style buffer, in pieces cut at `cuts` (positions modulo
/// the length). Returns the body, whether it ended, and the first error.
fn decode_split(
    mut decoder: BodyDecoder,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, bool, Option<BodyError>, BodyDecoder) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut from = 0;
    for to in points {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            match decoder.decode(&buf) {
                Err(e) => return (out, false, Some(e), decoder),
                Ok(step) => {
                    assert!(step.data.start <= step.data.end);
                    assert!(step.data.end <= step.consumed && step.consumed <= buf.len());
                    out.extend_from_slice(&buf[step.data.clone()]);
                    buf.drain(..step.consumed);
                    if step.done {
                        return (out, true, None, decoder);
                    }
                    if step.consumed == 0 {
                        break;
                    }
                }
            }
        }
    }
    (out, false, None, decoder)
}

fn key_strategy() -> impl Strategy<Value = ChunkKey> {
    (
        ".{1,20}",
        ".{0,20}",
        ".{1,40}",
        ".{0,20}",
        1u64..=1 << 40,
        0u64..1000,
    )
        .prop_map(
            |(origin_id, bucket, object_key, etag, chunk_size, index)| ChunkKey {
                origin_id,
                bucket,
                object_key,
                etag,
                chunk_size,
                index,
            },
        )
}

proptest! {
    #[test]
    fn fill_request_parses_back(
        key in key_strategy(),
        v6 in any::<bool>(),
        ip in any::<[u8; 16]>(),
        port in 1u16..,
        extra in 1u64..1 << 40,
        user_agent in "[ -~]{0,40}",
    ) {
        let ip: core::net::IpAddr = if v6 {
            core::net::Ipv6Addr::from(ip).into()
        } else {
            core::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).into()
        };
        let peer = Peer { ip, port, is_self: false };
        let object_size = key.index * key.chunk_size + extra;
        let desc = FillDescriptor::new(&peer, &key, object_size, Scheme::Http, 0).unwrap();
        let user_agent = user_agent.trim_matches(' ');
        let mut out = Vec::new();
        encode_fill_request(&desc, user_agent, &mut out).unwrap();
        let Ok(Parsed::Complete { head, consumed }) = parse_request_head(&out, out.len()) else {
            panic!("request head did not parse: {:?}", String::from_utf8_lossy(&out));
        };
        prop_assert_eq!(consumed, out.len());
        prop_assert_eq!(head.method, "GET");
        prop_assert_eq!(head.target, desc.path_and_query.as_str());
        prop_assert_eq!(head.host, Some(desc.authority.as_str()));
        prop_assert!(head.keep_alive && !head.has_body);
        prop_assert_eq!(head.internal_values().collect::<Vec<_>>(), [b"1"]);
        prop_assert_eq!(head.header_values("user-agent").next(), Some(user_agent.as_bytes()));
        prop_assert_eq!(head.path(), crate::wire::FILL_PATH);
        let query = decode_query(head.query().unwrap()).unwrap();
        prop_assert_eq!(query.key, key);
        prop_assert_eq!(query.object_size, object_size);
    }

    #[test]
    fn response_head_parses_back(
        status in 200u16..=999,
        content_length in any::<u64>(),
        content_type in "[!-~]([ -~]{0,30}[!-~])?",
        allow in proptest::option::of("[A-Z]{1,7}"),
        close in any::<bool>(),
        cut in any::<usize>(),
    ) {
        let spec = ResponseSpec {
            status,
            content_type: &content_type,
            content_length,
            allow: allow.as_deref(),
            close,
        };
        let mut out = Vec::new();
        encode_response_head(&spec, &mut out).unwrap();
        // Any prefix is partial; the whole is complete.
        let cut = cut % out.len();
        prop_assert_eq!(parse_response_head(&out[..cut], out.len()), Ok(Parsed::Partial));
        let Ok(Parsed::Complete { head, consumed }) = parse_response_head(&out, out.len()) else {
            panic!("response head did not parse: {:?}", String::from_utf8_lossy(&out));
        };
        prop_assert_eq!(consumed, out.len());
        prop_assert_eq!(head.status, status);
        prop_assert_eq!(head.declared, DeclaredFraming::Length(content_length));
        let empty = matches!(status, 204 | 304);
        prop_assert_eq!(
            head.body,
            if empty { BodyFraming::Empty } else { BodyFraming::Length(content_length) }
        );
        prop_assert_eq!(head.keep_alive, !close);
    }

    #[test]
    fn chunked_body_in_any_split(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        upper in any::<bool>(),
        ext in any::<bool>(),
        trailers in proptest::collection::vec("[a-z]{1,8}: [ -~]{0,20}", 0..3),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        tail in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let mut input = chunked(&chunks, upper, ext, &trailers);
        let body_len = input.len();
        input.extend_from_slice(&tail);
        let want: Vec<u8> = chunks.concat();
        let whole = decode_split(BodyDecoder::new(BodyFraming::Chunked, true), &input, &[]);
        let split = decode_split(BodyDecoder::new(BodyFraming::Chunked, true), &input, &cuts);
        prop_assert_eq!(&whole.0, &want);
        prop_assert!(whole.1 && whole.2.is_none());
        prop_assert_eq!(&split.0, &want);
        prop_assert!(split.1 && split.2.is_none());
        // The bytes after the body only make the connection unclean when they were in the
        // input of the final call; a whole-input decode always sees them.
        prop_assert_eq!(whole.3.is_reusable(), tail.is_empty());
        if tail.is_empty() {
            prop_assert!(split.3.is_reusable());
        }
        let _ = body_len;
    }

    #[test]
    fn length_body_in_any_split(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        declared in 0u64..700,
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let (out, done, err, d) =
            decode_split(BodyDecoder::new(BodyFraming::Length(declared), true), &body, &cuts);
        prop_assert!(err.is_none());
        let n = (declared as usize).min(body.len());
        prop_assert_eq!(&out[..], &body[..n]);
        prop_assert_eq!(done, body.len() as u64 >= declared);
        // Bytes past the body are seen (and make the connection unclean) when they arrive
        // in the same input as its end, as they always do without cuts.
        prop_assert!(!d.is_reusable() || done);
        if cuts.is_empty() {
            prop_assert_eq!(d.is_reusable(), body.len() as u64 == declared);
        }
    }

    #[test]
    fn content_length_values(n in any::<u64>(), left in "[ \t]{0,3}", right in "[ \t]{0,3}") {
        let value = alloc::format!("{left}{n}{right}");
        prop_assert_eq!(
            declared_framing([value.as_bytes()], []),
            Ok(DeclaredFraming::Length(n))
        );
        let listed = alloc::format!("{value},{value}");
        prop_assert!(declared_framing([listed.as_bytes()], []).is_err());
    }

    #[test]
    fn request_heads_never_panic_and_prefixes_agree(
        text in "[ -~\r\n\t\u{80}]{0,200}",
        cut in any::<usize>(),
    ) {
        let bytes = text.as_bytes();
        let full = parse_request_head(bytes, 1024);
        let cut = cut % (bytes.len() + 1);
        match parse_request_head(&bytes[..cut], 1024) {
            Ok(Parsed::Partial) => {}
            Ok(Parsed::Complete { head, consumed }) => {
                prop_assert_eq!(full, Ok(Parsed::Complete { head, consumed }));
            }
            Err(_) => prop_assert!(full.is_err()),
        }
    }
}
