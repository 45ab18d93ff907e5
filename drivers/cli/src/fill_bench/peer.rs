//! Repeated fills of one chunk from one peer: the measuring loop shared by the loopback
//! benchmark ([`super::run_fill_bench`]) and `orca-cluster bench fill --peer` (any external
//! peer: a replica, or nginx serving the chunk's bytes at `/internal/fill`). Generic over the
//! driver, so the tokio and the smol clients are measured by the same code.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use orca_cluster_tokio::common::{Driver, FillClient};
use orca_cluster_tokio::{ChunkKey, Peer};

use super::row::FillBenchRow;
use super::runtime::other;

/// Fills run (one at a time) before the measured ones, to open the connection and warm the
/// peer up; they are the ones whose bytes are checked when expected bytes are given.
pub const WARMUP_FILLS: usize = 2;

/// What one fill asks for: chunk `key` of an object of `object_size` bytes from `peer`.
#[derive(Clone, Debug)]
pub struct FillTarget {
    /// The peer dialed (its port must be set: a port of 0 means the client's listen port).
    pub peer: Peer,
    /// The chunk.
    pub key: ChunkKey,
    /// Size of the whole object in bytes.
    pub object_size: u64,
}

impl FillTarget {
    /// The chunk's length in bytes (the body length every fill must have); an error naming
    /// the field when the key does not fit `object_size` or the length does not fit in memory.
    pub fn chunk_len(&self) -> io::Result<usize> {
        let len = self.key.expected_len(self.object_size).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "chunk index {} of a {}-byte object: {e}",
                    self.key.index, self.object_size
                ),
            )
        })?;
        usize::try_from(len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("chunk_size: {len} bytes do not fit in memory"),
            )
        })
    }
}

/// One fill of `target`: streams the body and discards it (the client checks its length), or,
/// with `expected`, compares it with those bytes as it arrives. Returns the time from the
/// request to the last byte. No deadline of its own (a per-fill timer would be measured
/// too): bound the caller instead.
pub async fn fill_once<D: Driver>(
    client: &FillClient<D>,
    target: &FillTarget,
    expected: Option<&[u8]>,
) -> io::Result<Duration> {
    let started = Instant::now();
    let mut body = client
        .fill(&target.peer, &target.key, target.object_size)
        .await
        .map_err(other)?;
    let mut at = 0usize;
    while let Some(frame) = body.next().await {
        let frame = frame.map_err(other)?;
        if let Some(expected) = expected {
            let want = expected.get(at..at + frame.len()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "body longer than expected")
            })?;
            if let Some(i) = want.iter().zip(frame.iter()).position(|(a, b)| a != b) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("body differs from the expected bytes at offset {}", at + i),
                ));
            }
        }
        at += frame.len();
    }
    Ok(started.elapsed())
}

/// [`WARMUP_FILLS`] fills one at a time (their bytes compared with `expected` if given),
/// then `fills` measured fills with `concurrency` (≥ 1) in flight. All futures run in the
/// calling task (the driver runs the connections), so this works on any runtime; it has no
/// deadline (see [`fill_once`]). The row is named `name`; its throughput is over the measured
/// fills' wall time.
pub async fn measure_fills<D: Driver>(
    client: &FillClient<D>,
    target: &FillTarget,
    name: &'static str,
    concurrency: usize,
    fills: usize,
    expected: Option<&[u8]>,
) -> io::Result<FillBenchRow> {
    let chunk_bytes = target.chunk_len()?;
    if let Some(expected) = expected
        && expected.len() != chunk_bytes
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "expected bytes: {} bytes for a chunk of {chunk_bytes}",
                expected.len()
            ),
        ));
    }
    for _ in 0..WARMUP_FILLS {
        fill_once(client, target, expected).await?;
    }
    let next = AtomicUsize::new(0);
    let worker = || async {
        let mut latencies = Vec::new();
        while next.fetch_add(1, Ordering::Relaxed) < fills {
            latencies.push(fill_once(client, target, None).await?);
        }
        Ok::<_, io::Error>(latencies)
    };
    let started = Instant::now();
    let per_worker =
        futures_util::future::try_join_all((0..concurrency.max(1)).map(|_| worker())).await?;
    let elapsed = started.elapsed();
    Ok(FillBenchRow::from_latencies(
        name,
        concurrency.max(1),
        chunk_bytes,
        elapsed,
        per_worker.into_iter().flatten().collect(),
    ))
}
