//! The harness of `orca-cluster-smol`: `smol::block_on` on the test thread (smol's global
//! executor runs the driver's tasks), `async-io` timers, `Options` from [`Setup`](super::Setup)
//! (this driver rejects `Protocol::Http2` and non-default HTTP/2 client settings at start).

use super::{TEST_LIMIT, impl_driver};

/// The smol driver (HTTP/1.1 framed by the core's codec).
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolDriver;

impl_driver!(
    SmolDriver,
    orca_cluster_smol,
    "smol",
    http2: false,
    other: super::TokioDriver,
    run(future) {
        smol::block_on(async {
            futures_lite::future::or(async { Some(future.await) }, async {
                smol::Timer::after(TEST_LIMIT).await;
                None
            })
            .await
        })
        .unwrap_or_else(|| panic!("smol: the test did not finish within {TEST_LIMIT:?}"))
    },
    sleep(duration) {
        async move {
            smol::Timer::after(duration).await;
        }
    },
);
