//! Same bytes, same verdict: the tokio driver (hyper) and the smol driver (the core's HTTP/1.1
//! codec) judge byte-identical HTTP/1.1 input the same way, through the core's rules.
//!
//! - `client_verdicts`: one raw response per row (from a scripted server), for a 16-byte chunk:
//!   the client's outcome is compared with the row's expected outcome — the bytes delivered, or
//!   the error's stable `FillError::kind()`;
//! - `listener_statuses`: one raw request per row (through a raw TCP client) to a replica: the
//!   listener's status is compared with the row's expected status.
//!
//! Every row is written once and both drivers must give the expected answer, so they give the
//! same one.

use orca_cluster_tests::harness::Driver;

macro_rules! same_bytes_tests {
    ($module:ident, $driver:ty) => {
        mod $module {
            #[test]
            fn client_verdicts() {
                <$driver as super::Driver>::run(super::cases::client_verdicts::<$driver>());
            }

            #[test]
            fn listener_statuses() {
                <$driver as super::Driver>::run(super::cases::listener_statuses::<$driver>());
            }
        }
    };
}

same_bytes_tests!(tokio_driver, orca_cluster_tests::harness::TokioDriver);
same_bytes_tests!(smol_driver, orca_cluster_tests::harness::SmolDriver);

mod cases {
    use std::net::SocketAddr;

    use orca_cluster_core::ChunkKey;
    use orca_cluster_core::wire::encode_query;
    use orca_cluster_driver_common::{StaticPeerSource, SyntheticOrigin};
    use orca_cluster_tests::faulty_server::{After, FaultyServer, Response};
    use orca_cluster_tests::harness::{
        ClusterHandle, Driver, Setup, bind_local, client_cluster, drain, key, replica,
        static_config,
    };
    use orca_cluster_tests::raw_client;

    /// The chunk every client row asks for: 16 bytes (chunk 0 of a 64-byte object).
    const CHUNK: u64 = 16;
    const OBJECT: u64 = 64;
    const BODY: &[u8; 16] = b"0123456789abcdef";

    /// What a fill ends with: the bytes delivered, or the error's `kind()`.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Bytes(usize),
        Error(&'static str),
    }

    fn raw(head: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = head.replace('\n', "\r\n").into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    fn chunked(body: &[u8]) -> Vec<u8> {
        let mut out = format!("{:x}\r\n", body.len()).into_bytes();
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
        out
    }

    fn client_rows() -> Vec<(&'static str, Vec<u8>, Outcome)> {
        use Outcome::{Bytes, Error};
        let mut long = BODY.to_vec();
        long.push(b'!');
        vec![
            (
                "content-length, exact",
                raw("HTTP/1.1 200 OK\ncontent-length: 16\n\n", BODY),
                Bytes(16),
            ),
            (
                "content-length as a list of equal values",
                raw("HTTP/1.1 200 OK\ncontent-length: 16, 16\n\n", BODY),
                Error("malformed_head"),
            ),
            (
                "two equal content-length lines",
                raw(
                    "HTTP/1.1 200 OK\ncontent-length: 16\ncontent-length: 16\n\n",
                    BODY,
                ),
                Error("malformed_head"),
            ),
            (
                "transfer-encoding with content-length",
                raw(
                    "HTTP/1.1 200 OK\ntransfer-encoding: chunked\ncontent-length: 16\n\n",
                    &chunked(BODY),
                ),
                Error("malformed_head"),
            ),
            (
                "content-length of another chunk",
                raw("HTTP/1.1 200 OK\ncontent-length: 15\n\n", &BODY[..15]),
                Error("length_mismatch"),
            ),
            (
                "chunked, exact",
                raw(
                    "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n",
                    &chunked(BODY),
                ),
                Bytes(16),
            ),
            (
                "chunked, one byte too many",
                raw(
                    "HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n",
                    &chunked(&long),
                ),
                Error("too_long"),
            ),
            (
                "close-delimited, exact",
                raw("HTTP/1.1 200 OK\nconnection: close\n\n", BODY),
                Bytes(16),
            ),
            (
                "content-length body cut short",
                raw("HTTP/1.1 200 OK\ncontent-length: 16\n\n", &BODY[..8]),
                Error("truncated"),
            ),
            (
                "an interim 100 before the answer",
                raw(
                    "HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\ncontent-length: 16\n\n",
                    BODY,
                ),
                Bytes(16),
            ),
            (
                "409",
                raw(
                    "HTTP/1.1 409 Conflict\ncontent-length: 28\n\n",
                    br#"{"reason":"not_coordinator"}"#,
                ),
                Error("not_coordinator"),
            ),
            (
                "503 with a body",
                raw("HTTP/1.1 503 Busy\ncontent-length: 4\n\n", b"busy"),
                Error("status"),
            ),
            (
                "a redirect is a status, not followed",
                raw(
                    "HTTP/1.1 302 Found\nlocation: http://127.0.0.1:1/x\ncontent-length: 0\n\n",
                    b"",
                ),
                Error("status"),
            ),
            (
                "not HTTP",
                b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(),
                Error("http"),
            ),
            (
                "content-length with a sign",
                raw("HTTP/1.1 200 OK\ncontent-length: +16\n\n", BODY),
                Error("malformed_head"),
            ),
            (
                "transfer-encoding gzip",
                raw("HTTP/1.1 200 OK\ntransfer-encoding: gzip\n\n", BODY),
                Error("malformed_head"),
            ),
        ]
    }

    pub(super) async fn client_verdicts<D: Driver>() {
        let cluster = client_cluster::<D>(static_config(), true, &[]).await;
        let k: ChunkKey = key(0, CHUNK);
        for (name, bytes, expected) in client_rows() {
            let server = FaultyServer::serving(Response {
                bytes,
                after: After::Close,
            });
            let outcome = match cluster.fill_body(&server.peer(), &k, OBJECT).await {
                Err(e) => Outcome::Error(e.kind()),
                Ok(body) => {
                    let drained = drain(body).await;
                    match drained.error {
                        Some(e) => Outcome::Error(e.kind()),
                        None => Outcome::Bytes(drained.bytes.len()),
                    }
                }
            };
            assert_eq!(outcome, expected, "{}: {name}", D::NAME);
        }
        cluster
            .close(std::time::Duration::from_secs(2))
            .await
            .unwrap();
    }

    pub(super) async fn listener_statuses<D: Driver>() {
        let listener = bind_local::<D>(1).await.pop().unwrap();
        let addr = D::listener_addr(&listener);
        let phantom = SocketAddr::new(addr.ip(), 1);
        let source = StaticPeerSource::new([addr, phantom]);
        let setup = Setup::static_source(&source).with_self_port(addr.port());
        let r = replica::<D>(listener, static_config(), setup, SyntheticOrigin).await;
        let mine = (0..64)
            .map(|i| key(i, 1024))
            .find(|k| r.cluster.is_coordinator(k))
            .expect("a chunk of this replica");
        let query = encode_query(&mine, 64 * 1024);
        let good = format!("/internal/fill?{query}");
        let one = "x-orca-internal: 1\r\n";
        let rows: Vec<(&str, Vec<u8>, u16)> = vec![
            ("a fill", raw_client::request("GET", &good, one), 200),
            (
                "absolute-form",
                raw_client::request("GET", &format!("http://{addr}{good}"), one),
                200,
            ),
            (
                "dot segments stay raw",
                raw_client::request("GET", &format!("/internal/../internal/fill?{query}"), one),
                404,
            ),
            (
                "a trailing slash",
                raw_client::request("GET", &format!("/internal/fill/?{query}"), one),
                404,
            ),
            (
                "percent-encoded path",
                raw_client::request("GET", &format!("/internal%2Ffill?{query}"), one),
                404,
            ),
            ("POST", raw_client::request("POST", &good, one), 405),
            (
                "an extension method",
                raw_client::request("BREW", &good, one),
                405,
            ),
            (
                "x-orca-internal twice",
                raw_client::request("GET", &good, "x-orca-internal: 1\r\nx-orca-internal: 1\r\n"),
                400,
            ),
            (
                "x-orca-internal as a list",
                raw_client::request("GET", &good, "x-orca-internal: 1, 1\r\n"),
                400,
            ),
            (
                "x-orca-internal missing",
                raw_client::request("GET", &good, ""),
                400,
            ),
            (
                "a bad query",
                raw_client::request("GET", "/internal/fill?chunk_size=0", one),
                400,
            ),
            ("not HTTP", b"\xff\xfe garbage\r\n\r\n".to_vec(), 400),
        ];
        for (name, request, expected) in rows {
            let response = raw_client::exchange(addr, &request)
                .unwrap_or_else(|e| panic!("{}: {name}: {e}", D::NAME));
            assert_eq!(response.status, expected, "{}: {name}", D::NAME);
        }
        r.stop().await;
    }
}
