//! Child processes of the side-by-side benchmark: servers that live for the whole run (nginx,
//! our replicas), stopped when their [`Server`] is dropped, and measured runs of a tool, each
//! bounded by a timeout and killed if it overruns.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long a stopped server may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A loopback port free at the time of the call (bound, then released: another process could
/// take it before the server binds it, which start-up then reports).
pub(super) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("picking a free loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("picking a free loopback port: {e}"))
}

/// A server process, stopped (SIGTERM, then SIGKILL after a grace period) when dropped.
pub(super) struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` with stdin closed and stdout and stderr appended to `log`; `name` says
    /// what it is in errors.
    pub(super) fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Server, String> {
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("{name}: creating its log {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{name}: log {}: {e}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{name}: cannot start: {e}"))?;
        Ok(Server {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// Waits until every port in `ports` on 127.0.0.1 accepts a connection, for at most
    /// `limit`; fails at once if the process exits, with the end of its log.
    pub(super) async fn wait_ready(
        &mut self,
        ports: &[u16],
        limit: Duration,
    ) -> Result<(), String> {
        let started = Instant::now();
        for &port in ports {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!(
                        "{} exited during start-up ({status}); its log ends with:\n{}",
                        self.name,
                        self.log_tail()
                    ));
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    break;
                }
                if started.elapsed() > limit {
                    return Err(format!(
                        "{} did not listen on {addr} within {limit:?}; its log ends with:\n{}",
                        self.name,
                        self.log_tail()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// The last lines of the server's log (at most 2 KiB).
    pub(super) fn log_tail(&self) -> String {
        tail(&std::fs::read(&self.log).unwrap_or_default())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM first: nginx's master stops its worker on it (SIGKILL would orphan the
        // worker), our replicas shut down.
        let term = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
            .map(|pid| rustix::process::kill_process(pid, rustix::process::Signal::TERM));
        if matches!(term, Some(Ok(()))) {
            let started = Instant::now();
            while started.elapsed() < STOP_GRACE {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.start_kill();
    }
}

/// The last 2 KiB of `bytes`, as text.
pub(super) fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(2048);
    String::from_utf8_lossy(bytes.get(start..).unwrap_or_default())
        .trim_end()
        .to_owned()
}

/// Runs `program` with `args` to completion within `limit` (killed if it overruns) and
/// returns its output; a non-zero exit is an error with the end of its stderr. `what` names
/// the run in errors.
pub(super) async fn run_tool(
    what: &str,
    program: &std::path::Path,
    args: &[String],
    limit: Duration,
) -> Result<Output, String> {
    let child = Command::new(program)
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{what}: cannot start {}: {e}", program.display()))?;
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Err(_) => return Err(format!("{what}: did not finish within {limit:?} (killed)")),
        Ok(Err(e)) => return Err(format!("{what}: {e}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(format!(
            "{what}: exited with {}: {}",
            output.status,
            tail(&output.stderr)
        ));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        let text = "x".repeat(5000) + "end\n";
        let t = tail(text.as_bytes());
        assert!(t.ends_with("end"));
        assert!(t.len() <= 2048);
        assert_eq!(tail(b"short\n"), "short");
    }

    #[tokio::test]
    async fn a_tool_that_overruns_is_killed_and_a_failure_is_an_error() {
        let sh = std::path::Path::new("/bin/sh");
        let err = run_tool(
            "sleeper",
            sh,
            &["-c".into(), "sleep 5".into()],
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        let err = run_tool(
            "failer",
            sh,
            &["-c".into(), "echo oops >&2; exit 3".into()],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(err.contains("oops") && err.contains('3'), "{err}");
    }

    #[tokio::test]
    async fn a_dropped_server_is_stopped() {
        let dir = orca_cluster_test_support::TempDir::new("sbs-proc").unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let server = Server::spawn("sleeper", cmd, dir.join("log")).unwrap();
        let pid = server.child.id().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(server);
        // Gone (or a zombie about to be reaped): not sleeping any more.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z"), "{state}");
    }
}
