//! Every request a CAS client sends, as the handlers receive it once hyper
//! has framed it (hyper parses the HTTP/1.1 syntax; the router reads the
//! body under `Limits::max_body_bytes`): session YAML for `POST` and `PUT
//! /v1/sessions`, `%`-escaped names in `/v1/sessions/NAME`, `from`/`limit`
//! queries of `/v1/audit`, and `/v1/attest` bodies (raw JSON, and
//! well-formed requests carrying fuzzed config ids and simulation evidence
//! bytes). Each run starts from a fresh real redb store holding one session.
//!
//! Byte 0 picks the route, byte 1 the caller; the rest is the payload.
//! Invariants: no panic, no 500, every error a JSON `{"error"}` of one
//! line, and a refused or malformed request stores nothing (the session
//! list and audit length move only on a 2xx write).
#![no_main]

mod common;

use bytes::Bytes;
use common::*;
use hyper::Method;
use sigil_cas::{ConnInfo, SessionStore as _};
use sigil_client::attest::{AttestRequest, ATTEST_VERSION};

fn conn(caller: u8) -> ConnInfo {
    ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        client: match caller % 3 {
            0 => Some(ALICE),
            1 => Some(BOB),
            _ => None,
        },
        exporter: Some(EXPORTER),
    }
}

/// `%`-escapes every byte that is not unreserved, so any payload is a
/// well-formed path segment (and `%` itself reaches the decoder raw when
/// the payload spells an escape).
fn path_segment(p: &[u8]) -> String {
    p.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~%/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [route, caller, payload @ ..] = data else {
        return;
    };
    let dir = scratch();
    let st = state(&store_path(dir.path()));
    let c = conn(*caller);
    let before_len = st.store.audit_len().unwrap();
    let before = st.store.list().unwrap().len();

    let (method, status, body) = match route % 8 {
        0 | 1 => {
            let m = if route % 8 == 0 {
                Method::POST
            } else {
                Method::PUT
            };
            let r = sigil_cas::api::handle(
                &st,
                &c,
                &m,
                "/v1/sessions",
                None,
                Bytes::copy_from_slice(payload),
            );
            let (s, b) = body(r);
            (m, s, b)
        }
        2 | 3 => {
            let m = if route % 8 == 2 {
                Method::GET
            } else {
                Method::DELETE
            };
            let path = format!("/v1/sessions/{}", path_segment(payload));
            let (s, b) = body(sigil_cas::api::handle(
                &st,
                &c,
                &m,
                &path,
                None,
                Bytes::new(),
            ));
            (m, s, b)
        }
        4 => {
            let q = String::from_utf8_lossy(payload);
            let (s, b) = body(sigil_cas::api::handle(
                &st,
                &c,
                &Method::GET,
                "/v1/audit",
                Some(&q),
                Bytes::new(),
            ));
            if s == 200 {
                let page: sigil_client::AuditPage = serde_json::from_slice(&b).unwrap();
                assert!(page.entries.len() as u64 <= sigil_cas::state::MAX_AUDIT_PAGE);
            }
            (Method::GET, s, b)
        }
        5 => {
            let path = if payload.first().is_some_and(|b| b & 1 == 1) {
                "/v1/audit/verify"
            } else {
                "/v1/sessions"
            };
            let (s, b) = body(sigil_cas::api::handle(
                &st,
                &c,
                &Method::GET,
                path,
                None,
                Bytes::new(),
            ));
            (Method::GET, s, b)
        }
        6 => {
            let (s, b) = body(sigil_cas::attest_api::handle_with(
                &st,
                &c,
                payload,
                &st.verifiers,
            ));
            (Method::POST, s, b)
        }
        _ => {
            // A well-formed request: config id up to the first newline,
            // the rest is the simulation evidence's data (so the verifier,
            // the decision and the release run on hostile bytes).
            let (cid, ev) = match payload.iter().position(|b| *b == b'\n') {
                Some(i) => (&payload[..i], &payload[i + 1..]),
                None => (&b"base/app"[..], payload),
            };
            let evidence = sigil_attest::Evidence::new(
                sigil_attest::TeeKind::Simulation,
                if ev.is_empty() {
                    sigil_attest::simulation::make_evidence(M, EXPORTER).data
                } else {
                    ev.to_vec()
                },
            );
            let req = AttestRequest {
                version: ATTEST_VERSION,
                config_id: String::from_utf8_lossy(cid).into_owned(),
                evidence: serde_json::from_str(&evidence.to_json()).unwrap(),
                launcher_version: "fuzz".into(),
            };
            let bytes = serde_json::to_vec(&req).unwrap();
            let (s, b) = body(sigil_cas::attest_api::handle_with(
                &st,
                &c,
                &bytes,
                &st.verifiers,
            ));
            if s == 200 {
                let a: sigil_client::attest::AttestAccepted = serde_json::from_slice(&b).unwrap();
                assert_eq!(a.measurement, hex::encode(M));
            }
            (Method::POST, s, b)
        }
    };
    assert_clear_error(status, &body);

    // Writes happen only on success; the audit log only grows (attempts
    // to attest are audited, refused or not).
    let after = st.store.list().unwrap().len();
    let changed = after != before;
    if changed {
        assert!(
            (200..300).contains(&status),
            "{method} {status} changed the store"
        );
    }
    assert!(st.store.audit_len().unwrap() >= before_len);
    sigil_cas::store::verify_audit_exclusive(&*st.store, Some(&*st.key))
        .expect("audit chain intact after any request");
});
