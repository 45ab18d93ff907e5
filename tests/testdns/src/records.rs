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
    /// Extra records answered with a name's records, under another owner name.
    strays: HashMap<String, (String, Vec<IpAddr>)>,
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

    /// Answers for `name` also carry `ips` as records owned by `owner` (replacing earlier
    /// strays of `name`; an empty `ips` removes them).
    pub(crate) fn set_strays(&mut self, name: &str, owner: &str, ips: &[IpAddr]) {
        if ips.is_empty() {
            self.strays.remove(&normalize(name));
        } else {
            self.strays
                .insert(normalize(name), (owner.to_owned(), ips.to_vec()));
        }
    }

    /// The stray records answered with `name`: their owner name and addresses.
    pub(crate) fn strays(&self, name: &str) -> Option<(&str, &[IpAddr])> {
        self.strays
            .get(&normalize(name))
            .map(|(owner, ips)| (owner.as_str(), ips.as_slice()))
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
