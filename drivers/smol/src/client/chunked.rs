//! A streaming decoder of `Transfer-Encoding: chunked` bodies (RFC 9112 section 7.1), bounded:
//! size lines of at most [`MAX_LINE`] bytes, trailers of at most [`MAX_TRAILERS`] bytes.
//! Chunk extensions and trailer fields are ignored.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (with extensions) accepted: 4 KiB.
pub(crate) const MAX_LINE: usize = 4 * 1024;
/// Most trailer bytes accepted: 16 KiB.
pub(crate) const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The input holds no complete next element: read more into it.
    NeedMore,
    /// The body ended (last chunk and trailers consumed).
    Done,
}

/// The decoder state between reads.
#[derive(Clone, Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size }
    }
}

/// Splits one line (through `\n`) off `buf`, without its line ending.
fn take_line(buf: &mut BytesMut) -> Option<BytesMut> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let mut line = buf.split_to(end + 1);
    line.truncate(end);
    if line.last() == Some(&b'\r') {
        line.truncate(end - 1);
    }
    Some(line)
}

fn parse_size(line: &[u8]) -> Result<u64, String> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "chunked body: bad chunk size line {:?}",
            String::from_utf8_lossy(&line[..line.len().min(64)])
        ));
    }
    let text = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
    u64::from_str_radix(text, 16).map_err(|e| format!("chunked body: chunk size: {e}"))
}

impl ChunkedDecoder {
    /// Decodes from the front of `buf`, consuming what it uses.
    pub(crate) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        loop {
            match self.state {
                State::Done => return Ok(Step::Done),
                State::Size => match take_line(buf) {
                    Some(line) => {
                        let size = parse_size(&line)?;
                        self.state = if size == 0 {
                            State::Trailers(0)
                        } else {
                            State::Data(size)
                        };
                    }
                    None if buf.len() > MAX_LINE => {
                        return Err("chunked body: chunk size line too long".into());
                    }
                    None => return Ok(Step::NeedMore),
                },
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                    } else if buf.starts_with(b"\n") {
                        buf.advance(1);
                    } else if buf.is_empty() || buf[..] == b"\r"[..] {
                        return Ok(Step::NeedMore);
                    } else {
                        return Err("chunked body: missing CRLF after chunk data".into());
                    }
                    self.state = State::Size;
                }
                State::Trailers(seen) => match take_line(buf) {
                    Some(line) if line.is_empty() => self.state = State::Done,
                    Some(line) => {
                        let seen = seen + line.len() + 2;
                        if seen > MAX_TRAILERS {
                            return Err("chunked body: trailers too large".into());
                        }
                        self.state = State::Trailers(seen);
                    }
                    None if seen + buf.len() > MAX_TRAILERS => {
                        return Err("chunked body: trailers too large".into());
                    }
                    None => return Ok(Step::NeedMore),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], split: usize) -> Result<(Vec<u8>, bool), String> {
        let mut d = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match d.step(&mut buf)? {
                    Step::Data(b) => out.extend_from_slice(&b),
                    Step::NeedMore => break,
                    Step::Done => return Ok((out, true)),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn decodes_in_any_split() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode_all(input, split).unwrap(),
                (b"hello world".to_vec(), true)
            );
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(decode_all(b"zz\r\n", 100).is_err());
        assert!(decode_all(b"11111111111111111\r\n", 100).is_err());
        assert!(decode_all(b"2\r\nabXY", 100).is_err());
        assert!(decode_all(&vec![b'1'; MAX_LINE + 10], 100).is_err());
        let (out, done) = decode_all(b"5\r\nhel", 100).unwrap();
        assert_eq!((out.as_slice(), done), (&b"hel"[..], false));
    }
}
