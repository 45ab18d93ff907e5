//! [`RawTcpBench`]: the raw-TCP baseline.

use std::net::SocketAddr;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::filler::payload;
use super::{FRAME, LOCALHOST, RAW_READ_BUFFER};

/// The raw-TCP baseline: one persistent loopback connection; per transfer the client sends one
/// byte and the server writes the whole pre-generated buffer in [`FRAME`]-sized writes (as the
/// listener writes `BytesFiller` frames); the client reads into a [`RAW_READ_BUFFER`].
#[derive(Debug)]
pub struct RawTcpBench {
    stream: smol::lock::Mutex<smol::net::TcpStream>,
    len: usize,
    _server: smol::Task<()>,
}

impl RawTcpBench {
    /// Starts the server and connects to it; each transfer moves `len` bytes.
    pub async fn start(len: usize) -> std::io::Result<RawTcpBench> {
        let listener = smol::net::TcpListener::bind(SocketAddr::new(LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let data = payload(len);
        let server = smol::spawn(async move {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let _ = s.set_nodelay(true);
            let mut go = [0u8; 1];
            while let Ok(1) = s.read(&mut go).await {
                for frame in data.chunks(FRAME) {
                    if s.write_all(frame).await.is_err() {
                        return;
                    }
                }
            }
        });
        let stream = smol::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawTcpBench {
            stream: smol::lock::Mutex::new(stream),
            len,
            _server: server,
        })
    }

    /// One transfer; returns the bytes received.
    pub async fn transfer_once(&self) -> std::io::Result<u64> {
        let mut stream = self.stream.lock().await;
        stream.write_all(&[1]).await?;
        let mut buf = vec![0u8; RAW_READ_BUFFER];
        let mut total = 0usize;
        while total < self.len {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            total += n;
        }
        Ok(total as u64)
    }
}
