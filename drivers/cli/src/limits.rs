//! The fill listener's limits as flags of `orca-cluster node`, and the file-descriptor budget
//! that keeps a flood of connections from taking the descriptors the admin port, DNS and
//! outgoing fills need.

use std::time::Duration;

use clap::Args;
use orca_cluster_tokio::ListenerSettings;
use orca_cluster_tokio::common::listener::{
    DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_CONCURRENT_PER_CONNECTION, DEFAULT_MAX_CONNECTIONS,
};

use crate::args::duration;

/// Descriptors kept out of the fill listener's budget: the admin port and its connections,
/// DNS sockets, the runtime's own, the log.
const RESERVED_FDS: u64 = 64;

/// Flags of the fill listener's limits (defaults: `ListenerSettings::default()`).
#[derive(Args, Debug)]
pub(crate) struct ListenerArgs {
    /// Concurrent fills served before answering 503.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT)]
    max_concurrent: usize,
    /// Concurrent fills of one connection before answering 503 (HTTP/2: the advertised
    /// SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_PER_CONNECTION)]
    max_concurrent_per_connection: usize,
    /// Fill connections open at once; lowered to fit the open-file limit (see the README).
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Time a new connection has to deliver its first request head (and an HTTP/1.1
    /// connection its next one).
    #[arg(long, value_parser = duration, default_value = "30s")]
    header_read_timeout: Duration,
    /// Time a connection may have no request in flight before it is closed.
    #[arg(long, value_parser = duration, default_value = "90s")]
    idle_timeout: Duration,
    /// Time a fill response may wait for its client to read before the connection is closed.
    #[arg(long, value_parser = duration, default_value = "60s")]
    send_timeout: Duration,
}

impl ListenerArgs {
    /// The listener settings of these flags, with `max_connections` lowered to `budget` (the
    /// descriptors this process may spend on fill connections, if known).
    pub(crate) fn settings(&self, budget: Option<usize>) -> ListenerSettings {
        let max_connections = match budget {
            Some(budget) if budget < self.max_connections => {
                tracing::warn!(
                    event = "max_connections_lowered",
                    requested = self.max_connections,
                    max_connections = budget,
                    "the open-file limit allows fewer fill connections than --max-connections"
                );
                budget
            }
            _ => self.max_connections,
        };
        ListenerSettings {
            max_concurrent: self.max_concurrent,
            max_concurrent_per_connection: self.max_concurrent_per_connection,
            max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            send_timeout: self.send_timeout,
            ..ListenerSettings::default()
        }
    }
}

/// Raises this process's soft open-file limit to its hard limit (as the Go runtime does) and
/// returns the soft limit now in force (`None`: unlimited or unknown).
pub(crate) fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Fill connections `open_files` descriptors can carry: half of what is left after
/// [`RESERVED_FDS`], since a connection's fill may also hold a file of the directory origin
/// (at least 1).
pub(crate) fn connection_budget(open_files: u64) -> usize {
    let budget = open_files.saturating_sub(RESERVED_FDS) / 2;
    usize::try_from(budget.max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_the_rest_of_the_process() {
        assert_eq!(connection_budget(256), 96);
        assert_eq!(connection_budget(1_048_576), 524_256);
        assert_eq!(connection_budget(10), 1);
    }

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        listener: ListenerArgs,
    }

    #[test]
    fn the_flag_defaults_are_the_library_defaults() {
        use clap::Parser;
        let flags = Flags::try_parse_from(["node"]).unwrap();
        assert_eq!(flags.listener.settings(None), ListenerSettings::default());
        let lowered = flags.listener.settings(Some(96));
        assert_eq!(lowered.max_connections, 96);
    }
}
