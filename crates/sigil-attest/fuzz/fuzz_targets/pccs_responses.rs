//! What a PCCS (or Intel's PCS) answers `PccsCollateral::fetch`: the PCK
//! CRL with its issuer-chain header, the TCB info and QE identity JSON
//! documents with theirs, and the root CA CRL, each a full HTTP response
//! from a real server on loopback.
//!
//! Three answers are correct (from the real test collateral when
//! `SIGIL_ATTESTATION_TESTDATA` or ../shared/testdata is there, otherwise
//! small stand-ins); byte 0 picks which one the input replaces and how:
//! as the whole raw HTTP response, as the body under a correct head, or as
//! the issuer-chain header value. Invariants: no panic; an error is one
//! line; accepted collateral survives its JSON cache file round trip.
#![no_main]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use sigil_attest::collateral::{Collateral, PccsCollateral, PckCa};
use sigil_attest::TeeKind;

/// Routes of one fetch, in order.
const ROUTES: [&str; 4] = ["/pckcrl", "/tcb", "/qe/identity", "/rootcacrl"];
const HEADERS: [&str; 4] = [
    "SGX-PCK-CRL-Issuer-Chain",
    "TCB-Info-Issuer-Chain",
    "SGX-Enclave-Identity-Issuer-Chain",
    "X-Unused",
];

struct Server {
    url: String,
    answers: Arc<Mutex<[Vec<u8>; 4]>>,
    good: [(String, Vec<u8>); 4],
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn response(header: &str, value: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\n{header}: {value}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn real_collateral() -> Option<Collateral> {
    let dir = std::env::var_os("SIGIL_ATTESTATION_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../../../../shared/testdata/attestation"));
    let p = dir.join(
        "automata-dcap-attestation/assembled/quotev3_sgx_00606a000000.collateral.assembled.json",
    );
    Collateral::from_file(&p).ok()
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let good: [(String, Vec<u8>); 4] = match real_collateral() {
            Some(c) => {
                let i = &c.inner;
                [
                    (pct(&i.pck_crl_issuer_chain), i.pck_crl.clone()),
                    (
                        pct(&i.tcb_info_issuer_chain),
                        format!(
                            "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
                            i.tcb_info,
                            hex::encode(&i.tcb_info_signature)
                        )
                        .into_bytes(),
                    ),
                    (
                        pct(&i.qe_identity_issuer_chain),
                        format!(
                            "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
                            i.qe_identity,
                            hex::encode(&i.qe_identity_signature)
                        )
                        .into_bytes(),
                    ),
                    (String::new(), i.root_ca_crl.clone()),
                ]
            }
            None => [
                ("chain".into(), b"crl".to_vec()),
                ("chain".into(), br#"{"tcbInfo":{"id":"SGX","nextUpdate":"2030-01-01T00:00:00Z"},"signature":"00"}"#.to_vec()),
                ("chain".into(), br#"{"enclaveIdentity":{"id":"QE"},"signature":"00"}"#.to_vec()),
                (String::new(), b"rootcrl".to_vec()),
            ],
        };
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let answers: Arc<Mutex<[Vec<u8>; 4]>> = Arc::default();
        let a = answers.clone();
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
                let line = String::from_utf8_lossy(&req);
                let path = line.split(' ').nth(1).unwrap_or("");
                let i = ROUTES
                    .iter()
                    .position(|r| path.split('?').next().unwrap_or("").ends_with(r))
                    .unwrap_or(3);
                let out = a.lock().unwrap()[i].clone();
                let _ = s.write_all(&out);
            }
        });
        Server { url, answers, good }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [ctl, payload @ ..] = data else { return };
    let s = server();
    let which = usize::from(ctl % 4);
    {
        let mut a = s.answers.lock().unwrap();
        for i in 0..4 {
            let (h, b) = &s.good[i];
            a[i] = response(HEADERS[i], h, b);
        }
        let (h, b) = &s.good[which];
        a[which] = match (ctl >> 2) % 3 {
            0 => payload.to_vec(),
            1 => response(HEADERS[which], h, payload),
            _ => {
                // Header values are one line of visible text.
                let v: String = String::from_utf8_lossy(payload)
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                response(HEADERS[which], &v, b)
            }
        };
    }
    let p = PccsCollateral::new(&s.url, None).unwrap();
    match p.fetch(TeeKind::Sgx, [0, 0x60, 0x6a, 0, 0, 0], PckCa::Processor) {
        Ok(c) => {
            let json = c.to_json();
            let back = Collateral::from_json(json.as_bytes()).expect("fetched collateral caches");
            assert_eq!(back.hash, c.hash);
            let _ = c.next_update();
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
        }
    }
});
