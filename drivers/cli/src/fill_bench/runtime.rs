//! The listener side's own runtime and the benchmark's cluster configuration.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use orca_cluster_tokio::{ClusterConfig, TlsSettings};
use tokio::task::JoinHandle;

/// The listener side of a benchmark runs on its own runtime with one worker thread, as a peer
/// would in its own process; the client side runs on the caller's runtime.
pub(crate) struct ServerRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl ServerRuntime {
    pub(crate) fn new() -> io::Result<ServerRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("orca-bench-server")
            .enable_all()
            .build()?;
        Ok(ServerRuntime {
            runtime: Some(runtime),
        })
    }

    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.runtime {
            Some(rt) => rt.spawn(future),
            None => tokio::spawn(future),
        }
    }

    /// Runs `future` on the server runtime and waits for it.
    pub(crate) async fn run<F>(&self, future: F) -> io::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future).await.map_err(other)
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside the caller's runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

pub(crate) fn bench_config(addr: SocketAddr, tls: &TlsSettings) -> ClusterConfig {
    ClusterConfig {
        service: "bench".into(),
        self_pod_ip: vec![addr.ip()],
        internal_tls: tls.clone(),
        membership_refresh: Duration::from_secs(60),
        ..ClusterConfig::default()
    }
}

pub(crate) fn other<E: fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}
