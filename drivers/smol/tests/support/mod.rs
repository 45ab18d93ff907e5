//! Helpers of the smol driver's own tests (the codec-framed listener's IO): running on smol, a
//! replica on loopback, a raw HTTP/1.1 exchange. Behaviour both drivers share is tested once, in
//! the conformance suite (`tests/tests/conformance.rs`).
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use orca_cluster_smol::{
    ChunkKey, Cluster, ClusterConfig, FillListener, ListenerHandle, ListenerSettings, Options,
    StaticPeerSource, SyntheticOrigin,
};
use smol::net::TcpStream;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Runs `future` on smol, failing the test if it takes longer than `secs` seconds.
pub fn run<F: Future>(secs: u64, future: F) -> F::Output {
    smol::block_on(async {
        futures_lite::future::or(async { Some(future.await) }, async {
            smol::Timer::after(Duration::from_secs(secs)).await;
            None
        })
        .await
        .unwrap_or_else(|| panic!("test did not finish within {secs} s"))
    })
}

pub fn key(index: u64, chunk_size: u64) -> ChunkKey {
    ChunkKey {
        origin_id: "origin-1".into(),
        bucket: "bucket".into(),
        object_key: "path/to/object with spaces".into(),
        etag: "\"etag-1\"".into(),
        chunk_size,
        index,
    }
}

/// A config for a replica on 127.0.0.1 with a fast refresh.
pub fn config() -> ClusterConfig {
    ClusterConfig {
        service: "static".into(),
        self_pod_ip: vec![LOCALHOST],
        membership_refresh: Duration::from_millis(100),
        lookup_timeout: Duration::from_secs(1),
        ..ClusterConfig::default()
    }
}

/// A replica on 127.0.0.1 alone in its snapshot (it coordinates every chunk), serving
/// [`SyntheticOrigin`].
pub async fn replica() -> (Cluster, ListenerHandle, SocketAddr) {
    let listener = FillListener::bind(SocketAddr::new(LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr();
    let options = Options::default()
        .with_peer_source(StaticPeerSource::new([addr]))
        .with_self_port(addr.port());
    let cluster = Cluster::start(config(), options).await.unwrap();
    let handle = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
    (cluster, handle, addr)
}

/// Writes `pieces` on a new connection (`pause` between them) and reads until the listener
/// closes it: the status code, the head (lowercased) and everything after it, or `None` when
/// the connection closed with no parsable response.
pub async fn exchange(
    addr: SocketAddr,
    pieces: &[&[u8]],
    pause: Duration,
) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    for piece in pieces {
        s.write_all(piece).await.ok()?;
        s.flush().await.ok()?;
        smol::Timer::after(pause).await;
    }
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all).await;
    let end = all.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head.get(9..12)?.parse().ok()?;
    Some((status, head.to_ascii_lowercase(), all[end..].to_vec()))
}
