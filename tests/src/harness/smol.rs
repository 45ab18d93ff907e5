//! The harness of `orca-cluster-smol`: `smol::block_on` on the test thread (smol's global
//! executor runs the driver's tasks), `async-io` timers, `Options` from [`Setup`](super::Setup) (`http1` is
//! accepted and ignored by this driver).

use super::{TEST_LIMIT, impl_driver};

/// The smol/async-h1 driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolDriver;

impl_driver!(
    SmolDriver,
    orca_cluster_smol,
    "smol",
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
