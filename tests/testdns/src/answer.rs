//! Turning a received query packet into the response to send (if any).

use std::net::IpAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::Mode;
use crate::shared::{Shared, lock};

/// Plain-DNS UDP payload limit when the query has no EDNS OPT record.
const CLASSIC_UDP_LIMIT: usize = 512;
/// Upper bound on the UDP payload we send, whatever the client advertises.
const MAX_UDP_LIMIT: u16 = 1232;

/// What to do with one received message.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send nothing back.
    Ignore,
    /// Send `response` after waiting `delay`.
    Respond {
        /// The full (untruncated) response.
        response: Box<Message>,
        /// How long to wait before answering.
        delay: Duration,
        /// Largest UDP payload the client accepts.
        udp_limit: usize,
    },
}

/// Decides how to answer `packet` given the server's current records and mode.
pub(crate) fn handle(shared: &Shared, packet: &[u8]) -> Action {
    let mode = *lock(&shared.mode);
    if mode == Mode::NoReply {
        return Action::Ignore;
    }
    let delay = match mode {
        Mode::Delay(d) => d,
        _ => Duration::ZERO,
    };
    // hickory-proto is fuzzed, but a test server must never die on garbage.
    let decoded = panic::catch_unwind(AssertUnwindSafe(|| Message::from_vec(packet)));
    let query = match decoded {
        Ok(Ok(query)) => query,
        _ => return format_error(packet),
    };
    if query.metadata.message_type != MessageType::Query {
        return Action::Ignore;
    }
    let response = respond(shared, &query, mode);
    let udp_limit = match query.edns {
        Some(_) => usize::from(query.max_payload().min(MAX_UDP_LIMIT)),
        None => CLASSIC_UDP_LIMIT,
    };
    Action::Respond {
        response: Box::new(response),
        delay,
        udp_limit,
    }
}

/// Encodes `response`, falling back to a truncated (TC) copy if it exceeds `limit` bytes.
pub(crate) fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let full = response.to_vec().ok();
    match full {
        Some(bytes) if bytes.len() <= limit => Some(bytes),
        _ => response.truncate().to_vec().ok(),
    }
}

/// FORMERR for an undecodable packet that still looks like a query header; else ignore it.
fn format_error(packet: &[u8]) -> Action {
    let [id_hi, id_lo, flags, ..] = *packet else {
        return Action::Ignore;
    };
    let is_response = flags & 0x80 != 0;
    if packet.len() < 12 || is_response {
        return Action::Ignore;
    }
    let mut response = Message::error_msg(
        u16::from_be_bytes([id_hi, id_lo]),
        OpCode::Query,
        ResponseCode::FormErr,
    );
    response.metadata.recursion_desired = flags & 0x01 != 0;
    response.metadata.recursion_available = true;
    Action::Respond {
        response: Box::new(response),
        delay: Duration::ZERO,
        udp_limit: CLASSIC_UDP_LIMIT,
    }
}

/// Builds the response header (id, flags, question, EDNS) and fills in code and answers.
fn respond(shared: &Shared, query: &Message, mode: Mode) -> Message {
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.authoritative = true;
    response.metadata.recursion_available = true;
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.checking_disabled = query.metadata.checking_disabled;
    response.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_LIMIT);
        response.set_edns(edns);
    }
    let code = if query.metadata.op_code != OpCode::Query {
        ResponseCode::NotImp
    } else if query.queries.len() != 1 {
        ResponseCode::FormErr
    } else {
        match mode {
            Mode::NxDomain => ResponseCode::NXDomain,
            Mode::ServFail => ResponseCode::ServFail,
            Mode::Refused => ResponseCode::Refused,
            Mode::Empty => ResponseCode::NoError,
            Mode::Normal | Mode::NoReply | Mode::Delay(_) => {
                let ttl = shared.ttl.load(Ordering::Relaxed);
                answer_question(shared, &query.queries[0], ttl, &mut response)
            }
        }
    };
    response.metadata.response_code = code;
    response
}

/// Looks the question up in the record table, adding A/AAAA answers to `response`.
fn answer_question(
    shared: &Shared,
    question: &Query,
    ttl: u32,
    response: &mut Message,
) -> ResponseCode {
    let records = lock(&shared.records);
    let Some(ips) = records.get(&question.name().to_ascii()) else {
        return ResponseCode::NXDomain;
    };
    if question.query_class() != DNSClass::IN {
        return ResponseCode::NoError;
    }
    let want_v6 = match question.query_type() {
        RecordType::A => false,
        RecordType::AAAA => true,
        _ => return ResponseCode::NoError,
    };
    let name = question.name().clone();
    let strays = records
        .strays(&question.name().to_ascii())
        .and_then(|(owner, ips)| Name::from_ascii(owner).ok().map(|owner| (owner, ips)));
    let own = ips.iter().map(|ip| (name.clone(), ip));
    let stray = strays
        .iter()
        .flat_map(|(owner, ips)| ips.iter().map(move |ip| (owner.clone(), ip)));
    for (owner, ip) in own.chain(stray).filter(|(_, ip)| ip.is_ipv6() == want_v6) {
        let data = match *ip {
            IpAddr::V4(v4) => RData::A(A::from(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA::from(v6)),
        };
        response.add_answer(Record::from_rdata(owner, ttl, data));
    }
    ResponseCode::NoError
}
