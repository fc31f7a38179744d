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

/// Reads the response as it arrives (the server closes after answering):
/// every byte goes through [`ResponseParser`] once, so reading is linear in
/// the response size however it is split into reads or chunks. At most
/// `MAX_HEAD + max_body` bytes (plus chunk framing) are read.
pub fn read_response<R: Read>(r: &mut R, max_body: usize) -> Result<Response, HttpError> {
    // Chunk framing can add a few bytes per chunk; allow generous slack.
    let limit = MAX_HEAD + max_body + max_body / 8 + 1024;
    let mut parser = ResponseParser::new(max_body);
    let mut total = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // rustls reports a peer that closed without close_notify as
            // UnexpectedEof; the framing below decides completeness.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        };
        total += n;
        if total > limit {
            return Err(HttpError::TooLarge(format!("more than {limit} bytes")));
        }
        if parser.feed(&buf[..n])? {
            return parser.finish();
        }
    }
    parser.finish()
}

/// Parses a complete response; `Ok(None)` if more bytes are needed.
pub fn parse_complete(raw: &[u8], max_body: usize) -> Result<Option<Response>, HttpError> {
    let mut p = ResponseParser::new(max_body);
    if p.feed(raw)? {
        p.finish().map(Some)
    } else {
        Ok(None)
    }
}

/// Longest chunk-size line (size, extensions), without its CRLF.
pub const MAX_CHUNK_LINE: usize = 64;

/// How the body is framed, from the head.
enum Framing {
    Length(usize),
    Chunked,
}

/// Where the parser is.
enum State {
    /// Collecting the head; the search for its end resumes where it stopped.
    Head,
    /// A Content-Length body: bytes still to come.
    Length(usize),
    /// A chunk-size line: the bytes of it so far (without CRLF).
    ChunkSize(Vec<u8>),
    /// Chunk data: bytes still to come.
    ChunkData(usize),
    /// The CRLF after chunk data: how many of its bytes were seen.
    ChunkEnd(usize),
    /// The CRLF after the last (zero-size) chunk.
    LastEnd(usize),
    /// Complete; later bytes are ignored.
    Done,
}

/// An incremental HTTP/1.1 response parser. [`ResponseParser::feed`] takes
/// bytes as they arrive; each byte is examined a bounded number of times
/// and body bytes are copied once, so a response split into many reads or
/// many tiny chunks costs time linear in its size. Limits: head
/// [`MAX_HEAD`] bytes and [`MAX_HEADERS`] lines, body `max_body` bytes,
/// chunk-size lines [`MAX_CHUNK_LINE`] bytes with at most 8 hex digits.
pub struct ResponseParser {
    max_body: usize,
    head: Vec<u8>,
    state: State,
    status: u16,
    body: Vec<u8>,
    /// Bytes examined so far, for the linearity test.
    #[cfg(test)]
    work: usize,
}

impl ResponseParser {
    /// A parser for a response whose body may be at most `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        ResponseParser {
            max_body,
            head: Vec::new(),
            state: State::Head,
            status: 0,
            body: Vec::new(),
            #[cfg(test)]
            work: 0,
        }
    }

    #[cfg(test)]
    fn count(&mut self, n: usize) {
        self.work += n;
    }

    #[cfg(not(test))]
    fn count(&mut self, _n: usize) {}

    /// Takes the next bytes; `Ok(true)` once the response is complete.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<bool, HttpError> {
        if matches!(self.state, State::Head) {
            let room = (MAX_HEAD + 4).saturating_sub(self.head.len());
            let take = data.len().min(room);
            // The end marker may straddle two feeds: back up 3 bytes.
            let from = self.head.len().saturating_sub(3);
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.count(self.head.len() - from);
            let Some(i) = find(&self.head[from..], b"\r\n\r\n") else {
                if self.head.len() >= MAX_HEAD + 4 {
                    return Err(head_too_long());
                }
                return Ok(false);
            };
            let end = from + i;
            if end > MAX_HEAD {
                return Err(head_too_long());
            }
            // Body bytes that came with the head (at most MAX_HEAD of them).
            let early = self.head.split_off(end + 4);
            let (status, framing) = parse_head(&self.head[..end], self.max_body)?;
            self.status = status;
            self.state = match framing {
                Framing::Length(0) => State::Done,
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::ChunkSize(Vec::new()),
            };
            self.head = Vec::new();
            if self.body_bytes(&early)? {
                return Ok(true);
            }
        }
        self.body_bytes(data)
    }

    fn body_bytes(&mut self, mut data: &[u8]) -> Result<bool, HttpError> {
        while !data.is_empty() {
            match &mut self.state {
                State::Head => unreachable!("the head is complete before body bytes"),
                State::Done => return Ok(true),
                State::Length(left) => {
                    let take = data.len().min(*left);
                    *left -= take;
                    if *left == 0 {
                        self.state = State::Done;
                    }
                    self.body.extend_from_slice(&data[..take]);
                    self.count(take);
                    data = &data[take..];
                }
                State::ChunkSize(line) => {
                    // Never look further than a line may be long.
                    let window = &data[..data.len().min(MAX_CHUNK_LINE + 2 - line.len())];
                    let Some(i) = window.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(window);
                        if line.len() > MAX_CHUNK_LINE + 1 {
                            return Err(bad(format!(
                                "chunk size line longer than {MAX_CHUNK_LINE} bytes"
                            )));
                        }
                        let n = window.len();
                        data = &data[n..];
                        self.count(n);
                        continue;
                    };
                    line.extend_from_slice(&window[..i]);
                    if line.pop() != Some(b'\r') {
                        return Err(bad("chunk size line not ended by CRLF"));
                    }
                    let size = chunk_size(line)?;
                    data = &data[i + 1..];
                    self.count(i + 1);
                    if size == 0 {
                        self.state = State::LastEnd(0);
                    } else if size > self.max_body - self.body.len() {
                        return Err(HttpError::TooLarge(format!(
                            "chunked body over {} bytes",
                            self.max_body
                        )));
                    } else {
                        self.state = State::ChunkData(size);
                    }
                }
                State::ChunkData(left) => {
                    let take = data.len().min(*left);
                    *left -= take;
                    if *left == 0 {
                        self.state = State::ChunkEnd(0);
                    }
                    self.body.extend_from_slice(&data[..take]);
                    self.count(take);
                    data = &data[take..];
                }
                State::ChunkEnd(seen) | State::LastEnd(seen) => {
                    let seen = *seen;
                    let last = matches!(self.state, State::LastEnd(_));
                    if data[0] != b"\r\n"[seen] {
                        // Trailers are not used by the CAS.
                        return Err(bad(if last && seen == 0 {
                            "trailers are not supported"
                        } else {
                            "chunk not followed by CRLF"
                        }));
                    }
                    data = &data[1..];
                    self.count(1);
                    self.state = match (last, seen) {
                        (true, 1) => State::Done,
                        (true, _) => State::LastEnd(1),
                        (false, 1) => State::ChunkSize(Vec::new()),
                        (false, _) => State::ChunkEnd(1),
                    };
                }
            }
        }
        Ok(matches!(self.state, State::Done))
    }

    /// The response, if complete.
    pub fn finish(self) -> Result<Response, HttpError> {
        match self.state {
            State::Done => Ok(Response {
                status: self.status,
                body: self.body,
            }),
            _ => Err(bad("connection closed before the response was complete")),
        }
    }
}

fn head_too_long() -> HttpError {
    HttpError::TooLarge(format!("head longer than {MAX_HEAD} bytes"))
}

/// The size of a chunk-size line (hex, optional `;extensions`), at most 8
/// hex digits.
fn chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let line = std::str::from_utf8(line).map_err(|_| bad("chunk size not UTF-8"))?;
    let size_hex = line.split(';').next().unwrap_or("").trim();
    // from_str_radix alone would take a leading '+'.
    if size_hex.is_empty() || size_hex.len() > 8 || !size_hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(bad(format!("bad chunk size {:?}", short(line))));
    }
    usize::from_str_radix(size_hex, 16)
        .map_err(|_| bad(format!("bad chunk size {:?}", short(line))))
}

/// Status and body framing of a head (without its final CRLFCRLF).
fn parse_head(head: &[u8], max_body: usize) -> Result<(u16, Framing), HttpError> {
    let head = std::str::from_utf8(head).map_err(|_| bad("head is not UTF-8"))?;
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
    match (chunked, content_length) {
        (true, Some(_)) => Err(bad("both Content-Length and chunked")),
        (true, None) => Ok((status, Framing::Chunked)),
        (false, Some(n)) if n > max_body => Err(HttpError::TooLarge(format!(
            "body of {n} bytes (limit {max_body})"
        ))),
        (false, Some(n)) => Ok((status, Framing::Length(n))),
        // A body ending at EOF has no completeness signal but the close,
        // which an attacker on the path can forge (truncation).
        (false, None) => Err(bad("response without Content-Length or chunked coding")),
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

    /// A reader handing out `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.data.len().min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for c in body.chunks(chunk) {
            raw.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            raw.extend_from_slice(c);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        raw
    }

    /// Many tiny chunks up to the limits, fed one byte at a time (the
    /// worst case for a parser that re-reads what it has): every byte is
    /// examined a bounded number of times. The parser before this one
    /// re-parsed the whole buffer after every read, quadratic in the size.
    #[test]
    fn parsing_is_linear_in_tiny_chunks_and_tiny_reads() {
        let max_body = 64 * 1024;
        let body: Vec<u8> = (0..max_body).map(|i| (i % 251) as u8).collect();
        for (chunk, step) in [(1, 1), (1, 7), (3, 1), (4096, 1), (max_body, 16 * 1024)] {
            let raw = chunked(&body, chunk);
            let mut p = ResponseParser::new(max_body);
            let mut done = false;
            for piece in raw.chunks(step) {
                assert!(!done, "complete before the end");
                done = p.feed(piece).unwrap();
            }
            assert!(done);
            // Head bytes are looked at up to 4 times (3 bytes of overlap per
            // feed), everything else once.
            assert!(
                p.work <= raw.len() + 4 * MAX_HEAD,
                "chunk {chunk}, step {step}: examined {} bytes of {}",
                p.work,
                raw.len()
            );
            assert_eq!(p.finish().unwrap().body, body);
        }
        // The same through read_response, within its total-size limit.
        let raw = chunked(&body[..max_body / 2], 16);
        let r = read_response(
            &mut Trickle {
                data: &raw,
                step: 1,
            },
            max_body,
        )
        .unwrap();
        assert_eq!(r.body, &body[..max_body / 2]);
        // One byte more than the body limit in tiny chunks: refused as soon
        // as the chunk that crosses it is announced.
        let mut over = body.clone();
        over.push(0);
        let e = parse_complete(&chunked(&over, 1), max_body).err().unwrap();
        assert!(matches!(e, HttpError::TooLarge(_)), "{e}");
        // Tiny chunks whose framing alone exceeds read_response's total limit.
        let e = read_response(
            &mut Trickle {
                data: &chunked(&body, 1),
                step: 4096,
            },
            max_body,
        )
        .unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn hostile_chunk_framing_is_refused() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let with = |rest: &[u8]| [head.as_slice(), rest].concat();
        // A chunk-size line that never ends: refused once longer than the
        // limit, however it is split, without waiting for more.
        let endless = with(&[b'1'; 10_000]);
        for step in [1, 5, 64, 10_000] {
            let mut p = ResponseParser::new(1 << 20);
            let e = endless
                .chunks(step)
                .find_map(|c| p.feed(c).err())
                .expect("refused");
            assert!(
                e.to_string().contains("chunk size line longer than 64"),
                "{e}"
            );
        }
        // Only CR-less or bare-LF line ends, a long extension.
        for (rest, want) in [
            (&b"5\nhello\r\n0\r\n\r\n"[..], "not ended by CRLF"),
            (&b"5;ext=\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\r\n"[..], "longer than 64"),
            (b"123456789\r\n", "bad chunk size"),
            (b"00000000000000001\r\nx\r\n0\r\n\r\n", "bad chunk size"),
            (b"ffffffff\r\n", "too large"),
            (b"-1\r\n", "bad chunk size"),
            (b"+1\r\nx\r\n", "bad chunk size"),
            (b"1\r\nxy", "CRLF"),
            (b"1\r\nx\rz", "CRLF"),
            (b"0\r\nTrailer: x\r\n\r\n", "trailers"),
            (b"0\r\n\rx", "CRLF"),
            (b"\xff\r\n", "UTF-8"),
        ] {
            let e = parse_complete(&with(rest), 1 << 20)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{:?}: {e:?}", String::from_utf8_lossy(rest));
        }
        // Incomplete but so far valid: more bytes needed, not an error.
        for rest in [
            &b""[..],
            b"5",
            b"5\r",
            b"5\r\nhel",
            b"5\r\nhello",
            b"5\r\nhello\r",
            b"0\r\n",
            b"0\r\n\r",
        ] {
            assert!(parse_complete(&with(rest), 100).unwrap().is_none());
        }
        // Bytes after a complete response are ignored (Connection: close).
        let r = parse_complete(&with(b"2\r\nok\r\n0\r\n\r\ngarbage"), 100)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, b"ok");
    }

    /// Splitting a response anywhere gives the same result as parsing it
    /// whole, for both framings (what the fuzz target checks at large).
    #[test]
    fn any_split_gives_the_same_response() {
        let responses: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        ];
        for raw in responses {
            let whole = parse_complete(raw, 100).unwrap().unwrap();
            for cut in 0..=raw.len() {
                let mut p = ResponseParser::new(100);
                let first = p.feed(&raw[..cut]).unwrap();
                let done = first || p.feed(&raw[cut..]).unwrap();
                assert!(done, "cut {cut}");
                let r = p.finish().unwrap();
                assert_eq!(
                    (r.status, r.body),
                    (whole.status, whole.body.clone()),
                    "cut {cut}"
                );
            }
        }
    }
}
