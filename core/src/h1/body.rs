//! The body decoder: removes `Content-Length`, chunked or close-delimited framing from bytes
//! the caller feeds in, in any split.

use core::fmt;
use core::ops::Range;

use super::{MAX_CHUNK_LINE, MAX_TRAILERS};

/// How the body of a message is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyFraming {
    /// No body: a 204 or 304 response (whatever its headers say).
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the peer closes the connection: a response with neither
    /// `Content-Length` nor `Transfer-Encoding`. Such a connection is never reused.
    UntilClose,
}

/// What one [`BodyDecoder::decode`] call did.
///
/// `data.start <= data.end <= consumed <= input.len()`: `input[data]` are body bytes (framing
/// removed), and the first `consumed` bytes of the input are used up (the caller drops them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes used up, data and framing.
    pub consumed: usize,
    /// Where the body bytes of this step are in the input (empty when there are none).
    pub data: Range<usize>,
    /// The body ended with this step (or before it).
    pub done: bool,
}

/// Why a body could not be decoded. After an error the connection cannot be used further.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyError {
    /// A chunk-size line that is not hex digits, optional spaces or tabs, then optional
    /// `;`-extensions without control bytes.
    InvalidChunkLine,
    /// A chunk size larger than `u64::MAX`.
    ChunkSizeOverflow,
    /// A chunk-size line longer than [`MAX_CHUNK_LINE`] bytes.
    ChunkLineTooLong {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A line break other than CRLF, or none, where the framing needs one; `after` names what
    /// it should have ended: `chunk size`, `chunk data`, `trailer field` or `trailer section`.
    MissingCrlf {
        /// What the CRLF should have ended.
        after: &'static str,
    },
    /// A trailer section longer than [`MAX_TRAILERS`] bytes.
    TrailersTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection closed before the framing ended ([`BodyDecoder::finish`]);
    /// `remaining` is what a `Content-Length` body still lacked (`None` when chunked).
    UnexpectedEof {
        /// Bytes still expected, for a `Content-Length` body.
        remaining: Option<u64>,
    },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::InvalidChunkLine => f.write_str("chunked body: invalid chunk-size line"),
            BodyError::ChunkSizeOverflow => {
                f.write_str("chunked body: chunk size larger than 2^64 - 1")
            }
            BodyError::ChunkLineTooLong { limit } => {
                write!(f, "chunked body: chunk-size line longer than {limit} bytes")
            }
            BodyError::MissingCrlf { after } => {
                write!(f, "chunked body: missing CRLF after the {after}")
            }
            BodyError::TrailersTooLarge { limit } => {
                write!(f, "chunked body: trailer section larger than {limit} bytes")
            }
            BodyError::UnexpectedEof { remaining: Some(n) } => {
                write!(f, "body: connection closed {n} bytes before its end")
            }
            BodyError::UnexpectedEof { remaining: None } => {
                f.write_str("chunked body: connection closed before the last chunk")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BodyError {}

/// Where a chunked body's framing stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex digits of a chunk size; `line` bytes of the line seen.
    Size {
        size: u64,
        digits: bool,
        line: usize,
    },
    /// Whitespace after the digits.
    SizeSpace { size: u64, line: usize },
    /// Inside chunk extensions (ignored).
    Extension { size: u64, line: usize },
    /// Saw the CR ending the size line.
    SizeLf { size: u64 },
    /// Chunk data, `remaining` bytes to go.
    Data { remaining: u64 },
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF); `seen` trailer bytes so far.
    TrailerStart { seen: usize },
    /// Inside a trailer field line (ignored).
    Trailer { seen: usize },
    /// Saw the CR ending a trailer field line.
    TrailerLf { seen: usize },
    /// Saw the CR of the final CRLF.
    EndLf { seen: usize },
}

/// What a framing byte leads to.
enum Next {
    Chunk(Chunk),
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// Decodes one message body from bytes fed in any split; see [`BodyDecoder::decode`].
///
/// A chunked body is checked strictly: hex sizes with overflow checks, CRLF (not a bare LF)
/// after every line and after chunk data, extensions and trailer fields skipped (never
/// interpreted), lines bounded by [`MAX_CHUNK_LINE`] and the trailer section by
/// [`MAX_TRAILERS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
    keep_alive: bool,
    close_delimited: bool,
    /// Bytes followed the end of the body in the caller's buffer.
    extra: bool,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`. `keep_alive`: whether the message let the
    /// connection carry another exchange (e.g. [`super::ResponseHead::keep_alive`]).
    pub const fn new(framing: BodyFraming, keep_alive: bool) -> BodyDecoder {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::Chunked(Chunk::Size {
                size: 0,
                digits: false,
                line: 0,
            }),
            BodyFraming::UntilClose => State::UntilClose,
        };
        BodyDecoder {
            state,
            keep_alive,
            close_delimited: matches!(framing, BodyFraming::UntilClose),
            extra: false,
        }
    }

    /// Decodes from the front of `input`, which must be every body byte the caller holds and
    /// has not consumed yet.
    ///
    /// Each call returns at most one run of body bytes ([`Decoded::data`]) and consumes the
    /// framing around it; call again with the unconsumed rest until a call consumes nothing,
    /// then read more. `consumed == 0` without `done` means the input was empty. Once `done`,
    /// the bytes after `consumed` are not part of the body (and make the connection not
    /// reusable, see [`BodyDecoder::is_reusable`]). A framing error found right after a run of
    /// data is reported by the next call, so no data is lost; after an error, stop.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, BodyError> {
        let mut pos = 0usize;
        let mut data = 0..0;
        loop {
            let rest = input.get(pos..).unwrap_or(&[]);
            match self.state {
                State::Done => {
                    if !rest.is_empty() {
                        self.extra = true;
                    }
                    return Ok(Decoded {
                        consumed: pos,
                        data,
                        done: true,
                    });
                }
                State::UntilClose => {
                    return Ok(Decoded {
                        consumed: input.len(),
                        data: pos..input.len(),
                        done: false,
                    });
                }
                State::Length(remaining) => {
                    let take = take_len(remaining, rest.len());
                    data = pos..pos + take;
                    pos += take;
                    let left = remaining - take as u64;
                    if left > 0 {
                        self.state = State::Length(left);
                        return Ok(Decoded {
                            consumed: pos,
                            data,
                            done: false,
                        });
                    }
                    self.state = State::Done;
                }
                State::Chunked(Chunk::Data { remaining }) => {
                    if !data.is_empty() || rest.is_empty() {
                        // One run of data per call.
                        return Ok(Decoded {
                            consumed: pos,
                            data,
                            done: false,
                        });
                    }
                    let take = take_len(remaining, rest.len());
                    data = pos..pos + take;
                    pos += take;
                    let left = remaining - take as u64;
                    self.state = State::Chunked(if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { remaining: left }
                    });
                }
                State::Chunked(chunk) => {
                    let Some(&byte) = rest.first() else {
                        return Ok(Decoded {
                            consumed: pos,
                            data,
                            done: false,
                        });
                    };
                    match framing_byte(chunk, byte) {
                        Ok(Next::Chunk(next)) => self.state = State::Chunked(next),
                        Ok(Next::Done) => self.state = State::Done,
                        // Hand out the data first; the next call meets this byte again.
                        Err(_) if !data.is_empty() => {
                            return Ok(Decoded {
                                consumed: pos,
                                data,
                                done: false,
                            });
                        }
                        Err(e) => return Err(e),
                    }
                    pos += 1;
                }
            }
        }
    }

    /// The connection reached end of stream. A close-delimited body ends here (`Ok`); an
    /// ended body stays ended; any other body was cut short: [`BodyError::UnexpectedEof`] (a
    /// fill client lets its [`crate::fill::BodyCheck`] report the truncation).
    pub fn finish(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(remaining) => Err(BodyError::UnexpectedEof {
                remaining: Some(remaining),
            }),
            State::Chunked(_) => Err(BodyError::UnexpectedEof { remaining: None }),
        }
    }

    /// Whether the body has ended.
    pub const fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// For a `Content-Length` body, the bytes still to come (a driver reads no more than
    /// this); `None` for other framings.
    pub const fn length_remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done if !self.close_delimited => Some(0),
            _ => None,
        }
    }

    /// Whether the connection can carry another exchange: the body ended by its framing (not
    /// by a close), the message allowed keep-alive, and no byte followed the body in the input
    /// of the call that ended it (or of any later call).
    pub const fn is_reusable(&self) -> bool {
        matches!(self.state, State::Done) && self.keep_alive && !self.close_delimited && !self.extra
    }
}

/// `min(remaining, available)` without truncating `remaining` on 32-bit targets.
fn take_len(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Counts one more byte of a chunk-size line.
fn line_byte(line: usize) -> Result<usize, BodyError> {
    // This byte, and at least the LF still to come.
    if line + 2 > MAX_CHUNK_LINE {
        return Err(BodyError::ChunkLineTooLong {
            limit: MAX_CHUNK_LINE,
        });
    }
    Ok(line + 1)
}

/// Counts one more byte of the trailer section.
fn trailer_byte(seen: usize) -> Result<usize, BodyError> {
    if seen + 1 > MAX_TRAILERS {
        return Err(BodyError::TrailersTooLarge {
            limit: MAX_TRAILERS,
        });
    }
    Ok(seen + 1)
}

/// One framing byte of a chunked body. Pure: an error leaves the decoder as it was.
fn framing_byte(chunk: Chunk, b: u8) -> Result<Next, BodyError> {
    let next = match chunk {
        Chunk::Size { size, digits, line } => {
            let line = line_byte(line)?;
            match (b, hex_value(b)) {
                (_, Some(v)) => {
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(v))
                        .ok_or(BodyError::ChunkSizeOverflow)?;
                    Chunk::Size {
                        size,
                        digits: true,
                        line,
                    }
                }
                (b' ' | b'\t', None) if digits => Chunk::SizeSpace { size, line },
                (b';', None) if digits => Chunk::Extension { size, line },
                (b'\r', None) if digits => Chunk::SizeLf { size },
                (b'\n', None) if digits => {
                    return Err(BodyError::MissingCrlf {
                        after: "chunk size",
                    });
                }
                _ => return Err(BodyError::InvalidChunkLine),
            }
        }
        Chunk::SizeSpace { size, line } => {
            let line = line_byte(line)?;
            match b {
                b' ' | b'\t' => Chunk::SizeSpace { size, line },
                b';' => Chunk::Extension { size, line },
                b'\r' => Chunk::SizeLf { size },
                b'\n' => {
                    return Err(BodyError::MissingCrlf {
                        after: "chunk size",
                    });
                }
                _ => return Err(BodyError::InvalidChunkLine),
            }
        }
        Chunk::Extension { size, line } => {
            let line = line_byte(line)?;
            match b {
                b'\r' => Chunk::SizeLf { size },
                b'\n' => {
                    return Err(BodyError::MissingCrlf {
                        after: "chunk size",
                    });
                }
                b'\t' => Chunk::Extension { size, line },
                0..=0x1f | 0x7f => return Err(BodyError::InvalidChunkLine),
                _ => Chunk::Extension { size, line },
            }
        }
        Chunk::SizeLf { size } => match (b, size) {
            (b'\n', 0) => Chunk::TrailerStart { seen: 0 },
            (b'\n', remaining) => Chunk::Data { remaining },
            _ => {
                return Err(BodyError::MissingCrlf {
                    after: "chunk size",
                });
            }
        },
        // Data bytes never come here (the decoder takes them in runs).
        Chunk::Data { remaining } => Chunk::Data { remaining },
        Chunk::DataCr => match b {
            b'\r' => Chunk::DataLf,
            _ => {
                return Err(BodyError::MissingCrlf {
                    after: "chunk data",
                });
            }
        },
        Chunk::DataLf => match b {
            b'\n' => Chunk::Size {
                size: 0,
                digits: false,
                line: 0,
            },
            _ => {
                return Err(BodyError::MissingCrlf {
                    after: "chunk data",
                });
            }
        },
        Chunk::TrailerStart { seen } => {
            let seen = trailer_byte(seen)?;
            match b {
                b'\r' => Chunk::EndLf { seen },
                b'\n' => {
                    return Err(BodyError::MissingCrlf {
                        after: "trailer section",
                    });
                }
                _ => Chunk::Trailer { seen },
            }
        }
        Chunk::Trailer { seen } => {
            let seen = trailer_byte(seen)?;
            match b {
                b'\r' => Chunk::TrailerLf { seen },
                b'\n' => {
                    return Err(BodyError::MissingCrlf {
                        after: "trailer field",
                    });
                }
                _ => Chunk::Trailer { seen },
            }
        }
        Chunk::TrailerLf { seen } => {
            let seen = trailer_byte(seen)?;
            match b {
                b'\n' => Chunk::TrailerStart { seen },
                _ => {
                    return Err(BodyError::MissingCrlf {
                        after: "trailer field",
                    });
                }
            }
        }
        Chunk::EndLf { seen } => {
            trailer_byte(seen)?;
            match b {
                b'\n' => return Ok(Next::Done),
                _ => {
                    return Err(BodyError::MissingCrlf {
                        after: "trailer section",
                    });
                }
            }
        }
    };
    Ok(Next::Chunk(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Feeds `input` in pieces of `split` bytes through a caller-style buffer; returns the
    /// body, whether it ended, and the decoder.
    fn run(
        framing: BodyFraming,
        input: &[u8],
        split: usize,
    ) -> (Result<(Vec<u8>, bool), BodyError>, BodyDecoder) {
        let mut d = BodyDecoder::new(framing, true);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let step = match d.decode(&buf) {
                    Ok(step) => step,
                    Err(e) => return (Err(e), d),
                };
                assert!(step.data.end <= step.consumed && step.consumed <= buf.len());
                out.extend_from_slice(&buf[step.data.clone()]);
                buf.drain(..step.consumed);
                if step.done {
                    return (Ok((out, true)), d);
                }
                if step.consumed == 0 {
                    break;
                }
            }
        }
        (Ok((out, false)), d)
    }

    #[test]
    fn chunked_in_any_split() {
        let input =
            b"5;ext=1\r\nhello\r\n6 \r\n world\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in [1, 2, 3, 7, 100] {
            let (result, d) = run(BodyFraming::Chunked, input, split);
            assert_eq!(result, Ok((b"hello world0123456789".to_vec(), true)));
            assert!(d.is_reusable() && d.is_done());
        }
    }

    #[test]
    fn one_call_reaches_the_end_after_the_last_data() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked, true);
        let input = b"3\r\nabc\r\n0\r\n\r\n";
        let step = d.decode(input).unwrap();
        assert_eq!(
            step,
            Decoded {
                consumed: input.len(),
                data: 3..6,
                done: true
            }
        );
        assert!(d.is_reusable());
    }

    #[test]
    fn bytes_after_the_body_make_the_connection_unclean() {
        let mut d = BodyDecoder::new(BodyFraming::Length(3), true);
        let step = d.decode(b"abcHTTP").unwrap();
        assert_eq!((step.consumed, step.data, step.done), (3, 0..3, true));
        assert!(d.is_done() && !d.is_reusable());
        let mut d = BodyDecoder::new(BodyFraming::Chunked, true);
        let step = d.decode(b"0\r\n\r\nX").unwrap();
        assert_eq!((step.consumed, step.done), (5, true));
        assert!(!d.is_reusable());
        // A later call with bytes also counts.
        let mut d = BodyDecoder::new(BodyFraming::Empty, true);
        assert!(d.decode(b"").unwrap().done);
        assert!(d.is_reusable());
        assert_eq!(d.decode(b"x").unwrap().consumed, 0);
        assert!(!d.is_reusable());
    }

    #[test]
    fn keep_alive_and_close_delimited_bodies_are_not_reused() {
        let mut d = BodyDecoder::new(BodyFraming::Length(1), false);
        assert!(d.decode(b"a").unwrap().done);
        assert!(!d.is_reusable());
        let mut d = BodyDecoder::new(BodyFraming::UntilClose, true);
        let step = d.decode(b"anything").unwrap();
        assert_eq!((step.consumed, step.data, step.done), (8, 0..8, false));
        assert_eq!(d.length_remaining(), None);
        assert_eq!(d.finish(), Ok(()));
        assert!(d.is_done() && !d.is_reusable());
    }

    #[test]
    fn content_length_never_yields_more_than_declared() {
        for split in [1, 2, 5, 100] {
            let (result, d) = run(BodyFraming::Length(4), b"abcdefgh", split);
            assert_eq!(result, Ok((b"abcd".to_vec(), true)));
            assert!(d.is_done());
        }
        let mut d = BodyDecoder::new(BodyFraming::Length(10), true);
        assert_eq!(d.decode(b"abc").unwrap().data, 0..3);
        assert_eq!(d.length_remaining(), Some(7));
        assert_eq!(
            d.finish(),
            Err(BodyError::UnexpectedEof { remaining: Some(7) })
        );
        let mut d = BodyDecoder::new(BodyFraming::Length(0), true);
        assert!(d.decode(b"").unwrap().done);
        assert_eq!(d.length_remaining(), Some(0));
    }

    #[test]
    fn chunked_errors() {
        let err = |input: &[u8]| run(BodyFraming::Chunked, input, 100).0.unwrap_err();
        assert_eq!(err(b"zz\r\n"), BodyError::InvalidChunkLine);
        assert_eq!(err(b"\r\n"), BodyError::InvalidChunkLine);
        assert_eq!(err(b" 5\r\n"), BodyError::InvalidChunkLine);
        assert_eq!(err(b";x\r\n"), BodyError::InvalidChunkLine);
        assert_eq!(err(b"5 x\r\n"), BodyError::InvalidChunkLine);
        assert_eq!(err(b"5;a\x01\r\n"), BodyError::InvalidChunkLine);
        assert_eq!(err(b"10000000000000000\r\n"), BodyError::ChunkSizeOverflow);
        assert_eq!(
            err(b"5\n"),
            BodyError::MissingCrlf {
                after: "chunk size"
            }
        );
        assert_eq!(
            err(b"5\rx"),
            BodyError::MissingCrlf {
                after: "chunk size"
            }
        );
        assert_eq!(
            err(b"2\r\nabXY"),
            BodyError::MissingCrlf {
                after: "chunk data"
            }
        );
        assert_eq!(
            err(b"2\r\nab\n0\r\n\r\n"),
            BodyError::MissingCrlf {
                after: "chunk data"
            }
        );
        assert_eq!(
            err(b"0\r\nx: 1\n\r\n"),
            BodyError::MissingCrlf {
                after: "trailer field"
            }
        );
        assert_eq!(
            err(b"0\r\n\n"),
            BodyError::MissingCrlf {
                after: "trailer section"
            }
        );
        assert_eq!(
            err(b"0\r\n\rx"),
            BodyError::MissingCrlf {
                after: "trailer section"
            }
        );
        let mut long = b"1;".to_vec();
        long.resize(MAX_CHUNK_LINE + 10, b'a');
        assert_eq!(
            err(&long),
            BodyError::ChunkLineTooLong {
                limit: MAX_CHUNK_LINE
            }
        );
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() < MAX_TRAILERS + 100 {
            trailers.extend_from_slice(b"x-t: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(
            err(&trailers),
            BodyError::TrailersTooLarge {
                limit: MAX_TRAILERS
            }
        );
    }

    #[test]
    fn line_and_trailer_limits_are_exact() {
        // A size line of exactly MAX_CHUNK_LINE bytes, CRLF included, is accepted.
        let mut line = b"1;".to_vec();
        line.resize(MAX_CHUNK_LINE - 2, b'a');
        line.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(
            run(BodyFraming::Chunked, &line, 100).0,
            Ok((b"x".to_vec(), true))
        );
        // A trailer section of exactly MAX_TRAILERS bytes, final CRLF included, is accepted.
        let mut body = b"0\r\n".to_vec();
        let field_len = MAX_TRAILERS - 2 - 2;
        body.extend_from_slice(b"x:");
        body.resize(3 + field_len, b'a');
        body.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            run(BodyFraming::Chunked, &body, 1000).0,
            Ok((Vec::new(), true))
        );
        body.insert(5, b'a');
        assert!(run(BodyFraming::Chunked, &body, 1000).0.is_err());
    }

    #[test]
    fn an_error_after_data_comes_with_the_next_call() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked, true);
        let input = b"2\r\nabXY";
        let step = d.decode(input).unwrap();
        assert_eq!((step.consumed, step.data, step.done), (5, 3..5, false));
        assert_eq!(
            d.decode(&input[5..]),
            Err(BodyError::MissingCrlf {
                after: "chunk data"
            })
        );
    }

    #[test]
    fn partial_chunked_body_and_eof() {
        let (result, mut d) = run(BodyFraming::Chunked, b"5\r\nhel", 2);
        assert_eq!(result, Ok((b"hel".to_vec(), false)));
        assert_eq!(
            d.finish(),
            Err(BodyError::UnexpectedEof { remaining: None })
        );
        assert!(!d.is_reusable());
    }

    #[test]
    fn upper_case_hex_and_leading_zeros() {
        let (result, _) = run(
            BodyFraming::Chunked,
            b"0000000000000000000A\r\n0123456789\r\n0\r\n\r\n",
            3,
        );
        assert_eq!(result, Ok((b"0123456789".to_vec(), true)));
        let (result, _) = run(BodyFraming::Chunked, b"ffffffffffffffff\r\nab", 100);
        assert_eq!(result, Ok((b"ab".to_vec(), false)));
    }
}
