//! Text and JSON output helpers.

use orca_cluster_tokio::{Peer, Snapshot};
use serde_json::{Value, json};

/// `{"ip": .., "port": .., "self": ..}`.
pub(crate) fn peer_json(p: &Peer) -> Value {
    json!({"ip": p.ip.to_string(), "port": p.port, "self": p.is_self})
}

/// `{"generation": N, "peers": [...]}`.
pub(crate) fn snapshot_json(s: &Snapshot) -> Value {
    json!({
        "generation": s.generation(),
        "peers": s.peers().iter().map(peer_json).collect::<Vec<_>>(),
    })
}

/// A peer as `ip:port` (port shown even when 0).
pub(crate) fn addr(p: &Peer) -> String {
    match p.ip {
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", p.port),
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", p.port),
    }
}

/// Megabytes (10^6 bytes) per second.
pub(crate) fn mb_per_s(bytes: u64, elapsed: std::time::Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 / 1e6 / secs
}

/// `text` made safe for a terminal, for anything a peer (or DNS) may have written: control
/// characters — C0 (tab and newline included), DEL and C1 — and the bidirectional-text
/// overrides are shown escaped (`\x1b`, `\x0a`, `\x7f`, `\u{9b}`, `\u{202e}`), so a peer cannot
/// clear the screen, retitle the window, ring the bell, move the cursor or fake a second line.
/// Every other character, printable UTF-8 included, is kept.
pub(crate) fn terminal_safe(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_ascii_control() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else if c.is_control() || bidi {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(
            terminal_safe("a\u{1b}[2J\u{1b}]0;t\u{7}\nb\tc\u{7f}\u{9b}\u{202e}d"),
            r"a\x1b[2J\x1b]0;t\x07\x0ab\x09c\x7f\u{9b}\u{202e}d"
        );
        assert_eq!(terminal_safe("déjà vu — 日本 ok"), "déjà vu — 日本 ok");
        assert_eq!(terminal_safe(""), "");
    }
}
