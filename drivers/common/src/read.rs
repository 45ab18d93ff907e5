//! [`Cluster::read`](crate::Cluster::read): the read path of a chunk, written once — from the
//! coordinator when it is another replica, else (or when the coordinator cannot serve it)
//! from the application's local filler — as one verified stream that says where its bytes
//! came from.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use orca_cluster_core::Peer;
use orca_cluster_core::fill::{BodyCheck, DescriptorError};

use crate::client::FillBody;
use crate::error::FillError;
use crate::filler::{ChunkStream, FillerError};

/// Options of [`Cluster::read_with`](crate::Cluster::read_with). `ReadOptions::default()`: no
/// deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Bounds the fill from the coordinator: its response head must arrive within this
    /// (else the chunk is read locally) and its body must be complete within this from the
    /// start of the read (else the stream fails with [`FillError::Deadline`]). `None`: no
    /// deadline (default). The local filler is not bounded by it.
    pub deadline: Option<Duration>,
}

/// Where the bytes of a [`ChunkRead`] come from.
#[derive(Debug)]
pub enum ReadSource {
    /// This replica coordinates the chunk: the local filler.
    Local,
    /// The coordinator, another replica.
    Coordinator(Peer),
    /// The local filler, because the coordinator could not serve the chunk: it answered 409
    /// (it is not the coordinator in its own snapshot) or 503 (overloaded), could not be
    /// reached (connect or TLS failure, or [`FillError::PeerUnavailable`] during its backoff
    /// window), the connection failed before a response head, or the deadline passed first.
    Fallback {
        /// The coordinator that could not serve.
        coordinator: Peer,
        /// Why.
        error: FillError,
    },
}

impl ReadSource {
    /// Whether the bytes come from this replica's filler.
    pub fn is_local(&self) -> bool {
        !matches!(self, ReadSource::Coordinator(_))
    }
}

/// `local`, `coordinator IP:PORT` (port 0: the listen port) or `local (coordinator IP:PORT:
/// why)`.
impl fmt::Display for ReadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadSource::Local => f.write_str("local"),
            ReadSource::Coordinator(peer) => write!(f, "coordinator {}", peer_addr(peer)),
            ReadSource::Fallback { coordinator, error } => {
                write!(f, "local (coordinator {}: {error})", peer_addr(coordinator))
            }
        }
    }
}

fn peer_addr(peer: &Peer) -> std::net::SocketAddr {
    std::net::SocketAddr::new(peer.ip, peer.port)
}

/// Why [`Cluster::read`](crate::Cluster::read) failed.
#[derive(Debug)]
pub enum ReadError {
    /// The request is invalid: an empty chunk or one past the end of the object
    /// (`EmptyChunk`), a bad byte range or a `chunk_size` above `max_chunk_size` (`Chunk`), a
    /// peer without a port (`NoPort`).
    Request(DescriptorError),
    /// The coordinator answered with an error the local filler would not fix (a status other
    /// than 409 and 503 — e.g. 502 when its filler failed —, a malformed head, a wrong
    /// `Content-Length`). [`FillError::status`] gives the status.
    Coordinator {
        /// The coordinator.
        peer: Peer,
        /// Its answer.
        error: FillError,
    },
    /// The local filler failed.
    Local(FillerError),
    /// The cluster handle was closed.
    Closed,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Request(e) => write!(f, "read request: {e}"),
            ReadError::Coordinator { peer, error } => {
                write!(f, "coordinator {}: {error}", peer_addr(peer))
            }
            ReadError::Local(e) => write!(f, "local filler: {e}"),
            ReadError::Closed => f.write_str("cluster: closed"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Request(e) => Some(e),
            ReadError::Coordinator { error, .. } => Some(error),
            ReadError::Local(e) => Some(&**e),
            ReadError::Closed => None,
        }
    }
}

/// Whether a failed fill from the coordinator sends the read to the local filler.
pub(crate) fn falls_back(e: &FillError) -> bool {
    e.is_not_coordinator()
        || e.is_unreachable()
        || e.status() == Some(orca_cluster_core::admission::OVERLOADED_STATUS)
        || matches!(e, FillError::Deadline(_) | FillError::Http(_))
}

/// One chunk being read: `len` bytes, verified, from [`ChunkRead::source`].
///
/// A [`Stream`] of `io::Result<Bytes>` (the item type of [`ChunkStream`], so it can be served
/// or forwarded as is). From the coordinator, every byte is checked by [`FillBody`] and its
/// errors arrive as `io::Error`s wrapping the [`FillError`]; from the local filler, the
/// length is checked the same way (a stream that ends short or runs long ends with an
/// `io::Error` of kind `UnexpectedEof` or `InvalidData`). After an error the stream ends.
pub struct ChunkRead {
    source: ReadSource,
    len: u64,
    body: Body,
}

enum Body {
    Peer(FillBody),
    Local {
        stream: ChunkStream,
        check: BodyCheck,
        done: bool,
    },
}

impl fmt::Debug for ChunkRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkRead")
            .field("source", &self.source)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ChunkRead {
    pub(crate) fn from_peer(coordinator: Peer, body: FillBody) -> ChunkRead {
        ChunkRead {
            source: ReadSource::Coordinator(coordinator),
            len: body.expected_len(),
            body: Body::Peer(body),
        }
    }

    pub(crate) fn from_local(source: ReadSource, stream: ChunkStream, len: u64) -> ChunkRead {
        ChunkRead {
            source,
            len,
            body: Body::Local {
                stream,
                check: BodyCheck::new(len),
                done: false,
            },
        }
    }

    /// Where the bytes come from.
    pub fn source(&self) -> &ReadSource {
        &self.source
    }

    /// The chunk's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the chunk is empty (never: chunks have at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the whole chunk into one buffer, verified.
    pub async fn collect_bytes(mut self) -> io::Result<Bytes> {
        let capacity = usize::try_from(self.len.min(64 << 20)).unwrap_or(0);
        let mut out = bytes::BytesMut::with_capacity(capacity);
        while let Some(frame) = std::future::poll_fn(|cx| self.poll_frame(cx)).await {
            out.extend_from_slice(&frame?);
        }
        Ok(out.freeze())
    }

    /// The next verified bytes; see the type's docs.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        match &mut self.body {
            Body::Peer(body) => body
                .poll_chunk(cx)
                .map(|item| item.map(|r| r.map_err(fill_error_to_io))),
            Body::Local {
                stream,
                check,
                done,
            } => {
                if *done {
                    return Poll::Ready(None);
                }
                let item = match stream.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(item) => item,
                };
                let verdict = match item {
                    Some(Ok(data)) => check.on_data(data.len()).map(|()| Some(data)),
                    Some(Err(e)) => {
                        *done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    None => check.on_end().map(|()| None),
                };
                match verdict {
                    Ok(Some(data)) => Poll::Ready(Some(Ok(data))),
                    Ok(None) => {
                        *done = true;
                        Poll::Ready(None)
                    }
                    Err(e) => {
                        *done = true;
                        let kind = match e {
                            orca_cluster_core::fill::FillCheckError::Truncated { .. } => {
                                io::ErrorKind::UnexpectedEof
                            }
                            _ => io::ErrorKind::InvalidData,
                        };
                        Poll::Ready(Some(Err(io::Error::new(
                            kind,
                            format!("local filler: {e}"),
                        ))))
                    }
                }
            }
        }
    }
}

fn fill_error_to_io(e: FillError) -> io::Error {
    let kind = match &e {
        FillError::Check(orca_cluster_core::fill::FillCheckError::Truncated { .. }) => {
            io::ErrorKind::UnexpectedEof
        }
        FillError::Check(_) => io::ErrorKind::InvalidData,
        FillError::Deadline(_) => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl Stream for ChunkRead {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_frame(cx)
    }
}
