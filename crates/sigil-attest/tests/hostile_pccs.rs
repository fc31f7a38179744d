//! A hostile or broken PCCS (or anything answering on its address) for
//! `PccsCollateral::fetch`: error statuses, missing or malformed
//! issuer-chain headers, JSON that is not the TCB info / QE identity
//! answer, signatures that are not hex, bodies shorter than announced,
//! chunk sizes that lie, and an answer larger than the 4 MiB limit. Each
//! is refused as "collateral unavailable" with one line naming what was
//! wrong, without panicking or reading without bound. A real HTTP server
//! on loopback; the correct answers are small stand-ins (fetching checks
//! framing and shape; signatures are checked at verification).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use sigil_attest::collateral::{PccsCollateral, PckCa};
use sigil_attest::http::MAX_RESPONSE;
use sigil_attest::TeeKind;

type Answer = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

fn ok(header: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The answers of a PCCS that works.
fn good(path: &str) -> Vec<u8> {
    if path.contains("/pckcrl") {
        ok("SGX-PCK-CRL-Issuer-Chain: chain%20pem\r\n", b"crl")
    } else if path.contains("/tcb") {
        ok(
            "TCB-Info-Issuer-Chain: chain\r\n",
            br#"{"tcbInfo":{"nextUpdate":"2030-01-01T00:00:00Z"},"signature":"00ff"}"#,
        )
    } else if path.contains("/qe/identity") {
        ok(
            "SGX-Enclave-Identity-Issuer-Chain: chain\r\n",
            br#"{"enclaveIdentity":{"id":"QE"},"signature":"00ff"}"#,
        )
    } else {
        ok("", b"rootcrl")
    }
}

/// Serves `answer(path)` to every connection; returns the base URL.
fn serve(answer: Answer) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&req).to_string();
            let path = text.split(' ').nth(1).unwrap_or("").to_string();
            let _ = s.write_all(&answer(&path));
        }
    });
    url
}

fn fetch(answer: Answer) -> Result<(), String> {
    let p = PccsCollateral::new(&serve(answer), None).unwrap();
    p.fetch(TeeKind::Sgx, [0, 0x60, 0x6a, 0, 0, 0], PckCa::Processor)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `good`, except that paths containing `route` get `bad`.
fn with(route: &'static str, bad: Vec<u8>) -> Answer {
    Arc::new(move |p: &str| {
        if p.contains(route) {
            bad.clone()
        } else {
            good(p)
        }
    })
}

#[test]
fn the_stand_in_pccs_is_accepted() {
    fetch(Arc::new(good)).unwrap();
}

#[test]
fn hostile_pccs_answers_are_refused_with_one_line() {
    let chunked = |body: &str| {
        format!("HTTP/1.1 200 OK\r\nTCB-Info-Issuer-Chain: c\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
            .into_bytes()
    };
    let cases: Vec<(&str, Answer, &str)> = vec![
        ("HTTP 500", with("/tcb", b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec()), "HTTP 500"),
        ("not HTTP", with("/pckcrl", b"\x00\x01\x02garbage".to_vec()), "PCCS request failed"),
        ("no issuer chain", with("/pckcrl", ok("", b"crl")), "SGX-PCK-CRL-Issuer-Chain"),
        (
            "broken %-escape in the chain",
            with("/pckcrl", ok("SGX-PCK-CRL-Issuer-Chain: abc%zz\r\n", b"crl")),
            "bad SGX-PCK-CRL-Issuer-Chain header",
        ),
        ("TCB info not JSON", with("/tcb", ok("TCB-Info-Issuer-Chain: c\r\n", b"<html>")), "TCB info response"),
        (
            "TCB info of another shape",
            with("/tcb", ok("TCB-Info-Issuer-Chain: c\r\n", br#"{"tcbInfo":1}"#)),
            "TCB info response",
        ),
        (
            "signature not hex",
            with("/qe/identity", ok("SGX-Enclave-Identity-Issuer-Chain: c\r\n", br#"{"enclaveIdentity":{},"signature":"zz"}"#)),
            "QE identity signature",
        ),
        (
            "body shorter than announced",
            with(
                "/tcb",
                b"HTTP/1.1 200 OK\r\nTCB-Info-Issuer-Chain: c\r\nContent-Length: 1000\r\n\r\n{\"tcbInfo\":".to_vec(),
            ),
            "PCCS request failed",
        ),
        ("chunk size that lies", with("/tcb", chunked("ffff\r\n{}\r\n0\r\n\r\n")), "PCCS request failed"),
        ("chunk size not hex", with("/tcb", chunked("zz\r\n{}\r\n0\r\n\r\n")), "PCCS request failed"),
        (
            "more than the response limit",
            Arc::new(|p: &str| {
                if p.contains("/tcb") {
                    let mut r = b"HTTP/1.1 200 OK\r\nTCB-Info-Issuer-Chain: c\r\n\r\n".to_vec();
                    r.resize(MAX_RESPONSE + 4096, b'x');
                    r
                } else {
                    good(p)
                }
            }),
            "larger than",
        ),
    ];
    for (what, answer, expect) in cases {
        let e = fetch(answer).expect_err(what);
        assert!(!e.contains('\n'), "{what}: {e:?}");
        assert!(e.contains("collateral"), "{what}: {e}");
        assert!(e.contains(expect), "{what}: expected {expect:?} in {e}");
    }
}
