//! Go-style duration text (`"5s"`, `"500ms"`, `"1m30s"`, `"1.5h"`), as used by the Go
//! configuration this project mirrors.

use alloc::string::String;
use core::time::Duration;

/// Parses a non-negative Go duration: one or more `<number><unit>` terms, units `ns`, `us`
/// (or `µs`), `ms`, `s`, `m`, `h`; numbers may have a fraction. `"0"` alone is zero. `None` for
/// anything else or for a value above `u64::MAX` nanoseconds.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (int_part, frac_part) = match num.split_once('.') {
            Some((i, f)) => (i, f),
            None => (num, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut term = int.checked_mul(unit_ns)?;
        let mut scale = unit_ns;
        for d in frac_part.bytes() {
            if !d.is_ascii_digit() {
                return None;
            }
            scale /= 10;
            term = term.checked_add(u128::from(d - b'0').checked_mul(scale)?)?;
        }
        total = total.checked_add(term)?;
        rest = tail;
    }
    let nanos = u64::try_from(total).ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Formats a duration the way Go's `time.Duration.String` does for common values (`5s`,
/// `1m30s`, `500ms`, `1.5s`, `0s`).
pub fn format_go_duration(d: Duration) -> String {
    use core::fmt::Write;
    let mut out = String::new();
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (v, unit) = if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, "ms")
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, "µs")
        } else {
            (nanos, "ns")
        };
        let _ = write!(out, "{v}{unit}");
        return out;
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let sub = d.subsec_nanos();
    if sub == 0 {
        let _ = write!(out, "{s}s");
    } else {
        let frac = alloc::format!("{sub:09}");
        let _ = write!(out, "{s}.{}s", frac.trim_end_matches('0'));
    }
    out
}

#[cfg(feature = "serde")]
pub(crate) mod serde_go {
    use core::time::Duration;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_go_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = alloc::string::String::deserialize(d)?;
        super::parse_go_duration(&text).ok_or_else(|| {
            D::Error::custom(alloc::format!(
                "{text:?} is not a duration like 5s, 500ms or 1m30s"
            ))
        })
    }
}

#[cfg(feature = "serde")]
pub(crate) mod serde_ips {
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::net::IpAddr;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(ips: &[IpAddr], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = ips.iter().map(|ip| alloc::format!("{ip}")).collect();
        s.serialize_str(&text.join(","))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ips {
        One(String),
        Many(Vec<String>),
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
        let text = match Ips::deserialize(d)? {
            Ips::One(s) => s,
            Ips::Many(v) => v.join(","),
        };
        crate::config::ClusterConfig::parse_ips(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("5s"), Some(ms(5000)));
        assert_eq!(parse_go_duration("500ms"), Some(ms(500)));
        assert_eq!(parse_go_duration("1m30s"), Some(ms(90_000)));
        assert_eq!(parse_go_duration("1.5h"), Some(ms(5_400_000)));
        assert_eq!(parse_go_duration(".5s"), Some(ms(500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10us"), Some(Duration::from_micros(10)));
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "-5s",
            "1..5s",
            ".s",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_like_go() {
        for (d, s) in [
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_go_duration(d), s);
            assert_eq!(parse_go_duration(s), Some(d));
        }
    }
}
