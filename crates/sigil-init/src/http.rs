//! The launcher's minimal HTTP/1.1 client side: one request, one response,
//! over a stream the caller provides (the pinned TLS connection). A full
//! HTTP stack would add start-up time and attack surface for a single
//! `POST`; this parser accepts only what it needs and bounds everything.

use std::io::{Read, Write};

/// Largest response head (status line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines.
pub const MAX_HEADERS: usize = 64;

/// A parsed response.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (decoded from chunked transfer coding if needed).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may carry secrets.
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Transport failure.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The response is not acceptable HTTP/1.1.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    /// The response exceeds a limit.
    #[error("HTTP response too large: {0}")]
    TooLarge(String),
}

fn bad(s: impl Into<String>) -> HttpError {
    HttpError::Malformed(s.into())
}

/// Writes `POST path` with a JSON body and `Connection: close`.
pub fn write_post<W: Write>(w: &mut W, host: &str, path: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // One buffer so the request goes out in as few TLS records as possible.
    let mut buf = Vec::with_capacity(head.len() + body.len());
    buf.extend_from_slice(head.as_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads until EOF (the server closes after answering), at most
/// `MAX_HEAD + max_body` bytes (plus chunk framing), then parses.
pub fn read_response<R: Read>(r: &mut R, max_body: usize) -> Result<Response, HttpError> {
    // Chunk framing can add a few bytes per chunk; allow generous slack.
    let limit = MAX_HEAD + max_body + max_body / 8 + 1024;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // rustls reports a peer that closed without close_notify as
            // UnexpectedEof; the body length below decides completeness.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        };
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > limit {
            return Err(HttpError::TooLarge(format!("more than {limit} bytes")));
        }
        // Stop as soon as a complete Content-Length response is in.
        if let Ok(Some(resp)) = parse_complete(&raw, max_body) {
            return Ok(resp);
        }
    }
    match parse_complete(&raw, max_body)? {
        Some(r) => Ok(r),
        None => Err(bad("connection closed before the response was complete")),
    }
}

/// Parses a complete response; `Ok(None)` if more bytes are needed.
pub fn parse_complete(raw: &[u8], max_body: usize) -> Result<Option<Response>, HttpError> {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        if raw.len() > MAX_HEAD {
            return Err(HttpError::TooLarge(format!(
                "head longer than {MAX_HEAD} bytes"
            )));
        }
        return Ok(None);
    };
    if head_end > MAX_HEAD {
        return Err(HttpError::TooLarge(format!(
            "head longer than {MAX_HEAD} bytes"
        )));
    }
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad(format!(
            "unexpected status line {:?}",
            short(status_line)
        )));
    }
    let code = parts.next().unwrap_or("");
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("bad status code {:?}", short(code))));
    }
    let status: u16 = code.parse().map_err(|_| bad("bad status code"))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for (i, line) in lines.enumerate() {
        if i >= MAX_HEADERS {
            return Err(HttpError::TooLarge(format!(
                "more than {MAX_HEADERS} headers"
            )));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("header line without ':' {:?}", short(line))))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| bad(format!("bad Content-Length {:?}", short(value))))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(bad("conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else {
                return Err(bad(format!(
                    "unsupported Transfer-Encoding {:?}",
                    short(value)
                )));
            }
        }
    }
    let rest = &raw[head_end + 4..];
    if chunked {
        if content_length.is_some() {
            return Err(bad("both Content-Length and chunked"));
        }
        return decode_chunked(rest, max_body).map(|o| o.map(|body| Response { status, body }));
    }
    match content_length {
        Some(n) => {
            if n > max_body {
                return Err(HttpError::TooLarge(format!(
                    "body of {n} bytes (limit {max_body})"
                )));
            }
            if rest.len() < n {
                return Ok(None);
            }
            Ok(Some(Response {
                status,
                body: rest[..n].to_vec(),
            }))
        }
        // Without a length the body ends at EOF; the caller calls us again
        // after EOF, and the only completeness signal is the close.
        None => {
            if rest.len() > max_body {
                return Err(HttpError::TooLarge(format!("body over {max_body} bytes")));
            }
            Err(bad("response without Content-Length or chunked coding"))
        }
    }
}

fn decode_chunked(mut rest: &[u8], max_body: usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(rest, b"\r\n") else {
            if rest.len() > 64 {
                return Err(bad("chunk size line too long"));
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| bad("chunk size not UTF-8"))?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        if size_hex.is_empty() || size_hex.len() > 8 {
            return Err(bad(format!("bad chunk size {:?}", short(line))));
        }
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| bad(format!("bad chunk size {:?}", short(line))))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailers are not used by the CAS; require the final CRLF.
            if rest.len() < 2 {
                return Ok(None);
            }
            if &rest[..2] != b"\r\n" {
                return Err(bad("trailers are not supported"));
            }
            return Ok(Some(body));
        }
        if body.len() + size > max_body {
            return Err(HttpError::TooLarge(format!(
                "chunked body over {max_body} bytes"
            )));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_and_chunked() {
        let r = parse_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", 10)
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        assert!(
            parse_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n{}", 10)
                .unwrap()
                .is_none()
        );
        let r = parse_complete(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            10,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (403, &b"abcde"[..]));
        // read_response over a plain reader
        let mut src: &[u8] = b"HTTP/1.1 429 Too Many\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_response(&mut src, 10).unwrap().status, 429);
    }

    #[test]
    fn hostile_responses_are_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"SSH-2.0-x\r\n\r\n", "status line"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "status code"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n",
                "too large",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "conflicting",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                "Transfer-Encoding",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n",
                "too large",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
                "CRLF",
            ),
            (b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", "without ':'"),
            (b"HTTP/1.1 200 OK\r\n\r\n", "without Content-Length"),
        ];
        for (raw, want) in cases {
            let e = parse_complete(raw, 100)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.contains(want),
                "{:?}: {e:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let huge_head = [b'a'; MAX_HEAD + 10];
        assert!(matches!(
            parse_complete(&huge_head, 10),
            Err(HttpError::TooLarge(_))
        ));
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(
            parse_complete(many.as_bytes(), 10),
            Err(HttpError::TooLarge(_))
        ));
        let mut truncated: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab";
        assert!(read_response(&mut truncated, 10)
            .unwrap_err()
            .to_string()
            .contains("before the response was complete"));
    }
}
