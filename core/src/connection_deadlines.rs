//! When a listener connection must be closed, as a pure function of what the driver observed:
//! the rule behind each driver's connection watch, written once. Times are durations since the
//! connection was accepted.
//!
//! - **first request** — no complete request head within `first_request` of the accept;
//! - **idle** — no request in flight for `idle` (whatever else arrives: HTTP/2 PINGs);
//! - **stalled** — a fill response waiting `send` for its client to take its next bytes.
//!
//! Idleness and stalls can begin between two looks, so [`verdict`] also says when to look
//! again: at the next deadline, and at least every quarter of the idle and send timeouts (a
//! stall or idleness is seen within 1.25 × its timeout), never more often than every 50 ms.

use core::time::Duration;

/// Shortest pause between two looks: 50 ms.
pub const MIN_CHECK: Duration = Duration::from_millis(50);

/// Why a connection must close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request head within the first-request deadline of the accept.
    FirstRequest,
    /// No request in flight for the idle timeout.
    Idle,
    /// A fill response waited the send timeout for its client.
    Stalled,
}

impl Expiry {
    /// A short name for logs: `first_request`, `idle`, `stalled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::FirstRequest => "first_request",
            Expiry::Idle => "idle",
            Expiry::Stalled => "stalled",
        }
    }
}

/// The connection's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// First complete request head, from the accept.
    pub first_request: Duration,
    /// No request in flight.
    pub idle: Duration,
    /// A fill response waiting on its client.
    pub send: Duration,
}

/// What the driver observed of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Time since the accept.
    pub now: Duration,
    /// Whether a request head has been read.
    pub had_request: bool,
    /// Since when no request is in flight (`None`: one is in flight).
    pub idle_since: Option<Duration>,
    /// Since when the oldest fill response waits on its client (`None`: none waits).
    pub oldest_waiting: Option<Duration>,
}

/// Why the connection must close now, or how long until the next look.
pub fn verdict(limits: &Limits, seen: &Observed) -> Result<Expiry, Duration> {
    let mut next = Duration::MAX;
    let mut due = |limit: Duration, since: Duration| -> bool {
        let at = since.saturating_add(limit);
        if seen.now >= at {
            return true;
        }
        next = next.min(at - seen.now);
        false
    };
    if !seen.had_request && due(limits.first_request, Duration::ZERO) {
        return Ok(Expiry::FirstRequest);
    }
    if let Some(since) = seen.idle_since
        && due(limits.idle, since)
    {
        return Ok(Expiry::Idle);
    }
    if let Some(since) = seen.oldest_waiting
        && due(limits.send, since)
    {
        return Ok(Expiry::Stalled);
    }
    let wait = next.min(limits.send / 4).min(limits.idle / 4);
    Err(wait.max(MIN_CHECK))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        first_request: Duration::from_millis(100),
        idle: Duration::from_millis(200),
        send: Duration::from_millis(300),
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn seen(now: u64) -> Observed {
        Observed {
            now: ms(now),
            had_request: true,
            idle_since: None,
            oldest_waiting: None,
        }
    }

    #[test]
    fn each_deadline_fires_at_its_limit_and_not_before() {
        let silent = Observed {
            had_request: false,
            idle_since: Some(ms(0)),
            ..seen(99)
        };
        assert_eq!(verdict(&LIMITS, &silent), Err(ms(50)));
        assert_eq!(
            verdict(
                &LIMITS,
                &Observed {
                    now: ms(100),
                    ..silent
                }
            ),
            Ok(Expiry::FirstRequest)
        );
        let idle = Observed {
            idle_since: Some(ms(1000)),
            ..seen(1150)
        };
        assert_eq!(verdict(&LIMITS, &idle), Err(ms(50)));
        assert_eq!(
            verdict(
                &LIMITS,
                &Observed {
                    now: ms(1200),
                    ..idle
                }
            ),
            Ok(Expiry::Idle)
        );
        let waiting = Observed {
            oldest_waiting: Some(ms(1000)),
            ..seen(1299)
        };
        assert!(verdict(&LIMITS, &waiting).is_err());
        assert_eq!(
            verdict(
                &LIMITS,
                &Observed {
                    now: ms(1300),
                    ..waiting
                }
            ),
            Ok(Expiry::Stalled)
        );
    }

    #[test]
    fn with_no_deadline_running_it_looks_again_within_a_quarter_of_a_timeout() {
        // A request in flight, no fill waiting: nothing can fire yet, but a stall or idleness
        // may begin at any time.
        assert_eq!(verdict(&LIMITS, &seen(5000)), Err(ms(50)));
        let long = Limits {
            first_request: ms(30_000),
            idle: ms(90_000),
            send: ms(60_000),
        };
        assert_eq!(verdict(&long, &seen(5000)), Err(ms(15_000)));
    }
}
