//! Failure and timing modes.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use orca_cluster_testdns::{Mode, TestDnsServer};
use support::{SILENCE, TcpClient, addrs, ips, is_timeout, query, tcp, udp, udp_exchange};

const SVC: &str = "orca.default.svc.cluster.local";

fn server_with_svc() -> TestDnsServer {
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(SVC, &addrs(&["10.0.0.1", "fd00::1"]));
    dns
}

#[test]
fn error_modes_answer_that_code_to_every_query() {
    let dns = server_with_svc();
    for (mode, code) in [
        (Mode::NxDomain, ResponseCode::NXDomain),
        (Mode::ServFail, ResponseCode::ServFail),
        (Mode::Refused, ResponseCode::Refused),
        (Mode::Empty, ResponseCode::NoError),
    ] {
        dns.set_mode(mode);
        for name in [SVC, "unknown.name"] {
            for rtype in [RecordType::A, RecordType::AAAA] {
                for reply in [udp(dns.addr(), name, rtype), tcp(dns.addr(), name, rtype)] {
                    assert_eq!(
                        reply.metadata.response_code, code,
                        "{mode:?} {name} {rtype}"
                    );
                    assert!(reply.answers.is_empty(), "{mode:?} {name} {rtype}");
                    assert_eq!(reply.queries.len(), 1);
                }
            }
        }
    }
    dns.set_mode(Mode::Normal);
    assert_eq!(
        ips(&udp(dns.addr(), SVC, RecordType::A)),
        addrs(&["10.0.0.1"])
    );
}

#[test]
fn no_reply_over_udp_times_out_on_the_client() {
    let dns = server_with_svc();
    dns.set_mode(Mode::NoReply);
    let err = udp_exchange(dns.addr(), &query(SVC, RecordType::A), SILENCE).unwrap_err();
    assert!(is_timeout(&err), "{err:?}");
    assert_eq!(dns.query_count(), 1, "the query was still received");
}

#[test]
fn no_reply_over_tcp_holds_the_connection_open() {
    let dns = server_with_svc();
    dns.set_mode(Mode::NoReply);
    let mut client = TcpClient::connect(dns.addr());
    client.send(&query(SVC, RecordType::A));
    let err = client.recv(SILENCE).unwrap_err();
    assert!(is_timeout(&err), "connection must stay open, got {err:?}");
    assert_eq!(dns.tcp_query_count(), 1);
    // Still the same open connection: once answering again, it serves the next query.
    dns.set_mode(Mode::Normal);
    let reply = client.exchange(&query(SVC, RecordType::AAAA));
    assert_eq!(ips(&reply), addrs(&["fd00::1"]));
}

#[test]
fn delay_mode_answers_normally_after_the_delay() {
    let dns = server_with_svc();
    let delay = Duration::from_millis(300);
    dns.set_mode(Mode::Delay(delay));

    let started = Instant::now();
    let reply = udp(dns.addr(), SVC, RecordType::A);
    assert!(
        started.elapsed() >= delay,
        "UDP answered after {:?}",
        started.elapsed()
    );
    assert_eq!(ips(&reply), addrs(&["10.0.0.1"]));

    let started = Instant::now();
    let reply = tcp(dns.addr(), SVC, RecordType::AAAA);
    assert!(
        started.elapsed() >= delay,
        "TCP answered after {:?}",
        started.elapsed()
    );
    assert_eq!(ips(&reply), addrs(&["fd00::1"]));
}

#[test]
fn delayed_queries_do_not_block_each_other() {
    let dns = server_with_svc();
    let delay = Duration::from_millis(300);
    dns.set_mode(Mode::Delay(delay));
    let addr = dns.addr();
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|i| {
            thread::spawn(move || {
                if i % 2 == 0 {
                    udp(addr, SVC, RecordType::A)
                } else {
                    tcp(addr, SVC, RecordType::A)
                }
            })
        })
        .collect();
    for client in clients {
        assert_eq!(ips(&client.join().unwrap()), addrs(&["10.0.0.1"]));
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= delay && elapsed < delay * 3,
        "4 delayed queries took {elapsed:?}"
    );
}
