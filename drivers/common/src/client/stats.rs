//! Where a client counts: its cluster's counters, or its own for a client-only handle.

use std::sync::Arc;

use crate::state::ClusterState;
use crate::stats::Stats;

#[derive(Clone, Debug)]
pub(crate) enum StatsRef {
    Cluster(Arc<ClusterState>),
    Own(Arc<Stats>),
}

impl StatsRef {
    pub(crate) fn get(&self) -> &Stats {
        match self {
            StatsRef::Cluster(state) => state.stats(),
            StatsRef::Own(stats) => stats,
        }
    }
}
