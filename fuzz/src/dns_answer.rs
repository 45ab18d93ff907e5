//! `dns_answer`: the DNS driver's answer handling on an arbitrary DNS message, from the wire
//! bytes to the core's snapshot.
//!
//! The input is a DNS message as a server sends it. It is decoded with hickory (as the
//! resolver decodes a UDP or TCP answer); the lookup is built from its first query (a fixed
//! query for [`SERVICE`] when it has none) and its answer section, as the resolver builds the
//! `Lookup` of an answer that holds the records asked for. Then exactly what the DNS peer
//! source does: `answer_records` and `lookup_answer`, and the answer goes into the core's
//! membership state machine as the membership task feeds it. The message ID picks the
//! configured address family (`id % 3`: any, IPv4, IPv6), so every family is reachable without
//! leaving the DNS wire format. Invariants:
//!
//! - the peers kept are exactly the A and AAAA records of class IN whose owner name is the
//!   queried name or a name of its CNAME chain (the first CNAME owned by the current name,
//!   at most `MAX_CNAME_HOPS` of them, a loop ends it), in answer order, with port 0; this
//!   is re-derived here with a label-by-label comparison of its own;
//! - an answer without such records is the failure `NoRecords`, never an empty list (which the
//!   core would answer with `[self]`);
//! - in the snapshot: self is present, every other peer is one of the kept addresses, of the
//!   configured family, with port 0, and no address a pod cannot have
//!   (`orca_cluster_core::peer::is_peer_ip`) is a peer; every usable kept address is a peer;
//!   an answer with none usable is a failure that publishes `[self]`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_resolver::lookup::Lookup;
use hickory_resolver::proto::op::{Message, Query};
use hickory_resolver::proto::rr::rdata::CNAME;
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use orca_cluster_core::peer::{canonical_ip, is_peer_ip};
use orca_cluster_core::{
    Instant, IpFamily, LookupAnswer, LookupFailure, Membership, MembershipConfig, MembershipEvent,
    PeerAddr, Scoring, Snapshot,
};
use orca_cluster_driver_common::source::{MAX_CNAME_HOPS, answer_records, lookup_answer};

/// The service name queried when the message carries no query, and the name the seeds ask for.
pub const SERVICE: &str = "orca.default.svc.cluster.local.";

/// This replica's IPs in the membership the answer is fed to (10.0.0.1 and fd00::1).
pub const SELF_IPS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
];

/// The configured address family for a message ID.
pub fn family_for_id(id: u16) -> IpFamily {
    match id % 3 {
        0 => IpFamily::Any,
        1 => IpFamily::Ipv4,
        _ => IpFamily::Ipv6,
    }
}

/// The target: see the module docs.
pub fn dns_answer(data: &[u8]) {
    let Ok(message) = Message::from_vec(data) else {
        return;
    };
    let query = match message.queries.first() {
        Some(query) => query.clone(),
        None => Query::query(
            Name::from_ascii(SERVICE).expect("a valid name"),
            RecordType::A,
        ),
    };
    let lookup = Lookup::new_with_max_ttl(query.clone(), message.answers.iter().cloned());
    assert_eq!(lookup.answers(), message.answers.as_slice());

    let records = answer_records(&lookup);
    let expected = model_records(query.name(), &message.answers);
    assert_eq!(records, expected, "query {query}");

    let answer = lookup_answer(&lookup);
    match &answer {
        LookupAnswer::Records(peers) => {
            assert!(!peers.is_empty(), "an empty list would publish [self]");
            assert_eq!(peers, &records);
        }
        LookupAnswer::Failed(failure) => {
            assert_eq!(*failure, LookupFailure::NoRecords);
            assert!(records.is_empty());
        }
    }

    feed_membership(family_for_id(message.metadata.id), answer, &records);
}

/// A name as hickory compares names: FQDN or not, then every label ASCII-lowercased.
fn name_key(name: &Name) -> (bool, Vec<Vec<u8>>) {
    (
        name.is_fqdn(),
        name.iter().map(<[u8]>::to_ascii_lowercase).collect(),
    )
}

/// The owner rule, re-derived: the chain of names from the query name, each next one the target
/// of the first IN CNAME record owned by the last, at most `MAX_CNAME_HOPS` hops, stopping at a
/// name already on it; then the IN A/AAAA records owned by a name of the chain, in order.
fn model_records(query_name: &Name, answers: &[Record]) -> Vec<PeerAddr> {
    let mut chain = vec![name_key(query_name)];
    for _hop in 0..MAX_CNAME_HOPS {
        let Some(current) = chain.last() else {
            break;
        };
        let target = answers
            .iter()
            .filter(|r| r.dns_class == DNSClass::IN && name_key(&r.name) == *current)
            .find_map(|r| match &r.data {
                RData::CNAME(CNAME(target)) => Some(name_key(target)),
                _ => None,
            });
        match target {
            Some(target) if !chain.contains(&target) => chain.push(target),
            _ => break,
        }
    }
    answers
        .iter()
        .filter(|r| r.dns_class == DNSClass::IN && chain.contains(&name_key(&r.name)))
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .map(|ip| PeerAddr { ip, port: 0 })
        .collect()
}

/// Feeds `answer` to a fresh membership state machine as its first lookup's answer, the way the
/// membership task does, and checks the snapshot it makes of it.
fn feed_membership(family: IpFamily, answer: LookupAnswer, records: &[PeerAddr]) {
    let mut config = MembershipConfig::new(SERVICE, SELF_IPS);
    config.ip_family = family;
    let start = Instant::from_nanos(1_000_000_000);
    let mut machine = Membership::new(&config, start).expect("a valid configuration");
    let request = machine
        .poll_lookup()
        .expect("the first lookup is requested at construction");
    assert_eq!(request.name, SERVICE);
    let at = start + config.lookup_timeout / 2;
    machine.handle_lookup(at, request.id, answer);

    let usable: Vec<IpAddr> = records
        .iter()
        .map(|p| canonical_ip(p.ip))
        .filter(|ip| family.matches(*ip) && is_peer_ip(*ip))
        .collect();
    let snapshot = machine.snapshot().clone();
    assert!(machine.has_initial_snapshot());
    assert!(snapshot.self_peer().is_some(), "self missing");
    assert!(
        snapshot.peers().iter().all(|p| is_peer_ip(p.ip)),
        "an address no pod can have became a peer: {:?}",
        snapshot.peers()
    );
    for peer in snapshot.peers().iter().filter(|p| !p.is_self) {
        assert_eq!(peer.port, 0, "{peer}");
        assert!(family.matches(peer.ip), "{peer} is not of {family:?}");
        assert!(usable.contains(&peer.ip), "{peer} was not in the answer");
    }
    for ip in &usable {
        assert!(
            snapshot.peers().iter().any(|p| p.ip == *ip && p.port == 0),
            "{ip} of the answer is missing from {:?}",
            snapshot.peers()
        );
    }

    let mut failures = Vec::new();
    let mut changes = 0;
    while let Some(event) = machine.poll_event() {
        match event {
            MembershipEvent::SnapshotChanged {
                snapshot: published,
                initial,
                ..
            } => {
                assert!(initial);
                assert_eq!(published, snapshot);
                changes += 1;
            }
            MembershipEvent::LookupFailed { failure, .. } => failures.push(failure),
        }
    }
    assert_eq!(changes, 1, "one initial snapshot");
    if usable.is_empty() {
        // No peer left: a failed lookup; before any answer that publishes [self].
        assert_eq!(failures, [LookupFailure::NoRecords]);
        assert_eq!(machine.failure_streak(), 1);
        let only_self = Snapshot::only_self(machine.self_identity(), Scoring::Xxh3, 0);
        assert_eq!(snapshot.peers(), only_self.peers());
    } else {
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(machine.failure_streak(), 0);
    }
}

/// The checked-in seeds of `corpus/dns_answer/`: real DNS answers, encoded by hickory
/// (`tests/replay_corpus.rs` checks the files against this list and rewrites them with
/// `FUZZ_WRITE_SEEDS=1`).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use hickory_resolver::proto::op::{OpCode, ResponseCode};
    use hickory_resolver::proto::rr::rdata::{A, AAAA, SOA, TXT};

    let name = |text: &str| Name::from_ascii(text).expect("a valid name");
    let a = |owner: &str, ip: &str| {
        Record::from_rdata(name(owner), 5, RData::A(A(ip.parse().expect("an IPv4"))))
    };
    let aaaa = |owner: &str, ip: &str| {
        Record::from_rdata(
            name(owner),
            5,
            RData::AAAA(AAAA(ip.parse().expect("an IPv6"))),
        )
    };
    let cname = |owner: &str, target: &str| {
        Record::from_rdata(name(owner), 5, RData::CNAME(CNAME(name(target))))
    };
    let message = |id: u16, query: Option<(&str, RecordType)>, answers: Vec<Record>| {
        let mut m = Message::response(id, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.metadata.recursion_available = true;
        if let Some((qname, qtype)) = query {
            m.add_query(Query::query(name(qname), qtype));
        }
        m.add_answers(answers);
        m
    };
    let svc = SERVICE;
    // Id 3: family any (3 % 3 == 0); 4: IPv4 only; 5: IPv6 only.
    let mut out: Vec<(&'static str, Message)> = vec![
        (
            "seed-three-pods",
            message(
                3,
                Some((svc, RecordType::A)),
                vec![a(svc, "10.0.0.1"), a(svc, "10.0.0.2"), a(svc, "10.0.0.3")],
            ),
        ),
        (
            "seed-dual-stack-ipv6-family",
            message(
                5,
                Some((svc, RecordType::AAAA)),
                vec![
                    aaaa(svc, "fd00::1"),
                    aaaa(svc, "fd00::2"),
                    a(svc, "10.0.0.2"),
                    aaaa(svc, "::ffff:10.0.0.9"),
                ],
            ),
        ),
        (
            "seed-cname-chain",
            message(
                6,
                Some(("orca.example.", RecordType::A)),
                vec![
                    cname("orca.example.", "hop.example."),
                    cname("hop.example.", "pods.example."),
                    cname("elsewhere.example.", "stray.example."),
                    a("pods.example.", "10.0.0.2"),
                    a("hop.example.", "10.0.0.3"),
                    a("stray.example.", "10.9.9.9"),
                ],
            ),
        ),
        (
            "seed-foreign-owners",
            message(
                7,
                Some((svc, RecordType::A)),
                vec![
                    a("evil.example.", "10.9.9.9"),
                    a("default.svc.cluster.local.", "10.9.9.8"),
                    a("ORCA.Default.SVC.cluster.local.", "10.0.0.2"),
                    Record::from_rdata(
                        name(svc),
                        5,
                        RData::TXT(TXT::new(vec!["10.9.9.7".to_string()])),
                    ),
                ],
            ),
        ),
        (
            "seed-non-peer-addresses",
            message(
                9,
                Some((svc, RecordType::A)),
                vec![
                    a(svc, "0.0.0.0"),
                    a(svc, "0.1.2.3"),
                    a(svc, "255.255.255.255"),
                    a(svc, "224.0.0.1"),
                    aaaa(svc, "::"),
                    aaaa(svc, "ff02::1"),
                    aaaa(svc, "::ffff:0.0.0.0"),
                    a(svc, "10.0.0.4"),
                ],
            ),
        ),
        (
            "seed-only-non-peer-addresses",
            message(
                12,
                Some((svc, RecordType::A)),
                vec![a(svc, "255.255.255.255"), aaaa(svc, "ff02::1")],
            ),
        ),
        (
            "seed-cname-loop",
            message(
                15,
                Some(("a.example.", RecordType::A)),
                vec![
                    cname("a.example.", "b.example."),
                    cname("b.example.", "a.example."),
                    a("b.example.", "10.0.0.3"),
                ],
            ),
        ),
    ];
    let mut long = Vec::new();
    for i in 0..=MAX_CNAME_HOPS {
        long.push(cname(
            &format!("n{i}.example."),
            &format!("n{}.example.", i + 1),
        ));
    }
    long.push(a(&format!("n{MAX_CNAME_HOPS}.example."), "10.0.0.4"));
    long.push(a(&format!("n{}.example.", MAX_CNAME_HOPS + 1), "10.9.9.9"));
    out.push((
        "seed-long-cname-chain",
        message(18, Some(("n0.example.", RecordType::A)), long),
    ));
    let mut chaos = a(svc, "10.9.9.9");
    chaos.dns_class = DNSClass::CH;
    let mut chaos_cname = cname(svc, "elsewhere.example.");
    chaos_cname.dns_class = DNSClass::CH;
    out.push((
        "seed-other-class",
        message(
            21,
            Some((svc, RecordType::A)),
            vec![
                chaos,
                chaos_cname,
                a("elsewhere.example.", "10.9.9.8"),
                a(svc, "10.0.0.5"),
            ],
        ),
    ));
    out.push((
        "seed-no-query-section",
        message(
            24,
            None,
            vec![a(svc, "10.0.0.6"), a("x.example.", "10.9.9.9")],
        ),
    ));
    let mut nxdomain = message(27, Some((svc, RecordType::A)), Vec::new());
    nxdomain.metadata.response_code = ResponseCode::NXDomain;
    nxdomain.add_authority(Record::from_rdata(
        name("cluster.local."),
        30,
        RData::SOA(SOA::new(
            name("ns.dns.cluster.local."),
            name("hostmaster.cluster.local."),
            1,
            7200,
            1800,
            86400,
            30,
        )),
    ));
    out.push(("seed-nxdomain-soa", nxdomain));
    let mut glue = message(30, Some((svc, RecordType::A)), vec![a(svc, "10.0.0.7")]);
    glue.add_additional(a("ns.example.", "10.9.9.9"));
    glue.add_authority(a(svc, "10.9.9.8"));
    out.push(("seed-records-outside-answers", glue));

    out.into_iter()
        .map(|(file, m)| (file, m.to_vec().expect("an encodable seed")))
        .collect()
}
