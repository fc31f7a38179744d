//! Loopback networking for tests: free ports and a minimal HTTP server.

use std::io::{Read, Write};
use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then
/// released): for a server the test starts itself, or, left unused, an
/// address where nothing listens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// Serves HTTP on 127.0.0.1 from a background thread for the rest of the
/// test: for each connection it reads the request (its first 4 KiB),
/// passes the request path to `respond` and writes back the bytes it
/// returns (a whole response, e.g. from [`response`]), then closes.
/// Returns the base URL, `http://127.0.0.1:PORT`.
pub fn serve_http<F>(mut respond: F) -> String
where
    F: FnMut(&str) -> Vec<u8> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", l.local_addr().expect("local address"));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split(' ').nth(1).unwrap_or("");
            let _ = s.write_all(&respond(path));
        }
    });
    url
}

/// An HTTP/1.1 response with `status` (e.g. `"200 OK"`), extra `headers`
/// (each ending in `\r\n`), `Content-Length` and `Connection: close`.
pub fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\n{headers}Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}
