//! Normal-mode answers from the record table.

mod support;

use hickory_proto::op::{MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use orca_cluster_testdns::TestDnsServer;
use support::{
    ANSWER_TIMEOUT, TcpClient, addrs, fqdn, ips, query, query_edns, tcp, udp, udp_exchange,
};

const SVC: &str = "orca.default.svc.cluster.local";

fn server_with_svc() -> TestDnsServer {
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(SVC, &addrs(&["10.0.0.1", "fd00::1", "10.0.0.2", "fd00::2"]));
    dns
}

#[test]
fn a_and_aaaa_answers_over_udp_and_tcp() {
    let dns = server_with_svc();
    assert!(dns.addr().ip().is_loopback());
    for reply in [
        udp(dns.addr(), SVC, RecordType::A),
        tcp(dns.addr(), SVC, RecordType::A),
    ] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ips(&reply), addrs(&["10.0.0.1", "10.0.0.2"]));
        assert!(
            reply
                .answers
                .iter()
                .all(|r| r.record_type() == RecordType::A)
        );
        assert!(reply.answers.iter().all(|r| r.ttl == 30));
    }
    for reply in [
        udp(dns.addr(), SVC, RecordType::AAAA),
        tcp(dns.addr(), SVC, RecordType::AAAA),
    ] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(ips(&reply), addrs(&["fd00::1", "fd00::2"]));
        assert!(
            reply
                .answers
                .iter()
                .all(|r| r.record_type() == RecordType::AAAA)
        );
    }
}

#[test]
fn names_match_case_insensitively_with_or_without_trailing_dot() {
    let dns = TestDnsServer::start().unwrap();
    dns.set_records("Orca.Default.SVC.cluster.local.", &addrs(&["10.0.0.7"]));
    for name in [
        SVC,
        "orca.default.svc.cluster.local.",
        "ORCA.DEFAULT.SVC.CLUSTER.LOCAL.",
    ] {
        let reply = udp(dns.addr(), name, RecordType::A);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{name}"
        );
        assert_eq!(ips(&reply), addrs(&["10.0.0.7"]), "{name}");
        // The answer owner name echoes the question as asked, case included.
        assert!(reply.answers[0].name.eq_case(&fqdn(name)), "{name}");
    }
}

#[test]
fn unknown_and_removed_names_are_nxdomain() {
    let dns = server_with_svc();
    let unknown = udp(dns.addr(), "nope.default.svc.cluster.local", RecordType::A);
    assert_eq!(unknown.metadata.response_code, ResponseCode::NXDomain);
    assert!(unknown.answers.is_empty());

    dns.remove_name("ORCA.default.svc.cluster.local.");
    for rtype in [RecordType::A, RecordType::AAAA] {
        let reply = udp(dns.addr(), SVC, rtype);
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        let reply = tcp(dns.addr(), SVC, rtype);
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    }
}

#[test]
fn known_name_without_records_of_the_type_is_nodata() {
    let dns = TestDnsServer::start().unwrap();
    dns.set_records("v4.only", &addrs(&["10.0.0.1"]));
    dns.set_records("v6.only", &addrs(&["fd00::1"]));
    dns.set_records("no.records", &[]);
    for (name, rtype) in [
        ("v4.only", RecordType::AAAA),
        ("v6.only", RecordType::A),
        ("no.records", RecordType::A),
        ("no.records", RecordType::AAAA),
        ("v4.only", RecordType::TXT),
        ("v4.only", RecordType::SRV),
    ] {
        let reply = udp(dns.addr(), name, rtype);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{name} {rtype}"
        );
        assert!(reply.answers.is_empty(), "{name} {rtype}");
    }
}

#[test]
fn set_records_replaces_and_ttl_is_configurable() {
    let dns = server_with_svc();
    dns.set_records(SVC, &addrs(&["10.0.0.9"]));
    dns.set_ttl(5);
    let reply = udp(dns.addr(), SVC, RecordType::A);
    assert_eq!(ips(&reply), addrs(&["10.0.0.9"]));
    assert_eq!(reply.answers[0].ttl, 5);
    assert!(udp(dns.addr(), SVC, RecordType::AAAA).answers.is_empty());
}

#[test]
fn response_copies_id_question_and_recursion_desired() {
    let dns = server_with_svc();
    for rd in [true, false] {
        let mut msg = query(SVC, RecordType::A);
        msg.metadata.id = 0xBEEF;
        msg.metadata.recursion_desired = rd;
        let reply = udp_exchange(dns.addr(), &msg, ANSWER_TIMEOUT).unwrap();
        assert_eq!(reply.metadata.id, 0xBEEF);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert!(reply.metadata.authoritative);
        assert!(reply.metadata.recursion_available);
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.metadata.recursion_desired, rd);
        assert_eq!(reply.queries, msg.queries);
        assert!(reply.edns.is_none());
    }
    let reply = udp_exchange(
        dns.addr(),
        &query_edns(SVC, RecordType::A, 1232),
        ANSWER_TIMEOUT,
    )
    .unwrap();
    assert!(reply.edns.is_some(), "EDNS queries get an OPT record back");
}

#[test]
fn queries_are_counted_per_transport() {
    let dns = server_with_svc();
    assert_eq!((dns.query_count(), dns.tcp_query_count()), (0, 0));
    udp(dns.addr(), SVC, RecordType::A);
    udp(dns.addr(), "unknown.name", RecordType::AAAA);
    assert_eq!((dns.query_count(), dns.tcp_query_count()), (2, 0));
    let mut client = TcpClient::connect(dns.addr());
    client.exchange(&query(SVC, RecordType::A));
    client.exchange(&query(SVC, RecordType::AAAA));
    assert_eq!((dns.query_count(), dns.tcp_query_count()), (4, 2));
}
