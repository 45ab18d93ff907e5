//! Loopback fill benchmarks of the tokio driver, used by `orca-cluster bench fill` and by
//! `cargo bench -p orca-cluster-cli --bench fill`.
//!
//! [`run_fill_bench`] starts a listener replica serving one pre-generated buffer
//! ([`BytesFiller`]) and a client-only [`FillClient`] in the current runtime, then runs
//! `iterations` fills with `concurrency` in flight, all on one connection for HTTP/2 (HTTP/1.1
//! opens one connection per concurrent fill: it cannot multiplex). [`run_raw_tcp_baseline`]
//! moves the same bytes over a bare TCP connection, the ceiling to compare against.
//!
//! The listener side always runs on a runtime of its own with one worker thread; for stable
//! numbers call these from a one-worker runtime too (two peers, one core each), as
//! `benches/fill.rs` does.

mod peer;
mod row;
mod runtime;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use orca_cluster_test_support::{Pki, TempDir};
use orca_cluster_tokio::common::BytesFiller;
use orca_cluster_tokio::{
    ChunkKey, ClientSettings, Cluster, FillClient, FillListener, ListenerSettings, Options, Peer,
    StaticPeerSource, TlsSettings,
};

pub use peer::{FillTarget, WARMUP_FILLS, fill_once, measure_fills};
pub use row::{FillBenchRow, Protocol};

use runtime::{ServerRuntime, bench_config, other};

/// Frame size the benchmark filler yields: 256 KiB.
pub const BENCH_FRAME_BYTES: usize = 256 * 1024;

fn bench_key(chunk_bytes: usize) -> ChunkKey {
    ChunkKey {
        origin_id: "bench".into(),
        bucket: "b".into(),
        object_key: "object".into(),
        etag: "1".into(),
        chunk_size: chunk_bytes as u64,
        index: 0,
    }
}

/// Fills of `chunk_bytes` bytes (> 0) over `protocol` on loopback: `iterations` measured fills
/// (after 2 warm-up fills) with `concurrency` (≥ 1) in flight. Each fill's body is streamed and
/// length-verified, not copied. The client runs on the current tokio runtime, the listener on
/// a runtime of its own with one worker thread (as a peer in another process would).
pub async fn run_fill_bench(
    protocol: Protocol,
    concurrency: usize,
    chunk_bytes: usize,
    iterations: usize,
) -> io::Result<FillBenchRow> {
    run_fill_bench_with(
        protocol,
        concurrency,
        chunk_bytes,
        iterations,
        ClientSettings::default(),
    )
    .await
}

/// [`run_fill_bench`] with explicit client settings (e.g. HTTP/2 windows, to measure their
/// effect: the client's windows bound what the listener may send ahead).
pub async fn run_fill_bench_with(
    protocol: Protocol,
    concurrency: usize,
    chunk_bytes: usize,
    iterations: usize,
    client_settings: ClientSettings,
) -> io::Result<FillBenchRow> {
    if chunk_bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "chunk_bytes must be > 0",
        ));
    }
    let concurrency = concurrency.max(1);
    let scratch = TempDir::new("bench-fill")?;
    let tls = if protocol.tls() {
        Pki::new(&["127.0.0.1"])?.write_files(scratch.path())?
    } else {
        TlsSettings::default()
    };

    let server_side = ServerRuntime::new()?;
    let listen_tls = tls.clone();
    let (server, handle, addr) = server_side
        .run(async move {
            let listener = FillListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            let addr = listener.local_addr();
            let server = Cluster::start(
                bench_config(addr, &listen_tls),
                Options::default()
                    .with_peer_source(StaticPeerSource::new([addr]))
                    .with_self_port(addr.port()),
            )
            .await
            .map_err(other)?;
            let data = Bytes::from(vec![0xA5u8; chunk_bytes]);
            let handle = listener.serve(
                &server,
                BytesFiller::new(data, BENCH_FRAME_BYTES),
                ListenerSettings {
                    max_concurrent: concurrency.max(256),
                    ..ListenerSettings::default()
                },
            );
            Ok::<_, io::Error>((server, handle, addr))
        })
        .await??;
    let config = bench_config(addr, &tls);

    let client = FillClient::new(
        &config,
        &Options::default()
            .with_protocol(if protocol.http1() {
                orca_cluster_tokio::Protocol::Http1
            } else {
                orca_cluster_tokio::Protocol::Http2
            })
            .with_client_settings(client_settings),
    )
    .map_err(other)?;
    let target = FillTarget {
        peer: Peer {
            ip: addr.ip(),
            port: addr.port(),
            is_self: false,
        },
        key: bench_key(chunk_bytes),
        object_size: chunk_bytes as u64,
    };
    let row = measure_fills(
        &client,
        &target,
        protocol.name(),
        concurrency,
        iterations,
        None,
    )
    .await;

    client.close();
    server_side
        .run(async move {
            handle.shutdown(Duration::from_secs(1)).await;
            let _ = server.close(Duration::from_secs(1)).await;
        })
        .await?;
    row
}

/// The same bytes over one bare TCP connection on loopback (the server writes a shared buffer,
/// the client streams it through a reused buffer of [`BENCH_FRAME_BYTES`] and discards it, as
/// the fill benchmark's client does with body frames): `iterations` transfers of `chunk_bytes` after 2
/// warm-up transfers, one at a time, with the server side on its own runtime as in
/// [`run_fill_bench`]. The ceiling to compare fills against.
pub async fn run_raw_tcp_baseline(
    chunk_bytes: usize,
    iterations: usize,
) -> io::Result<FillBenchRow> {
    let server_side = ServerRuntime::new()?;
    let listener = server_side
        .run(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await??;
    let addr = listener.local_addr()?;
    let data = Bytes::from(vec![0xA5u8; chunk_bytes]);
    let server = server_side.spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let mut request = [0u8; 1];
        // One byte asks for one chunk; end of stream ends the server.
        while socket.read(&mut request).await? == 1 {
            socket.write_all(&data).await?;
        }
        Ok::<(), io::Error>(())
    });
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut buf = vec![0u8; BENCH_FRAME_BYTES];
    for _ in 0..2 {
        raw_transfer(&mut socket, &mut buf, chunk_bytes).await?;
    }
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        latencies.push(raw_transfer(&mut socket, &mut buf, chunk_bytes).await?);
    }
    let elapsed = started.elapsed();
    drop(socket);
    server.await.map_err(other)??;
    Ok(FillBenchRow::from_latencies(
        "raw-tcp",
        1,
        chunk_bytes,
        elapsed,
        latencies,
    ))
}

/// Asks for one chunk (one byte) and reads its `len` bytes through `buf`; returns the latency.
async fn raw_transfer(socket: &mut TcpStream, buf: &mut [u8], len: usize) -> io::Result<Duration> {
    let started = Instant::now();
    socket.write_all(&[1]).await?;
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len());
        let n = socket.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        left -= n;
    }
    Ok(started.elapsed())
}
