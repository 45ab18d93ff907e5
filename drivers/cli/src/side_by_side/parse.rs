//! Reading what the tools print: h2load's summary, curl's `--write-out` lines and
//! `orca-cluster bench fill --peer --json`. Every figure is recomputed from byte counts and
//! times (MB = 10^6 bytes), and every count is checked against what was asked for.

/// h2load's summary of one run.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct H2loadSummary {
    /// `finished in`: from the start to the last response, in seconds.
    pub(super) seconds: f64,
    /// Requests that succeeded.
    pub(super) succeeded: u64,
    /// Responses with a 2xx status.
    pub(super) status_2xx: u64,
    /// Body bytes received (`traffic: ... data`).
    pub(super) data_bytes: u64,
}

/// A duration as h2load prints it: `1.58s`, `87.47ms`, `950us`.
fn h2load_seconds(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches(',');
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|v| v * scale)
}

/// The number before `word` in `line` (`8 succeeded` -> 8).
fn count_before(line: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| w.trim_end_matches(',') == word)?;
    words
        .get(at.checked_sub(1)?)?
        .trim_end_matches(',')
        .parse()
        .ok()
}

/// Parses h2load's stdout; `None` names what is missing.
pub(super) fn h2load(stdout: &str) -> Result<H2loadSummary, String> {
    let line = |prefix: &str| {
        stdout
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .ok_or_else(|| format!("h2load printed no `{prefix}` line"))
    };
    let finished = line("finished in")?;
    let seconds = finished
        .strip_prefix("finished in")
        .and_then(|rest| rest.split(',').next())
        .and_then(h2load_seconds)
        .ok_or_else(|| format!("h2load: unreadable `{finished}`"))?;
    let requests = line("requests:")?;
    let succeeded = count_before(requests, "succeeded")
        .ok_or_else(|| format!("h2load: unreadable `{requests}`"))?;
    let status = line("status codes:")?;
    let status_2xx =
        count_before(status, "2xx").ok_or_else(|| format!("h2load: unreadable `{status}`"))?;
    // traffic: 64.07MB (67183689) total, 976B (976) headers (...), 64.00MB (67108864) data
    let traffic = line("traffic:")?;
    let data_bytes = traffic
        .rsplit_once("data")
        .map(|(before, _)| before)
        .and_then(|before| before.rsplit_once('(').map(|(_, n)| n))
        .and_then(|n| n.split(')').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("h2load: unreadable `{traffic}`"))?;
    Ok(H2loadSummary {
        seconds,
        succeeded,
        status_2xx,
        data_bytes,
    })
}

/// The `--write-out` format of [`curl_transfers`]: status, body bytes, total seconds.
pub(super) const CURL_WRITE_OUT: &str = "orca %{http_code} %{size_download} %{time_total}\\n";

/// One curl transfer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CurlTransfer {
    pub(super) status: u16,
    pub(super) bytes: u64,
    /// From the start of the transfer to its last byte (a reused connection's transfer
    /// includes no connect or handshake).
    pub(super) seconds: f64,
}

/// The transfers of curl's stdout, one `orca <status> <bytes> <seconds>` line each.
pub(super) fn curl_transfers(stdout: &str) -> Result<Vec<CurlTransfer>, String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("orca "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let mut next = || parts.next().unwrap_or_default();
            let (status, bytes, seconds) = (next(), next(), next());
            match (status.parse(), bytes.parse(), seconds.parse::<f64>()) {
                (Ok(status), Ok(bytes), Ok(seconds)) if seconds >= 0.0 => Ok(CurlTransfer {
                    status,
                    bytes,
                    seconds,
                }),
                _ => Err(format!("curl: unreadable transfer line `orca {l}`")),
            }
        })
        .collect()
}

/// `mb_per_s` of the one row of `orca-cluster bench fill --peer --json`.
pub(super) fn our_fill_json(stdout: &str) -> Result<f64, String> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("bench fill --json: unreadable output ({e})"))?;
    let rows = value["rows"]
        .as_array()
        .ok_or("bench fill --json: no rows")?;
    match rows.as_slice() {
        [row] => row["mb_per_s"]
            .as_f64()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| "bench fill --json: no positive mb_per_s".to_string()),
        _ => Err(format!(
            "bench fill --json: {} rows, expected 1",
            rows.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2LOAD: &str = "starting benchmark...
spawning thread #0: 1 total client(s). 8 total requests
Application protocol: h2c
progress: 100% done

finished in 87.47ms, 91.46 req/s, 732.47MB/s
requests: 8 total, 8 started, 8 done, 8 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 8 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 64.07MB (67183689) total, 976B (976) headers (space savings 38.69%), 64.00MB (67108864) data
                     min         max         mean         sd        +/- sd
time for request:     7.83ms     20.02ms     10.58ms      4.78ms    75.00%
";

    #[test]
    fn h2load_summary_is_read() {
        let s = h2load(H2LOAD).unwrap();
        assert!((s.seconds - 0.08747).abs() < 1e-9, "{s:?}");
        assert_eq!(
            (s.succeeded, s.status_2xx, s.data_bytes),
            (8, 8, 67_108_864)
        );
        let secs = h2load(&H2LOAD.replace("87.47ms", "1.5s")).unwrap().seconds;
        assert!((secs - 1.5).abs() < 1e-9);
        let secs = h2load(&H2LOAD.replace("87.47ms", "950us")).unwrap().seconds;
        assert!((secs - 0.00095).abs() < 1e-12);
    }

    #[test]
    fn h2load_without_a_summary_is_an_error_naming_the_line() {
        let err = h2load("starting benchmark...\n").unwrap_err();
        assert!(err.contains("finished in"), "{err}");
        let err = h2load(&H2LOAD.replace("(67108864) data", "data")).unwrap_err();
        assert!(err.contains("traffic"), "{err}");
    }

    #[test]
    fn curl_lines_are_read_and_garbage_is_refused() {
        let t = curl_transfers("orca 200 8388608 0.011854\nnoise\norca 000 0 0.000049\n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].status, t[0].bytes), (200, 8_388_608));
        assert!((t[0].seconds - 0.011854).abs() < 1e-12);
        assert_eq!(t[1].status, 0);
        assert!(curl_transfers("orca 200 x 0.1\n").is_err());
        assert!(curl_transfers("orca 200 1\n").is_err());
    }

    #[test]
    fn our_json_needs_exactly_one_positive_row() {
        assert_eq!(
            our_fill_json(r#"{"rows":[{"mb_per_s":1234.5}]}"#).unwrap(),
            1234.5
        );
        assert!(our_fill_json(r#"{"rows":[]}"#).is_err());
        assert!(our_fill_json(r#"{"rows":[{"mb_per_s":0}]}"#).is_err());
        assert!(our_fill_json("not json").is_err());
    }
}
