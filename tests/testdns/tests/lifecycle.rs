//! Starting, stopping and surviving garbage.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use orca_cluster_testdns::{Mode, TestDnsServer};
use support::{
    ANSWER_TIMEOUT, SILENCE, TcpClient, addrs, ips, is_timeout, query, udp, udp_exchange, udp_raw,
};

const SVC: &str = "orca.default.svc.cluster.local";

#[test]
fn drop_stops_threads_promptly_and_frees_the_port() {
    let dns = TestDnsServer::start().unwrap();
    let addr = dns.addr();
    dns.set_records(SVC, &addrs(&["10.0.0.1"]));
    udp(addr, SVC, RecordType::A);

    // Busy state at drop time: an idle TCP connection, a held NoReply connection,
    // and a UDP query waiting out a long delay.
    let _idle = TcpClient::connect(addr);
    dns.set_mode(Mode::NoReply);
    let mut held = TcpClient::connect(addr);
    held.send(&query(SVC, RecordType::A));
    dns.set_mode(Mode::Delay(Duration::from_secs(30)));
    let waiting = support::udp_socket(addr, SILENCE);
    waiting
        .send_to(&query(SVC, RecordType::A).to_vec().unwrap(), addr)
        .unwrap();
    std::thread::sleep(Duration::from_millis(100)); // let the server pick everything up

    let started = Instant::now();
    drop(dns);
    let took = started.elapsed();
    eprintln!("drop took {took:?}");
    assert!(took < Duration::from_millis(300), "drop took {took:?}");

    let err = udp_exchange(addr, &query(SVC, RecordType::A), SILENCE).unwrap_err();
    assert!(
        is_timeout(&err) || err.kind() == std::io::ErrorKind::ConnectionRefused,
        "{err:?}"
    );
    assert!(TcpStream::connect(addr).is_err(), "TCP listener closed");
    TcpListener::bind(addr).expect("TCP port free again");
    UdpSocket::bind(addr).expect("UDP port free again");
}

#[test]
fn start_on_explicit_address() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    let dns = TestDnsServer::start_on(wanted).unwrap();
    assert_eq!(dns.addr(), wanted);
    dns.set_records(SVC, &addrs(&["10.0.0.3"]));
    assert_eq!(ips(&udp(wanted, SVC, RecordType::A)), addrs(&["10.0.0.3"]));
    assert_eq!(
        ips(&support::tcp(wanted, SVC, RecordType::A)),
        addrs(&["10.0.0.3"])
    );
    // The port is taken now, so a second server there fails cleanly.
    assert!(TestDnsServer::start_on(wanted).is_err());
}

#[test]
fn start_on_port_zero_uses_one_port_for_both_transports() {
    let servers: Vec<_> = (0..8)
        .map(|_| TestDnsServer::start_on("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    for dns in &servers {
        dns.set_records(SVC, &addrs(&["10.0.0.4"]));
        assert_ne!(dns.addr().port(), 0);
        assert_eq!(
            ips(&udp(dns.addr(), SVC, RecordType::A)),
            addrs(&["10.0.0.4"])
        );
        assert_eq!(
            ips(&support::tcp(dns.addr(), SVC, RecordType::A)),
            addrs(&["10.0.0.4"])
        );
    }
}

#[test]
fn ipv6_loopback_works_where_available() {
    // CI provides an IPv6 loopback (.ci/run adds ::1 if it is missing): no skipping there.
    let dns = match TestDnsServer::start_on("[::1]:0".parse().unwrap()) {
        Ok(dns) => dns,
        Err(e) => {
            orca_cluster_test_support::skip_outside_ci(&format!("no IPv6 loopback (::1): {e}"));
            return;
        }
    };
    dns.set_records(SVC, &addrs(&["fd00::9"]));
    assert_eq!(
        ips(&udp(dns.addr(), SVC, RecordType::AAAA)),
        addrs(&["fd00::9"])
    );
}

#[test]
fn garbage_is_ignored_or_formerr_and_the_server_keeps_working() {
    let dns = TestDnsServer::start().unwrap();
    let addr = dns.addr();
    dns.set_records(SVC, &addrs(&["10.0.0.1"]));

    // Too short to be a header, or a response: silently ignored.
    for packet in [&b""[..], b"\x01", b"hello", &[0xff; 11]] {
        let err = udp_raw(addr, packet, Duration::from_millis(50)).unwrap_err();
        assert!(is_timeout(&err), "{err:?}");
    }
    let mut response = query(SVC, RecordType::A).into_response();
    response.metadata.id = 7;
    let err = udp_raw(addr, &response.to_vec().unwrap(), Duration::from_millis(50)).unwrap_err();
    assert!(is_timeout(&err), "responses are not answered: {err:?}");

    // A query header promising a question that is not there: FORMERR with the same id.
    let header = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let reply = udp_raw(addr, &header, ANSWER_TIMEOUT).unwrap();
    let reply = hickory_proto::op::Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert!(reply.metadata.recursion_desired);

    // Over TCP: a garbage frame gets FORMERR, the connection keeps serving.
    let mut client = TcpClient::connect(addr);
    client.send_raw(&header);
    let formerr = client.recv(ANSWER_TIMEOUT).unwrap();
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
    client.send_raw(&[0xde, 0xad]);
    let reply = client.exchange(&query(SVC, RecordType::A));
    assert_eq!(ips(&reply), addrs(&["10.0.0.1"]));

    // A connection that dies mid-frame does not hurt anyone.
    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(&[0x00, 0x40, 0x12]).unwrap();
    drop(partial);

    assert_eq!(ips(&udp(addr, SVC, RecordType::A)), addrs(&["10.0.0.1"]));
}
