//! Collateral from a PCCS-compatible HTTP service: a real HTTP server on
//! loopback serves the real test collateral; the cache directory is real.

use sigil_attest::collateral::{Collateral, PccsCollateral, REFRESH_MARGIN};
use sigil_attest::dcap::DcapVerifier;
use sigil_attest::time_util::parse_time;
use sigil_attest::VerifyError;
use sigil_testsupport::attestation::{read_evidence, testdata};
use sigil_testsupport::net::{free_port, response, serve_http};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// The `NAME-Issuer-Chain` header of a PCCS answer (URL-encoded PEM).
fn chain(name: &str, pem: &str) -> String {
    format!("{name}-Issuer-Chain: {}\r\n", pct(pem))
}

/// A signed PCCS body: `{"FIELD":JSON,"signature":"HEX"}`.
fn signed(field: &str, json: &str, signature: &[u8]) -> Vec<u8> {
    format!(
        "{{\"{field}\":{json},\"signature\":\"{}\"}}",
        hex::encode(signature)
    )
    .into_bytes()
}

/// Serves `c` on 127.0.0.1:<random> like a PCCS; returns (url, hit counter).
fn serve(c: Collateral, fail: bool) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let url = serve_http(move |path| {
        h.fetch_add(1, Ordering::SeqCst);
        let i = &c.inner;
        let (hdr, body, chunked): (String, Vec<u8>, bool) = if fail {
            (String::new(), b"no".to_vec(), false)
        } else if path.starts_with("/sgx/certification/v4/pckcrl?ca=") {
            (
                chain("SGX-PCK-CRL", &i.pck_crl_issuer_chain),
                i.pck_crl.clone(),
                false,
            )
        } else if path.starts_with("/sgx/certification/v4/tcb?fmspc=") {
            (
                chain("TCB-Info", &i.tcb_info_issuer_chain),
                signed("tcbInfo", &i.tcb_info, &i.tcb_info_signature),
                true,
            )
        } else if path == "/sgx/certification/v4/qe/identity" {
            (
                chain("SGX-Enclave-Identity", &i.qe_identity_issuer_chain),
                signed("enclaveIdentity", &i.qe_identity, &i.qe_identity_signature),
                false,
            )
        } else if path == "/sgx/certification/v4/rootcacrl" {
            (
                String::new(),
                hex::encode(&i.root_ca_crl).into_bytes(),
                false,
            )
        } else {
            (String::new(), b"not found".to_vec(), false)
        };
        let status = if fail {
            "500 Internal Server Error"
        } else if body == b"not found" {
            "404 Not Found"
        } else {
            "200 OK"
        };
        if !chunked {
            return response(status, &hdr, &body);
        }
        let mut resp = format!(
            "HTTP/1.1 {status}\r\n{hdr}Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for part in body.chunks(1000) {
            resp.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            resp.extend_from_slice(part);
            resp.extend_from_slice(b"\r\n");
        }
        resp.extend_from_slice(b"0\r\n\r\n");
        resp
    });
    (url, hits)
}

fn sgx() -> (Vec<u8>, Collateral, u64) {
    (
        read_evidence("phala-dcap-qvl/sgx_quote"),
        Collateral::from_file(&testdata().join("phala-dcap-qvl/sgx_quote_collateral.json"))
            .unwrap(),
        parse_time("2025-07-01T00:00:00Z").unwrap(),
    )
}

#[test]
fn fetches_once_caches_on_disk_and_survives_outage() {
    let (quote, coll, t) = sgx();
    let (url, hits) = serve(coll.clone(), false);
    let dir = tempfile::tempdir().unwrap();
    let src = Arc::new(PccsCollateral::new(&url, Some(dir.path().to_path_buf())).unwrap());
    let v = DcapVerifier::new(src);
    let c = v.verify_quote(&quote, t).unwrap();
    assert_eq!(
        c.tcb_status.to_string(),
        "ConfigurationAndSWHardeningNeeded"
    );
    let after_first = hits.load(Ordering::SeqCst);
    assert_eq!(after_first, 4, "pckcrl, tcb, qe identity, root CRL");
    for _ in 0..3 {
        v.verify_quote(&quote, t).unwrap();
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        after_first,
        "served from cache"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    // The fetched collateral is byte-for-byte what was served.
    let on_disk = Collateral::from_file(&files[0].path()).unwrap();
    assert_eq!(on_disk.hash, coll.hash);

    // PCCS unreachable: the disk cache still serves a new process.
    let dead_url = format!("http://127.0.0.1:{}", free_port());
    let v2 = DcapVerifier::new(Arc::new(
        PccsCollateral::new(&dead_url, Some(dir.path().to_path_buf())).unwrap(),
    ));
    v2.verify_quote(&quote, t).unwrap();
}

#[test]
fn refreshes_before_expiry() {
    let (quote, coll, t) = sgx();
    let (url, hits) = serve(coll.clone(), false);
    let v = DcapVerifier::new(Arc::new(PccsCollateral::new(&url, None).unwrap()));
    v.verify_quote(&quote, t).unwrap();
    let n = hits.load(Ordering::SeqCst);
    // Within the refresh margin of the earliest nextUpdate: fetched again.
    let near = coll.next_update().unwrap() - REFRESH_MARGIN / 2;
    let _ = v.verify_quote(&quote, near);
    assert_eq!(hits.load(Ordering::SeqCst), 2 * n);
}

#[test]
fn server_errors_are_reported() {
    let (quote, coll, t) = sgx();
    let (url, _) = serve(coll, true);
    let v = DcapVerifier::new(Arc::new(PccsCollateral::new(&url, None).unwrap()));
    let e = v.verify_quote(&quote, t).unwrap_err();
    assert!(matches!(e, VerifyError::CollateralUnavailable(_)), "{e}");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
}
