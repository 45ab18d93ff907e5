//! The membership task: the one owner of the core state machine in a driver.
//!
//! It follows the core's drain contract: after every input it drains lookups (starting them),
//! abandoned lookups (cancelling them) and events (publishing them to [`ClusterState`]), then
//! waits for whichever comes first of the next timeout, the lookup's answer, or shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use orca_cluster_core::{LookupAnswer, LookupId, Membership};

use crate::runtime::{Clock, Runtime};
use crate::source::PeerSource;
use crate::state::ClusterState;

type LookupFuture = Pin<Box<dyn Future<Output = LookupAnswer> + Send + 'static>>;

enum Wake {
    Timer,
    Answer(LookupAnswer),
    Shutdown,
}

/// Runs the membership state machine until shutdown is signalled on `state`; then marks the
/// state stopped. Spawn it once per cluster.
pub async fn run_membership<R: Runtime>(
    runtime: R,
    clock: Clock,
    mut machine: Membership,
    source: Arc<dyn PeerSource>,
    state: Arc<ClusterState>,
) {
    let mut in_flight: Option<(LookupId, LookupFuture)> = None;
    loop {
        while let Some(request) = machine.poll_lookup() {
            in_flight = Some((request.id, source.lookup(&request.name)));
        }
        // A lookup the machine gave up on (deadline passed) is dropped, which cancels it.
        while let Some(id) = machine.poll_abandoned() {
            if in_flight
                .as_ref()
                .is_some_and(|(current, _)| *current == id)
            {
                in_flight = None;
            }
        }
        while let Some(event) = machine.poll_event() {
            state.apply(event);
        }
        crate::metrics::lookup_failure_streak(machine.failure_streak());
        let Some(wake_at) = machine.poll_timeout() else {
            break;
        };
        let sleep = runtime.sleep(clock.until(wake_at));
        let lookup = async {
            match in_flight.as_mut() {
                Some((_, fut)) => Wake::Answer(fut.await),
                None => std::future::pending().await,
            }
        };
        let wake = futures_lite::future::or(
            async {
                state.shutdown_requested().await;
                Wake::Shutdown
            },
            futures_lite::future::or(lookup, async {
                sleep.await;
                Wake::Timer
            }),
        )
        .await;
        let now = clock.now();
        match wake {
            Wake::Timer => machine.handle_timeout(now),
            Wake::Answer(answer) => {
                state.count_lookup();
                if let Some((id, _)) = in_flight.take() {
                    machine.handle_lookup(now, id, answer);
                }
            }
            Wake::Shutdown => {
                machine.handle_shutdown(now);
                while let Some(event) = machine.poll_event() {
                    state.apply(event);
                }
                break;
            }
        }
    }
    state.mark_stopped();
}
