//! The harness of `orca-cluster-tokio`: a multi-threaded tokio runtime (2 workers) per test,
//! `tokio::time` timers, `Options` from [`Setup`](super::Setup).

use std::time::Duration;

use super::{TEST_LIMIT, impl_driver};

/// The tokio/hyper driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioDriver;

impl_driver!(
    TokioDriver,
    orca_cluster_tokio,
    "tokio",
    http2: true,
    other: super::SmolDriver,
    run(future) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let outcome = runtime.block_on(async { tokio::time::timeout(TEST_LIMIT, future).await });
        runtime.shutdown_timeout(Duration::from_secs(1));
        outcome.unwrap_or_else(|_| panic!("tokio: the test did not finish within {TEST_LIMIT:?}"))
    },
    sleep(duration) {
        tokio::time::sleep(duration)
    },
);
