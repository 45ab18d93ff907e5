//! The listener side: the request head, and the response head.

use alloc::vec::Vec;

use super::{
    EncodeError, HeadError, MAX_HEADERS, Parsed, Version, extend_all, has_close_token,
    is_field_value, push_decimal,
};
use crate::fill::{CONTENT_LENGTH, DeclaredFraming, TRANSFER_ENCODING, declared_framing, trim_ows};
use crate::wire::INTERNAL_HEADER;

/// A parsed request head, borrowing the caller's buffer.
///
/// Nothing is normalised: the request-target is exactly the bytes received (no dot-segment
/// removal, no percent-decoding), and every header line stays a separate value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead<'b> {
    /// The method token, e.g. `GET` (case-sensitive, as received).
    pub method: &'b str,
    /// The request-target as received: origin-form (`/path?query`) or absolute-form
    /// (`http://authority/path?query`); see [`RequestHead::path`] and [`RequestHead::query`].
    pub target: &'b str,
    /// The HTTP version.
    pub version: Version,
    /// The value of the `Host` header (exactly one in HTTP/1.1, at most one in HTTP/1.0).
    pub host: Option<&'b str>,
    /// Whether the client lets the connection carry another request: HTTP/1.1 and no `close`
    /// token in `Connection` (an HTTP/1.0 request is always the last one).
    pub keep_alive: bool,
    /// Whether a body follows the head: `Content-Length` above 0, or `Transfer-Encoding`.
    /// The fill RPC never reads one: the driver answers, then closes the connection.
    pub has_body: bool,
    /// The framing headers as [`declared_framing`] accepted them.
    pub declared: DeclaredFraming,
    /// The header lines (validated by the parser), for [`RequestHead::headers`].
    fields: &'b [u8],
}

impl<'b> RequestHead<'b> {
    /// The origin-form part of the target: the target itself when it starts with `/`, else
    /// (absolute-form) what follows the authority, possibly empty.
    fn origin(&self) -> &'b str {
        if self.target.starts_with('/') {
            return self.target;
        }
        let after_scheme = self.target.split_once("://").map_or("", |(_, rest)| rest);
        match after_scheme.find(['/', '?']) {
            Some(i) => after_scheme.get(i..).unwrap_or(""),
            None => "",
        }
    }

    /// The path of the target, raw: everything before the first `?` (for an absolute-form
    /// target, of the part after the authority; empty when that part is).
    pub fn path(&self) -> &'b str {
        let origin = self.origin();
        origin.split_once('?').map_or(origin, |(path, _)| path)
    }

    /// The query of the target, raw, without the `?`; `None` without a `?`.
    pub fn query(&self) -> Option<&'b str> {
        self.origin().split_once('?').map(|(_, query)| query)
    }

    /// Every header line, in order, as received (name as sent, value with surrounding
    /// spaces and tabs trimmed).
    pub fn headers(&self) -> Headers<'b> {
        Headers { rest: self.fields }
    }

    /// Every value of the header `name` (ASCII case-insensitive), one per line, in order.
    pub fn header_values<'n>(&self, name: &'n str) -> HeaderValues<'b, 'n> {
        HeaderValues {
            headers: self.headers(),
            name,
        }
    }

    /// Every value of `x-orca-internal` ([`INTERNAL_HEADER`]), one per line: a duplicated
    /// header shows up as two values.
    pub fn internal_values(&self) -> HeaderValues<'b, 'static> {
        self.header_values(INTERNAL_HEADER)
    }
}

/// One header line of a [`RequestHead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeaderField<'b> {
    /// The name as received (compare it ASCII case-insensitively).
    pub name: &'b str,
    /// The value, surrounding spaces and tabs trimmed.
    pub value: &'b [u8],
}

/// The header lines of a [`RequestHead`]; see [`RequestHead::headers`].
#[derive(Clone, Debug)]
pub struct Headers<'b> {
    rest: &'b [u8],
}

impl<'b> Iterator for Headers<'b> {
    type Item = HeaderField<'b>;

    fn next(&mut self) -> Option<HeaderField<'b>> {
        // The parser accepted these lines: `name ":" OWS value OWS` ending in CRLF or LF, then
        // an empty line; names hold no `:` and values no CR or LF.
        let end = self.rest.iter().position(|&b| b == b'\n')?;
        let line = self.rest.get(..end)?;
        self.rest = self.rest.get(end + 1..)?;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let name = core::str::from_utf8(line.get(..colon)?).ok()?;
        let value = trim_ows(line.get(colon + 1..)?);
        Some(HeaderField { name, value })
    }
}

/// The values of one header of a [`RequestHead`]; see [`RequestHead::header_values`].
#[derive(Clone, Debug)]
pub struct HeaderValues<'b, 'n> {
    headers: Headers<'b>,
    name: &'n str,
}

impl<'b> Iterator for HeaderValues<'b, '_> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        let name = self.name;
        self.headers
            .by_ref()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// Where the header lines start: after leading empty lines (which the parser skips) and the
/// request line.
fn fields_start(head: &[u8]) -> usize {
    let mut start = 0;
    loop {
        let rest = head.get(start..).unwrap_or(&[]);
        if rest.starts_with(b"\r\n") {
            start += 2;
        } else if rest.starts_with(b"\n") {
            start += 1;
        } else {
            break;
        }
    }
    let rest = head.get(start..).unwrap_or(&[]);
    rest.iter()
        .position(|&b| b == b'\n')
        .map_or(head.len(), |i| start + i + 1)
}

fn has_bad_byte(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == 0 || b >= 0x80)
}

/// The `Host` rule of a request head (RFC 9112 section 3.2): exactly one `Host` field in
/// HTTP/1.1, at most one in HTTP/1.0, else [`HeadError::Malformed`] naming `host`.
/// [`parse_request_head`] applies it; a driver whose HTTP parser does not (hyper) calls it with
/// the number of `Host` fields it received.
pub fn check_host_count(version: Version, hosts: usize) -> Result<(), HeadError> {
    if hosts > 1 || (hosts == 0 && version == Version::Http11) {
        return Err(HeadError::Malformed { part: "host" });
    }
    Ok(())
}

/// Parses the request head at the start of `buf`.
///
/// `Ok(Parsed::Partial)`: read more, append it to `buf` and call again with the whole buffer.
/// `Ok(Parsed::Complete { head, consumed })`: the request's body or the next request starts at
/// `buf[consumed..]`. Errors (answer [`HeadError::status`] with `connection: close`, then
/// close):
///
/// - [`HeadError::TooLarge`]: the head is longer than `max_head` bytes (reported as soon as
///   `buf` holds `max_head` bytes of an incomplete head), [`HeadError::TooManyHeaders`]: more
///   than [`MAX_HEADERS`] lines — both 431;
/// - [`HeadError::NotAscii`]: a byte above 0x7f, or NUL, in the head (checked on every partial
///   buffer too, so such a head is refused before it completes);
/// - [`HeadError::Malformed`]: not HTTP/1.x syntax; a target neither origin-form (`/...`) nor
///   absolute-form (`http://...` or `https://...`) (`request-target`); an HTTP/1.1 request
///   without exactly one `Host` header or an HTTP/1.0 one with several (`host`);
/// - [`HeadError::Framing`]: `Content-Length` / `Transfer-Encoding` break the rules of
///   [`declared_framing`] (the same rules as for responses), or `Transfer-Encoding` in HTTP/1.0.
///
/// Allocates nothing: the header slices live on the stack ([`MAX_HEADERS`]).
pub fn parse_request_head(
    buf: &[u8],
    max_head: usize,
) -> Result<Parsed<RequestHead<'_>>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(buf);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if has_bad_byte(buf) {
                return Err(HeadError::NotAscii);
            }
            if buf.len() >= max_head {
                return Err(HeadError::TooLarge { limit: max_head });
            }
            return Ok(Parsed::Partial);
        }
        Err(e) => {
            // A non-ASCII byte often breaks the syntax first; report it as such when it lies
            // before the point where the head could have ended.
            let head = buf.get(..head_end_bound(buf)).unwrap_or(buf);
            return Err(if has_bad_byte(head) {
                HeadError::NotAscii
            } else {
                HeadError::from_httparse(e, "request line")
            });
        }
    };
    let head_bytes = buf.get(..len).unwrap_or(buf);
    if has_bad_byte(head_bytes) {
        return Err(HeadError::NotAscii);
    }
    if len > max_head {
        return Err(HeadError::TooLarge { limit: max_head });
    }
    let method = request.method.unwrap_or("");
    let target = request.path.unwrap_or("");
    let version = match request.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let is_absolute = |scheme: &str| {
        target
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    };
    if !(target.starts_with('/') || is_absolute("http://") || is_absolute("https://")) {
        return Err(HeadError::Malformed {
            part: "request-target",
        });
    }
    let fields = &*request.headers;
    let values = |name: &'static str| {
        fields
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let mut hosts = values("host");
    let host = hosts.next();
    check_host_count(version, usize::from(host.is_some()) + hosts.count())?;
    let host = match host.map(core::str::from_utf8) {
        None => None,
        Some(Ok(host)) => Some(host),
        Some(Err(_)) => return Err(HeadError::NotAscii),
    };
    let declared = declared_framing(values(CONTENT_LENGTH), values(TRANSFER_ENCODING))?;
    if version == Version::Http10 && declared == DeclaredFraming::Chunked {
        return Err(HeadError::Framing(crate::fill::MalformedHeader {
            field: TRANSFER_ENCODING,
            problem: crate::fill::HeaderProblem::InHttp10,
        }));
    }
    let has_body = match declared {
        DeclaredFraming::Absent | DeclaredFraming::Length(0) => false,
        DeclaredFraming::Length(_) | DeclaredFraming::Chunked => true,
    };
    let close = values("connection").any(has_close_token);
    let head = RequestHead {
        method,
        target,
        version,
        host,
        keep_alive: version == Version::Http11 && !close,
        has_body,
        declared,
        fields: head_bytes.get(fields_start(head_bytes)..).unwrap_or(&[]),
    };
    Ok(Parsed::Complete {
        head,
        consumed: len,
    })
}

/// The earliest point a head in `buf` could end: just after the first empty line (`\n\n` or
/// `\n\r\n`), or the whole buffer when there is none.
fn head_end_bound(buf: &[u8]) -> usize {
    for (i, w) in buf.windows(2).enumerate() {
        if w == b"\n\n" {
            return i + 2;
        }
        if w == b"\n\r" && buf.get(i + 2) == Some(&b'\n') {
            return i + 3;
        }
    }
    buf.len()
}

/// A response head as a listener writes it; see [`encode_response_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponseSpec<'a> {
    /// The status code, 100..=999; the reason phrase comes from [`reason_phrase`].
    pub status: u16,
    /// The `content-type` value.
    pub content_type: &'a str,
    /// The `content-length` value: the exact body length in bytes.
    pub content_length: u64,
    /// An `allow` value (with 405), if any.
    pub allow: Option<&'a str>,
    /// Adds `connection: close` (the listener closes after this response).
    pub close: bool,
}

/// The reason phrase written for `status`: the standard one for the statuses a listener
/// sends, `Unknown` for others.
pub const fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Appends a response head to `out`:
///
/// ```text
/// HTTP/1.1 <status> <reason>\r\n
/// content-length: <content_length>\r\n
/// content-type: <content_type>\r\n
/// allow: <allow>\r\n                  (when set)
/// connection: close\r\n               (when close)
/// \r\n
/// ```
///
/// A status outside 100..=999, or a `content_type` / `allow` with a control or non-ASCII byte
/// or surrounding whitespace, is refused and `out` is left as it was.
pub fn encode_response_head(spec: &ResponseSpec<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if !(100..=999).contains(&spec.status) {
        return Err(EncodeError { field: "status" });
    }
    if !is_field_value(spec.content_type.as_bytes()) {
        return Err(EncodeError {
            field: "content-type",
        });
    }
    if spec
        .allow
        .is_some_and(|allow| !is_field_value(allow.as_bytes()))
    {
        return Err(EncodeError { field: "allow" });
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(spec.status));
    extend_all(
        out,
        &[
            b" ",
            reason_phrase(spec.status).as_bytes(),
            b"\r\ncontent-length: ",
        ],
    );
    push_decimal(out, spec.content_length);
    extend_all(
        out,
        &[b"\r\ncontent-type: ", spec.content_type.as_bytes(), b"\r\n"],
    );
    if let Some(allow) = spec.allow {
        extend_all(out, &[b"allow: ", allow.as_bytes(), b"\r\n"]);
    }
    if spec.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fill::{HeaderProblem, MalformedHeader};
    use alloc::string::String;
    use alloc::vec;

    #[test]
    fn host_count_rule() {
        let bad = Err(HeadError::Malformed { part: "host" });
        assert_eq!(check_host_count(Version::Http11, 1), Ok(()));
        assert_eq!(check_host_count(Version::Http11, 0), bad);
        assert_eq!(check_host_count(Version::Http11, 2), bad);
        assert_eq!(check_host_count(Version::Http10, 0), Ok(()));
        assert_eq!(check_host_count(Version::Http10, 2), bad);
    }

    const MAX: usize = 8 * 1024;

    fn head(text: &str) -> (RequestHead<'_>, usize) {
        match parse_request_head(text.as_bytes(), MAX) {
            Ok(Parsed::Complete { head, consumed }) => (head, consumed),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn error(text: &[u8]) -> HeadError {
        match parse_request_head(text, MAX) {
            Err(e) => e,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
        }
    }

    #[test]
    fn fill_request_head() {
        let text = "GET /internal/fill?bucket=b&index=0 HTTP/1.1\r\nHost: 10.0.0.1:8444\r\nX-Orca-Internal: 1\r\nuser-agent: t\r\n\r\nGET /next";
        let (h, consumed) = head(text);
        assert_eq!(&text[consumed..], "GET /next");
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/internal/fill?bucket=b&index=0");
        assert_eq!(h.path(), "/internal/fill");
        assert_eq!(h.query(), Some("bucket=b&index=0"));
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.host, Some("10.0.0.1:8444"));
        assert!(h.keep_alive && !h.has_body);
        assert_eq!(h.internal_values().collect::<Vec<_>>(), vec![b"1"]);
        let names: Vec<&str> = h.headers().map(|f| f.name).collect();
        assert_eq!(names, ["Host", "X-Orca-Internal", "user-agent"]);
    }

    #[test]
    fn duplicated_internal_header_shows_up_twice() {
        let (h, _) =
            head("GET / HTTP/1.1\r\nhost: x\r\nx-orca-internal: 0\r\nx-orca-internal:  1 \r\n\r\n");
        assert_eq!(
            h.internal_values().collect::<Vec<_>>(),
            vec![&b"0"[..], &b"1"[..]]
        );
        let (h, _) = head("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(h.internal_values().count(), 0);
    }

    #[test]
    fn target_stays_raw() {
        let (h, _) = head("GET /internal/../internal/fill?a=%41 HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(h.target, "/internal/../internal/fill?a=%41");
        assert_eq!(h.path(), "/internal/../internal/fill");
        assert_eq!(h.query(), Some("a=%41"));
        let (h, _) = head("GET /internal/%66ill HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/internal/%66ill", None));
        let (h, _) = head("GET /internal/fill? HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/internal/fill", Some("")));
    }

    #[test]
    fn absolute_form_target() {
        let (h, _) = head("GET http://10.0.0.1:8444/internal/fill?a=1 HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/internal/fill", Some("a=1")));
        let (h, _) = head("GET HTTPS://h?a=1 HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("", Some("a=1")));
        let (h, _) = head("GET http://h HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("", None));
        for target in ["*", "h:80", "ftp://h/x", "internal/fill"] {
            let text = alloc::format!("GET {target} HTTP/1.1\r\nhost: x\r\n\r\n");
            assert_eq!(
                error(text.as_bytes()),
                HeadError::Malformed {
                    part: "request-target"
                },
                "{target}"
            );
        }
    }

    #[test]
    fn keep_alive_and_bodies() {
        let (h, _) = head("GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, close\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _) = head("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(
            (h.version, h.keep_alive, h.host),
            (Version::Http10, false, None)
        );
        let (h, _) = head("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello");
        assert!(h.has_body && h.keep_alive);
        assert_eq!(h.declared, DeclaredFraming::Length(5));
        let (h, _) = head("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n");
        assert!(!h.has_body);
        let (h, _) = head("POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n");
        assert!(h.has_body);
    }

    #[test]
    fn framing_rules_apply_to_requests() {
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5, 5\r\n\r\n"),
            HeadError::Framing(MalformedHeader {
                field: CONTENT_LENGTH,
                problem: HeaderProblem::Repeated
            })
        );
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"),
            HeadError::Framing(MalformedHeader {
                field: TRANSFER_ENCODING,
                problem: HeaderProblem::WithContentLength
            })
        );
        assert_eq!(
            error(b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n"),
            HeadError::Framing(MalformedHeader {
                field: TRANSFER_ENCODING,
                problem: HeaderProblem::InHttp10
            })
        );
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5, 5\r\n\r\n").status(),
            400
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            error(b"GET / HTTP/1.1\r\n\r\n"),
            HeadError::Malformed { part: "host" }
        );
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nhost: a\r\nHost: b\r\n\r\n"),
            HeadError::Malformed { part: "host" }
        );
        assert_eq!(
            error(b"GET / HTTP/1.0\r\nhost: a\r\nHost: b\r\n\r\n"),
            HeadError::Malformed { part: "host" }
        );
    }

    #[test]
    fn non_ascii_and_oversize_heads() {
        // Refused before the head completes.
        assert_eq!(
            error("GET / HTTP/1.1\r\nx: caf\u{e9}".as_bytes()),
            HeadError::NotAscii
        );
        assert_eq!(error(b"GET / HTTP/1.1\r\nx: \0"), HeadError::NotAscii);
        assert_eq!(
            error("GET /caf\u{e9} HTTP/1.1\r\nhost: x\r\n\r\n".as_bytes()),
            HeadError::NotAscii
        );
        assert_eq!(
            error("G\u{c9}T / HTTP/1.1\r\nhost: x\r\n\r\n".as_bytes()),
            HeadError::NotAscii
        );
        assert_eq!(error(b"GET / HTTP/1.1\r\nx: \xff\r\n\r\n").status(), 400);
        // Bytes after the head are not the head's business.
        let text = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n\xff\xfe";
        assert!(matches!(
            parse_request_head(text, MAX),
            Ok(Parsed::Complete { consumed: 27, .. })
        ));
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.resize(100, b'a');
        assert_eq!(
            parse_request_head(&big, 100),
            Err(HeadError::TooLarge { limit: 100 })
        );
        assert_eq!(parse_request_head(&big[..99], 100), Ok(Parsed::Partial));
        let text = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(
            parse_request_head(text, text.len() - 1),
            Err(HeadError::TooLarge {
                limit: text.len() - 1
            })
        );
        assert_eq!(
            parse_request_head(text, text.len() - 1)
                .unwrap_err()
                .status(),
            431
        );
        let mut many = String::from("GET / HTTP/1.1\r\nhost: x\r\n");
        for i in 0..MAX_HEADERS {
            many.push_str(&alloc::format!("x-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        let e = parse_request_head(many.as_bytes(), 64 * 1024).unwrap_err();
        assert_eq!(e, HeadError::TooManyHeaders { limit: MAX_HEADERS });
        assert_eq!(e.status(), 431);
    }

    #[test]
    fn malformed_heads() {
        assert_eq!(error(b"GET  / HTTP/1.1\r\nhost: x\r\n\r\n").status(), 400);
        assert_eq!(
            error(b"GET / HTTP/2.0\r\nhost: x\r\n\r\n"),
            HeadError::Malformed { part: "version" }
        );
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nbad header\r\n\r\n"),
            HeadError::Malformed {
                part: "header name"
            }
        );
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nx: a\rb\r\n\r\n"),
            HeadError::Malformed {
                part: "header value"
            }
        );
        assert_eq!(
            error(b"GET / HTTP/1.1\r\n folded: x\r\n\r\n"),
            HeadError::Malformed {
                part: "header name"
            }
        );
    }

    #[test]
    fn leading_empty_lines_and_bare_lf() {
        let (h, consumed) = head("\r\n\nGET /a HTTP/1.1\nhost: x\nx-orca-internal: 1\n\n");
        assert_eq!(consumed, 47);
        assert_eq!(h.target, "/a");
        assert_eq!(h.host, Some("x"));
        assert_eq!(h.internal_values().collect::<Vec<_>>(), vec![b"1"]);
    }

    #[test]
    fn response_head_bytes() {
        let mut out = b"x".to_vec();
        let spec = ResponseSpec {
            status: 405,
            content_type: "text/plain",
            content_length: 2,
            allow: Some("GET"),
            close: true,
        };
        encode_response_head(&spec, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "xHTTP/1.1 405 Method Not Allowed\r\ncontent-length: 2\r\ncontent-type: text/plain\r\nallow: GET\r\nconnection: close\r\n\r\n"
        );
        let mut out = Vec::new();
        let spec = ResponseSpec {
            status: 200,
            content_type: "application/octet-stream",
            content_length: u64::MAX,
            allow: None,
            close: false,
        };
        encode_response_head(&spec, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-length: 18446744073709551615\r\ncontent-type: application/octet-stream\r\n\r\n"
        );
        assert_eq!(reason_phrase(599), "Unknown");
    }

    #[test]
    fn response_head_refuses_bad_values() {
        let mut out = Vec::new();
        let ok = ResponseSpec {
            status: 200,
            content_type: "text/plain",
            content_length: 0,
            allow: None,
            close: false,
        };
        for (spec, field) in [
            (ResponseSpec { status: 99, ..ok }, "status"),
            (ResponseSpec { status: 1000, ..ok }, "status"),
            (
                ResponseSpec {
                    content_type: "a\r\nx: y",
                    ..ok
                },
                "content-type",
            ),
            (
                ResponseSpec {
                    content_type: " text",
                    ..ok
                },
                "content-type",
            ),
            (
                ResponseSpec {
                    allow: Some("G\u{e9}T"),
                    ..ok
                },
                "allow",
            ),
        ] {
            assert_eq!(
                encode_response_head(&spec, &mut out),
                Err(EncodeError { field })
            );
        }
        assert!(out.is_empty());
    }
}
