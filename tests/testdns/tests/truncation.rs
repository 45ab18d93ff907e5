//! Large answers: truncated over UDP, complete over TCP.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use orca_cluster_testdns::TestDnsServer;
use support::{ANSWER_TIMEOUT, TcpClient, addrs, ips, query, query_edns, udp, udp_exchange};

const BIG: &str = "big.default.svc.cluster.local";

fn many_v4(n: u32) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
        .collect()
}

#[test]
fn thousand_records_truncate_over_udp_and_arrive_whole_over_tcp() {
    let dns = TestDnsServer::start().unwrap();
    let all = many_v4(1000);
    dns.set_records(BIG, &all);

    let reply = udp(dns.addr(), BIG, RecordType::A);
    assert!(reply.metadata.truncation, "TC bit set");
    assert!(reply.answers.is_empty(), "answers dropped");
    assert_eq!(reply.queries.len(), 1, "question kept");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);

    // Even a client advertising a huge EDNS payload gets TC (capped at 1232 bytes).
    let msg = query_edns(BIG, RecordType::A, 65_000);
    let reply = udp_exchange(dns.addr(), &msg, ANSWER_TIMEOUT).unwrap();
    assert!(reply.metadata.truncation);

    let mut client = TcpClient::connect(dns.addr());
    let reply = client.exchange(&query(BIG, RecordType::A));
    assert!(!reply.metadata.truncation);
    assert_eq!(ips(&reply), all);
    assert_eq!(dns.tcp_query_count(), 1);
    assert_eq!(dns.query_count(), 3);
}

#[test]
fn edns_payload_size_raises_the_udp_limit() {
    let dns = TestDnsServer::start().unwrap();
    // ~50 * 16 bytes of answers: over 512, under 1232.
    let fifty = many_v4(50);
    dns.set_records(BIG, &fifty);
    assert!(udp(dns.addr(), BIG, RecordType::A).metadata.truncation);
    let small = udp_exchange(
        dns.addr(),
        &query_edns(BIG, RecordType::A, 512),
        ANSWER_TIMEOUT,
    );
    assert!(small.unwrap().metadata.truncation);
    let reply = udp_exchange(
        dns.addr(),
        &query_edns(BIG, RecordType::A, 1232),
        ANSWER_TIMEOUT,
    )
    .unwrap();
    assert!(!reply.metadata.truncation);
    assert_eq!(ips(&reply), fifty);
}

#[test]
fn small_answers_are_not_truncated() {
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(BIG, &many_v4(10));
    let reply = udp(dns.addr(), BIG, RecordType::A);
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 10);
}

#[test]
fn several_queries_per_tcp_connection_including_pipelined() {
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(BIG, &addrs(&["10.1.1.1", "fd00::5"]));
    let mut client = TcpClient::connect(dns.addr());
    for _ in 0..3 {
        let reply = client.exchange(&query(BIG, RecordType::A));
        assert_eq!(ips(&reply), addrs(&["10.1.1.1"]));
    }
    // Two queries written back to back before reading either answer.
    let first = query(BIG, RecordType::A);
    let second = query(BIG, RecordType::AAAA);
    let mut both = Vec::new();
    for msg in [&first, &second] {
        let bytes = msg.to_vec().unwrap();
        both.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
        both.extend_from_slice(&bytes);
    }
    std::io::Write::write_all(&mut client.stream, &both).unwrap();
    let a = client.recv(ANSWER_TIMEOUT).unwrap();
    let aaaa = client.recv(ANSWER_TIMEOUT).unwrap();
    assert_eq!(
        (a.metadata.id, ips(&a)),
        (first.metadata.id, addrs(&["10.1.1.1"]))
    );
    assert_eq!(
        (aaaa.metadata.id, ips(&aaaa)),
        (second.metadata.id, addrs(&["fd00::5"]))
    );
    assert_eq!(dns.tcp_query_count(), 5);
}
