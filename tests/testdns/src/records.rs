//! The record table: which addresses each name resolves to.

use std::collections::HashMap;
use std::net::IpAddr;

/// Normalises a DNS name for lookups: ASCII-lowercased, without trailing dot.
pub(crate) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Names (normalised) to their address sets.
#[derive(Debug, Default)]
pub(crate) struct RecordTable {
    names: HashMap<String, Vec<IpAddr>>,
}

impl RecordTable {
    /// Replaces the address set of `name`.
    pub(crate) fn set(&mut self, name: &str, ips: &[IpAddr]) {
        self.names.insert(normalize(name), ips.to_vec());
    }

    /// Forgets `name` entirely.
    pub(crate) fn remove(&mut self, name: &str) {
        self.names.remove(&normalize(name));
    }

    /// The addresses of `name` (both families), or `None` if the name is unknown.
    pub(crate) fn get(&self, name: &str) -> Option<&[IpAddr]> {
        self.names.get(&normalize(name)).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_and_trailing_dot() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut t = RecordTable::default();
        t.set("Orca.Default.svc.", &[ip]);
        assert_eq!(t.get("orca.default.svc"), Some(&[ip][..]));
        assert_eq!(t.get("ORCA.DEFAULT.SVC."), Some(&[ip][..]));
        t.set("orca.default.svc", &[]);
        assert_eq!(t.get("orca.default.svc."), Some(&[][..]));
        t.remove("orca.DEFAULT.svc.");
        assert_eq!(t.get("orca.default.svc"), None);
    }
}
