//! A tiny DNS client (hickory-proto + std sockets) for testing the test server.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// How long the helpers wait for an answer that is expected to come.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the helpers wait to conclude that no answer comes.
pub const SILENCE: Duration = Duration::from_millis(200);

/// `name` as a fully qualified [`Name`] (decoded names are always FQDNs, and
/// `Name`'s equality, while case-insensitive, tells FQDNs from relative names).
pub fn fqdn(name: &str) -> Name {
    let mut name = Name::from_ascii(name).unwrap();
    name.set_fqdn(true);
    name
}

/// A recursion-desired query for `name`/`rtype` with a random id.
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(fqdn(name), rtype));
    msg
}

/// Like [`query`], with an EDNS OPT record advertising `payload` bytes.
pub fn query_edns(name: &str, rtype: RecordType, payload: u16) -> Message {
    let mut msg = query(name, rtype);
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    msg.set_edns(edns);
    msg
}

/// A UDP socket of the same family as `server`, with `timeout` as read timeout.
pub fn udp_socket(server: SocketAddr, timeout: Duration) -> UdpSocket {
    let local: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let socket = UdpSocket::bind(local).unwrap();
    socket.set_read_timeout(Some(timeout)).unwrap();
    socket
}

/// Sends raw bytes over UDP and returns the raw reply, or the timeout error.
pub fn udp_raw(server: SocketAddr, packet: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let socket = udp_socket(server, timeout);
    socket.send_to(packet, server)?;
    let mut buf = vec![0u8; 65_535];
    let (len, _) = socket.recv_from(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

/// Sends `msg` over UDP; returns the decoded reply or the timeout error.
pub fn udp_exchange(server: SocketAddr, msg: &Message, timeout: Duration) -> io::Result<Message> {
    let reply = udp_raw(server, &msg.to_vec().unwrap(), timeout)?;
    Ok(Message::from_vec(&reply).expect("reply decodes"))
}

/// Queries `name`/`rtype` over UDP, expecting an answer.
pub fn udp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let msg = query(name, rtype);
    let reply = udp_exchange(server, &msg, ANSWER_TIMEOUT).expect("UDP answer");
    assert_eq!(reply.metadata.id, msg.metadata.id);
    reply
}

/// One TCP connection to the server, carrying length-prefixed messages.
pub struct TcpClient {
    /// The connection.
    pub stream: TcpStream,
}

impl TcpClient {
    /// Connects to `server`.
    pub fn connect(server: SocketAddr) -> TcpClient {
        let stream = TcpStream::connect(server).unwrap();
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
        TcpClient { stream }
    }

    /// Sends raw bytes as one length-prefixed frame.
    pub fn send_raw(&mut self, packet: &[u8]) {
        let mut frame = u16::try_from(packet.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(packet);
        self.stream.write_all(&frame).unwrap();
    }

    /// Sends `msg` as one frame.
    pub fn send(&mut self, msg: &Message) {
        self.send_raw(&msg.to_vec().unwrap());
    }

    /// Reads one reply, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Message> {
        self.stream.set_read_timeout(Some(timeout))?;
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len)?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream.read_exact(&mut body)?;
        Ok(Message::from_vec(&body).expect("reply decodes"))
    }

    /// Sends `msg` and reads its reply, expecting an answer.
    pub fn exchange(&mut self, msg: &Message) -> Message {
        self.send(msg);
        let reply = self.recv(ANSWER_TIMEOUT).expect("TCP answer");
        assert_eq!(reply.metadata.id, msg.metadata.id);
        reply
    }
}

/// Queries `name`/`rtype` over a fresh TCP connection, expecting an answer.
pub fn tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    TcpClient::connect(server).exchange(&query(name, rtype))
}

/// The A/AAAA addresses in the answer section, in order.
pub fn ips(msg: &Message) -> Vec<IpAddr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

/// Parses a list of address literals.
pub fn addrs(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Whether an I/O error is a read timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
