//! Go-compatible scoring against the vectors computed by an independent Go implementation
//! (`tests/vectors/go_compat_sample.json`).
//!
//! Every case is checked: the chunk hash, the path, each peer's score in the file's peer order,
//! the winner (ties to the earliest peer, Go's `>`), and the coordinator of a [`Snapshot`] built
//! from the same peers (sorted and de-duplicated, so only the winning *peer* must agree).

use std::net::IpAddr;

use orca_cluster_core::rendezvous::{
    self, coordinator_index, go_compat_score, go_hash_key, go_path,
};
use orca_cluster_core::{ChunkKey, Peer, PeerAddr, Scoring, SelfIdentity, Snapshot};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/vectors/go_compat_sample.json"
);

fn load() -> Value {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("{VECTORS}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{VECTORS}: {e}"))
}

fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("field {name:?} is not a string in {v}"))
}

fn u64_field(v: &Value, name: &str) -> u64 {
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("field {name:?} is not a u64 in {v}"))
}

/// A decimal score string as the file stores it.
fn decimal(v: &Value) -> u64 {
    v.as_str()
        .unwrap_or_else(|| panic!("score {v} is not a string"))
        .parse()
        .unwrap_or_else(|e| panic!("score {v}: {e}"))
}

fn chunk_key(v: &Value) -> ChunkKey {
    ChunkKey {
        origin_id: str_field(v, "origin_id").into(),
        bucket: str_field(v, "bucket").into(),
        object_key: str_field(v, "object_key").into(),
        etag: str_field(v, "etag").into(),
        chunk_size: u64_field(v, "chunk_size"),
        index: u64_field(v, "index"),
    }
}

fn peer(v: &Value) -> Peer {
    let ip: IpAddr = str_field(v, "ip")
        .parse()
        .unwrap_or_else(|e| panic!("peer {v}: {e}"));
    let port = u16::try_from(u64_field(v, "port")).unwrap_or_else(|e| panic!("peer {v}: {e}"));
    Peer {
        ip,
        port,
        is_self: false,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn peer_set(doc: &Value, name: &str) -> Vec<Peer> {
    doc["peer_sets"][name]
        .as_array()
        .unwrap_or_else(|| panic!("peer set {name:?} missing"))
        .iter()
        .map(peer)
        .collect()
}

fn cases(doc: &Value) -> &[Value] {
    doc["cases"].as_array().expect("cases is an array")
}

#[test]
fn vector_file_is_complete() {
    let doc = load();
    // Guards against a truncated or emptied file making the other tests vacuous.
    assert!(cases(&doc).len() >= 6, "expected at least 6 cases");
    assert!(doc["score_cases"].as_array().expect("score_cases").len() >= 2);
    for case in cases(&doc) {
        let peers = peer_set(&doc, str_field(case, "peer_set"));
        let scores = case["scores"].as_array().expect("scores");
        assert_eq!(scores.len(), peers.len(), "case {}", case["name"]);
        assert!(!peers.is_empty());
    }
}

#[test]
fn chunk_hash_and_path_match_go() {
    let doc = load();
    for case in cases(&doc) {
        let name = str_field(case, "name");
        let key = chunk_key(&case["key"]);
        assert_eq!(
            hex(&go_hash_key(&key)),
            str_field(case, "hash_key_hex"),
            "case {name}: hash_key"
        );
        assert_eq!(go_path(&key), str_field(case, "path"), "case {name}: path");
    }
}

#[test]
fn peer_scores_and_winner_match_go() {
    let doc = load();
    for case in cases(&doc) {
        let name = str_field(case, "name");
        let key = chunk_key(&case["key"]);
        let peers = peer_set(&doc, str_field(case, "peer_set"));
        let want: Vec<u64> = case["scores"]
            .as_array()
            .expect("scores")
            .iter()
            .map(decimal)
            .collect();
        for (i, (p, want)) in peers.iter().zip(&want).enumerate() {
            assert_eq!(
                rendezvous::score(p, &key, Scoring::GoCompat),
                *want,
                "case {name}: score of peer {i} ({p})"
            );
            // The raw Go function over the textual IP and the path gives the same number.
            let text = p.ip.to_string();
            assert_eq!(
                go_compat_score(text.as_bytes(), p.port, go_path(&key).as_bytes()),
                *want,
                "case {name}: go_compat_score of peer {i} ({p})"
            );
        }
        let winner = u64_field(case, "winner_index") as usize;
        assert_eq!(
            coordinator_index(&peers, &key, Scoring::GoCompat),
            Some(winner),
            "case {name}: winner_index"
        );
        // `ranked` keeps the caller's order among equal scores, so its head is the Go winner.
        let ranked = rendezvous::ranked(&peers, &key, Scoring::GoCompat);
        assert_eq!(ranked[0].0, peers[winner], "case {name}: ranked()[0]");
        assert_eq!(ranked[0].1, want[winner], "case {name}: ranked()[0] score");
    }
}

#[test]
fn the_tie_case_really_is_a_tie() {
    // The tie case must exercise "strictly greater replaces"; if the file changed so that it no
    // longer has an equal top score, say so instead of passing vacuously.
    let doc = load();
    let tie = cases(&doc)
        .iter()
        .find(|c| str_field(c, "name") == "tie_duplicate_winner")
        .expect("tie case present");
    let scores: Vec<u64> = tie["scores"]
        .as_array()
        .expect("scores")
        .iter()
        .map(decimal)
        .collect();
    let max = *scores.iter().max().expect("non-empty");
    let winners: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] == max).collect();
    assert!(winners.len() >= 2, "the tie case has a single top score");
    assert_eq!(u64_field(tie, "winner_index") as usize, winners[0]);
}

#[test]
fn score_cases_match_go() {
    let doc = load();
    for case in doc["score_cases"].as_array().expect("score_cases") {
        let name = str_field(case, "name");
        let ip = str_field(&case["peer"], "ip");
        let port = u16::try_from(u64_field(&case["peer"], "port")).expect("port fits u16");
        let key = str_field(case, "key");
        assert_eq!(
            go_compat_score(ip.as_bytes(), port, key.as_bytes()),
            decimal(&case["score"]),
            "score case {name}"
        );
    }
}

#[test]
fn go_compat_snapshot_agrees_on_the_coordinator() {
    let doc = load();
    for case in cases(&doc) {
        let name = str_field(case, "name");
        let key = chunk_key(&case["key"]);
        let peers = peer_set(&doc, str_field(case, "peer_set"));
        let want = peers[u64_field(case, "winner_index") as usize];
        let addrs: Vec<PeerAddr> = peers
            .iter()
            .map(|p| PeerAddr {
                ip: p.ip,
                port: p.port,
            })
            .collect();
        // Every peer of the set takes a turn as self: the coordinator must not depend on who
        // is asking, on the DNS order, or on duplicates.
        for me in &peers {
            let id = SelfIdentity::new([me.ip], me.port).expect("one self ip");
            for order in [addrs.clone(), addrs.iter().rev().copied().collect()] {
                let snap = Snapshot::new(&id, order, Scoring::GoCompat, 1);
                let mut distinct: Vec<(IpAddr, u16)> =
                    peers.iter().map(|p| (p.ip, p.port)).collect();
                distinct.sort();
                distinct.dedup();
                assert_eq!(snap.len(), distinct.len(), "case {name}: de-duplicated");
                let got = snap.coordinator(&key);
                assert_eq!(
                    (got.ip, got.port),
                    (want.ip, want.port),
                    "case {name}, self {me}: snapshot coordinator"
                );
                assert_eq!(
                    got.is_self,
                    (me.ip, me.port) == (want.ip, want.port),
                    "case {name}, self {me}: is_self of the coordinator"
                );
                assert_eq!(
                    snap.is_coordinator(&key),
                    got.is_self,
                    "case {name}, self {me}"
                );
                // Snapshot scores are the vector's scores, peer by peer.
                for (p, s) in snap.peers().iter().zip(snap.scores(&key)) {
                    let i = peers
                        .iter()
                        .position(|q| (q.ip, q.port) == (p.ip, p.port))
                        .expect("snapshot peer comes from the file");
                    assert_eq!(
                        s,
                        decimal(&case["scores"][i]),
                        "case {name}: snapshot score of {p}"
                    );
                }
            }
        }
    }
}
