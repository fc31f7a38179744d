//! The management API end to end: a real CAS on loopback (TLS 1.3, redb in
//! a tempdir) driven by the real client.

mod common;

use common::*;
use hyper::{Method, StatusCode};
use sigil_client::{ClientError, Identity};

/// Namespace `ns`: its creator and `member` may create sessions in it.
fn namespace_open_to(member: &Identity) -> String {
    let creators = format!("CREATOR, \"{}\"", member.fingerprint().to_hex());
    simple_yaml("ns", &policy("CREATOR", "CREATOR", &creators))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_update_with_predecessor() {
    let (_d, s) = start_temp().await;
    let alice = id("alice");
    let c = client(&s, Some(&alice)).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    let created = c
        .create_session(&app_yaml("app", &pol, "info"))
        .await
        .unwrap();
    assert_eq!(created.hash.len(), 64);
    let info = c.get_session("app").await.unwrap();
    assert_eq!(info.hash, created.hash);
    assert_eq!(info.creator, alice.fingerprint().to_string());
    // Creating it again: 409.
    let e = c
        .create_session(&app_yaml("app", &pol, "info"))
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 409);

    // Update without predecessor: 409 naming the current hash.
    let v2 = app_yaml("app", &pol, "debug");
    match c.update_session_exact(&v2).await.unwrap_err() {
        ClientError::Api {
            status,
            current,
            given,
            ..
        } => {
            assert_eq!(status, 409);
            assert_eq!(current.as_deref(), Some(created.hash.as_str()));
            assert_eq!(given, None);
        }
        e => panic!("{e}"),
    }
    // Wrong predecessor: 409 with both hashes.
    let stale = format!("predecessor: {}\n{v2}", "ab".repeat(32));
    match c.update_session_exact(&stale).await.unwrap_err() {
        ClientError::Api {
            status,
            current,
            given,
            ..
        } => {
            assert_eq!(status, 409);
            assert_eq!(current.as_deref(), Some(created.hash.as_str()));
            assert_eq!(given, Some("ab".repeat(32)));
        }
        e => panic!("{e}"),
    }
    // Right predecessor by hand.
    let right = format!("predecessor: {}\n{v2}", created.hash);
    let updated = c.update_session_exact(&right).await.unwrap();
    assert_eq!(updated.predecessor.as_deref(), Some(created.hash.as_str()));
    assert_ne!(updated.hash, created.hash);
    // The same document again is now stale.
    assert_eq!(
        api_status(&c.update_session_exact(&right).await.unwrap_err()),
        409
    );
    // Filled in by the client.
    let v3 = c
        .update_session(&app_yaml("app", &pol, "warn"))
        .await
        .unwrap();
    assert_eq!(v3.predecessor.as_deref(), Some(updated.hash.as_str()));
    assert_eq!(c.get_session("app").await.unwrap().hash, v3.hash);

    // The audit log recorded all three writes with old and new hashes.
    let log = c.audit().await.unwrap();
    let writes: Vec<_> = log
        .iter()
        .filter(|e| e.action.starts_with("session."))
        .collect();
    assert_eq!(writes.len(), 3);
    assert_eq!(writes[1].old_hash.as_deref(), Some(created.hash.as_str()));
    assert_eq!(writes[1].new_hash.as_deref(), Some(updated.hash.as_str()));
    assert_eq!(writes[2].actor, alice.fingerprint().to_string());
    sigil_client::audit::verify_chain(&log, 0, [0; 32]).unwrap();

    // Delete, then it is gone.
    c.delete("app").await.unwrap();
    assert_eq!(api_status(&c.get_session("app").await.unwrap_err()), 404);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_policy_is_enforced() {
    let (_d, s) = start_temp().await;
    let (alice, bob) = (id("alice"), id("bob"));
    let a = client(&s, Some(&alice)).await;
    let b = client(&s, Some(&bob)).await;
    let private = simple_yaml("private", &policy("CREATOR", "CREATOR", "NONE"));
    a.create_session(&private).await.unwrap();
    assert_eq!(
        api_status(&b.get_session("private").await.unwrap_err()),
        403
    );
    let e = b.update_session_exact(&private).await.unwrap_err();
    assert_eq!(
        api_status(&e),
        403,
        "403 comes before the predecessor check"
    );
    assert_eq!(api_status(&b.delete("private").await.unwrap_err()), 403);
    // Readable by anyone, updatable by bob by fingerprint.
    let shared = simple_yaml(
        "shared",
        &policy(
            "ANY",
            &format!("CREATOR, \"{}\"", bob.fingerprint().to_hex()),
            "NONE",
        ),
    );
    a.create_session(&shared).await.unwrap();
    b.get_session("shared").await.unwrap();
    b.update_session(&shared.replace("size: 8", "size: 9"))
        .await
        .unwrap();
    assert_eq!(session_names(&b).await, vec!["shared".to_string()]);
    // NONE locks everyone out, the creator too.
    let locked = simple_yaml("locked", &policy("NONE", "NONE", "NONE"));
    a.create_session(&locked).await.unwrap();
    assert_eq!(api_status(&a.get_session("locked").await.unwrap_err()), 403);

    // Without a client certificate: 401 on management, health still works.
    let anon = client(&s, None).await;
    assert_eq!(api_status(&anon.list().await.unwrap_err()), 401);
    assert_eq!(
        api_status(&anon.get_session("shared").await.unwrap_err()),
        401
    );
    assert_eq!(
        anon.health().await.unwrap().fingerprint,
        s.fingerprint.to_string()
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_need_create_sessions() {
    let (_d, s) = start_temp().await;
    let (alice, bob, carol) = (id("alice"), id("bob"), id("carol"));
    let a = client(&s, Some(&alice)).await;
    let b = client(&s, Some(&bob)).await;
    let c = client(&s, Some(&carol)).await;
    a.create_session(&namespace_open_to(&bob)).await.unwrap();
    b.create_session(&creator_only("ns/child")).await.unwrap();
    // Bob is the creator of the child: he reads it, alice does not.
    b.get_session("ns/child").await.unwrap();
    assert_eq!(
        api_status(&a.get_session("ns/child").await.unwrap_err()),
        403
    );
    // Carol is not in create_sessions.
    assert_eq!(
        api_status(
            &c.create_session(&creator_only("ns/other"))
                .await
                .unwrap_err()
        ),
        403
    );
    // Nested: bob may create in ns/child (CREATOR of ns/child).
    b.create_session(&creator_only("ns/child/leaf"))
        .await
        .unwrap();
    // A namespace that does not exist.
    let e = a
        .create_session(&creator_only("nowhere/x"))
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 404);
    assert!(
        e.to_string().contains("create session `nowhere` first"),
        "{e}"
    );
    // A namespace with sessions in it cannot be deleted.
    assert_eq!(api_status(&a.delete("ns").await.unwrap_err()), 409);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_stable_never_returned_and_sealed_at_rest() {
    let (d, s) = start_temp().await;
    let alice = id("alice");
    let a = client(&s, Some(&alice)).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    a.create_session(&app_yaml("app", &pol, "info"))
        .await
        .unwrap();
    let r1 = s.state.resolve_service("app", "app").unwrap();
    let pw = r1.environment["PASSWORD"].clone();
    assert_eq!(pw.len(), 24);
    assert_eq!(r1.environment["GREETING"], "explicit-greeting-value");
    assert_eq!(r1.environment["LOG_LEVEL"], "info");
    let token_hex = r1.command[1].strip_prefix("--token=").unwrap().to_string();
    assert_eq!(token_hex.len(), 32);
    let files: std::collections::BTreeMap<_, _> = r1
        .injection_files
        .iter()
        .map(|f| (f.path.clone(), f.content.clone()))
        .collect();
    assert_eq!(hex::encode(&files["/etc/app/token.bin"]), token_hex);
    let chain = String::from_utf8(files["/etc/app/tls.crt"].clone()).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "leaf + CA");
    let tls_key = files["/etc/app/tls.key"].clone();
    assert!(String::from_utf8_lossy(&tls_key).contains("BEGIN PRIVATE KEY"));
    assert!(String::from_utf8_lossy(&files["/etc/app/ed.key"]).contains("BEGIN PRIVATE KEY"));
    assert_eq!(r1.volumes[0].path, "/data");
    assert_eq!(
        r1.volumes[0].key.as_deref(),
        Some("c0ffee00".repeat(8).as_str())
    );

    // Update something unrelated: secrets kept, x509 reissued with its key.
    a.update_session(&app_yaml("app", &pol, "debug"))
        .await
        .unwrap();
    let r2 = s.state.resolve_service("app", "app").unwrap();
    assert_eq!(r2.environment["LOG_LEVEL"], "debug");
    assert_eq!(r2.environment["PASSWORD"], pw);
    assert_eq!(r2.command, r1.command);
    let f2: std::collections::BTreeMap<_, _> = r2
        .injection_files
        .iter()
        .map(|f| (f.path.clone(), f.content.clone()))
        .collect();
    assert_eq!(f2["/etc/app/tls.key"], tls_key, "x509 key kept");
    assert_ne!(
        f2["/etc/app/tls.crt"], files["/etc/app/tls.crt"],
        "x509 reissued"
    );
    assert_eq!(f2["/etc/app/ed.key"], files["/etc/app/ed.key"]);

    // A changed kind is a new secret.
    let resized = app_yaml("app", &pol, "debug").replace("size: 24", "size: 30");
    a.update_session(&resized).await.unwrap();
    let r3 = s.state.resolve_service("app", "app").unwrap();
    assert_eq!(r3.environment["PASSWORD"].len(), 30);
    assert_ne!(r3.environment["PASSWORD"], pw);

    // Never returned by the API.
    let info = a.get_session("app").await.unwrap();
    assert!(
        !info.yaml.contains("explicit-greeting-value"),
        "{}",
        info.yaml
    );
    let list = a.list().await.unwrap();
    let audit = a.audit().await.unwrap();
    let all = format!("{info:?}{list:?}{audit:?}");
    assert!(!all.contains(&r3.environment["PASSWORD"]));
    assert!(!all.contains(&token_hex));

    // Not in the store file either.
    let pw3 = r3.environment["PASSWORD"].clone();
    s.shutdown().await;
    let raw = std::fs::read(d.path().join("store.redb")).unwrap();
    for needle in [
        pw3.as_bytes(),
        b"explicit-greeting-value".as_slice(),
        token_hex.as_bytes(),
    ] {
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
    }
    let token = hex::decode(&token_hex).unwrap();
    assert!(!raw.windows(token.len()).any(|w| w == token.as_slice()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_need_an_export_and_bad_keys_are_refused() {
    let (_d, s) = start_temp().await;
    let a = client(&s, Some(&id("alice"))).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    let platform = format!(
        "name: platform\nsecrets:\n  - name: kafka\n    kind: ascii\n    size: 20\n    export: [consumer]\n  - name: ca\n    kind: x509-ca\n    export: [consumer]\naccess_policy:\n{pol}\n"
    );
    a.create_session(&platform).await.unwrap();
    let consumer = |name: &str| {
        format!(
        "name: {name}\nservices:\n  - name: svc\n    command: [run, \"$$SIGIL::k$$\"]\nsecrets:\n  - name: k\n    import: {{session: platform, secret: kafka}}\n  - name: pca\n    import: {{session: platform, secret: ca}}\n  - name: leaf\n    kind: x509\n    issuer: pca\n    common_name: c\naccess_policy:\n{pol}\n"
    )
    };
    a.create_session(&consumer("consumer")).await.unwrap();
    let r = s.state.resolve_service("consumer", "svc").unwrap();
    assert_eq!(r.command[1].len(), 20);
    // A session the secret is not exported to.
    let e = a.create_session(&consumer("intruder")).await.unwrap_err();
    assert_eq!(api_status(&e), 403, "{e}");
    // Squatting: the platform also exports to `later`, a session nobody has
    // created yet. Anyone may create top-level sessions, but one created by
    // an identity the platform does not trust gets no secret.
    let later_platform = platform
        .replace("export: [consumer]", "export: [consumer, later]")
        .replace("name: platform\n", "name: platform2\n");
    a.create_session(&later_platform).await.unwrap();
    let squat = consumer("later").replace("session: platform,", "session: platform2,");
    let m = client(&s, Some(&id("mallory"))).await;
    let e = m.create_session(&squat).await.unwrap_err();
    assert_eq!(api_status(&e), 403, "{e}");
    assert!(e.to_string().contains("does not trust"), "{e}");
    assert!(s.state.read_session("later").unwrap().is_none());
    // The platform's creator may create it; so may an identity the platform
    // names in its access policy.
    let bob = id("bob");
    let trusting = later_platform
        .replace("name: platform2\n", "name: platform3\n")
        .replace(
            "read: [CREATOR]",
            &format!("read: [CREATOR, \"{}\"]", bob.fingerprint().to_hex()),
        );
    a.create_session(&trusting).await.unwrap();
    let b = client(&s, Some(&bob)).await;
    b.create_session(&consumer("later").replace("session: platform,", "session: platform3,"))
        .await
        .unwrap();
    let r = s.state.resolve_service("later", "svc").unwrap();
    assert_eq!(r.command[1].len(), 20);
    // A key given in the session that is not a key: clear validation error
    // (RSA keys themselves are tested in tests/rsa.rs).
    let bad = format!("name: badkey\nsecrets:\n  - name: k\n    kind: private-key\n    value: not-a-key\naccess_policy:\n{pol}\n");
    let e = a.create_session(&bad).await.unwrap_err();
    assert_eq!(api_status(&e), 400);
    assert!(
        e.to_string().contains("not a well-formed private key"),
        "{e}"
    );
    assert!(
        a.get_session("badkey").await.is_err(),
        "nothing half-written"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clear_errors() {
    let (_d, s) = start_temp_with(|c| {
        c.limits.attest_burst = 2;
        c.limits.attest_rate_per_sec = 0.001;
        c.limits.max_body_bytes = 64 * 1024;
    })
    .await;
    let a = client(&s, Some(&id("alice"))).await;
    let e = a.create_session("name: [unclosed").await.unwrap_err();
    assert_eq!(api_status(&e), 400);
    assert!(e.to_string().contains("invalid session"), "{e}");
    let e = a
        .create_session("name: x\nunknown_key: 1\n")
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 400);
    assert!(e.to_string().contains("unknown_key"), "{e}");
    let r = a
        .request(
            Method::POST,
            "/v1/sessions",
            None,
            vec![0xff, 0xfe, 0x00].into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .request(
            Method::POST,
            "/v1/sessions",
            None,
            vec![b'a'; 100 * 1024].into(),
        )
        .await;
    // The server answers 413 (or closes once it has refused the body).
    if let Ok(r) = r {
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let a = client(&s, Some(&id("alice"))).await;
    let r = a
        .request(Method::GET, "/nope", None, Default::default())
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .request(Method::GET, "/v1/audit?from=x", None, Default::default())
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .request(Method::PATCH, "/v1/sessions/x", None, Default::default())
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Attest: 501 for now, rate-limited per address.
    let mut statuses = vec![];
    for _ in 0..4 {
        statuses.push(
            a.request(Method::POST, "/v1/attest", None, "{}".into())
                .await
                .unwrap()
                .status,
        );
    }
    assert_eq!(
        &statuses[2..],
        &[StatusCode::TOO_MANY_REQUESTS; 2],
        "{statuses:?}"
    );
    assert!(statuses[..2]
        .iter()
        .all(|s| *s != StatusCode::TOO_MANY_REQUESTS));
    // Nothing was stored by any of that.
    assert!(a.list().await.unwrap().sessions.is_empty());
    // Metrics count it all.
    let m = a
        .request(Method::GET, "/metrics", None, Default::default())
        .await
        .unwrap();
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    assert!(
        text.contains("sigil_cas_http_requests_total{route=\"attest\",status=\"429\"} 2"),
        "{text}"
    );
    assert!(text.contains("# TYPE sigil_cas_audit_entries gauge"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_refused() {
    let (_d, s) = start_temp().await;
    let e = sigil_client::CasClient::connect(
        &s.addr.to_string(),
        sigil_client::Fingerprint([9; 32]),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ClientError::PinMismatch(_)), "{e}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_one_wins() {
    let (_d, s) = start_temp().await;
    let alice = id("alice");
    let a1 = client(&s, Some(&alice)).await;
    let a2 = client(&s, Some(&alice)).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    let h = a1
        .create_session(&simple_yaml("race", &pol))
        .await
        .unwrap()
        .hash;
    let v1 = format!(
        "predecessor: {h}\n{}",
        simple_yaml("race", &pol).replace("size: 8", "size: 9")
    );
    let v2 = format!(
        "predecessor: {h}\n{}",
        simple_yaml("race", &pol).replace("size: 8", "size: 10")
    );
    let (r1, r2) = tokio::join!(a1.update_session_exact(&v1), a2.update_session_exact(&v2));
    assert!(r1.is_ok() != r2.is_ok(), "exactly one wins: {r1:?} {r2:?}");
    let winner = r1.or(r2).unwrap().hash;
    assert_eq!(a1.get_session("race").await.unwrap().hash, winner);
    s.shutdown().await;
}

/// A rate-limited client gets 429 before the server reads its body: the
/// request announces 10 MB and sends none of it, and the answer still comes
/// at once (reading the body first would wait for the body deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attest_rate_limit_answers_before_reading_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_d, s) = start_temp_with(|c| {
        c.limits.attest_burst = 1;
        c.limits.attest_rate_per_sec = 0.001;
        c.limits.body_timeout = std::time::Duration::from_secs(120);
    })
    .await;
    let a = client(&s, Some(&id("alice"))).await;
    let first = a
        .request(Method::POST, "/v1/attest", None, "{}".into())
        .await
        .unwrap();
    assert_ne!(first.status, StatusCode::TOO_MANY_REQUESTS);

    let tls = sigil_client::tls::client_config(s.fingerprint, Some(&id("mallory"))).unwrap();
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("sigil-cas").unwrap();
    let mut conn = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    conn.write_all(
        b"POST /v1/attest HTTP/1.1\r\nhost: cas\r\ncontent-type: application/json\r\n\
          content-length: 10000000\r\n\r\n",
    )
    .await
    .unwrap();
    conn.flush().await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("no answer while the body is outstanding: the server waits for the body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    s.shutdown().await;
}

/// `--session-creator`: only the listed fingerprints create top-level
/// sessions; inside a namespace the parent's create_sessions decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_creators_restrict_top_level_creation_only() {
    let (alice, bob) = (id("alice"), id("bob"));
    let (_d, s) = start_temp_with(|c| {
        c.session_creators = Some(vec![alice.fingerprint()]);
    })
    .await;
    let a = client(&s, Some(&alice)).await;
    let b = client(&s, Some(&bob)).await;
    let top = creator_only("bobs");
    let e = b.create_session(&top).await.unwrap_err();
    assert_eq!(api_status(&e), 403);
    assert!(e.to_string().contains("--session-creator"), "{e}");
    assert!(b.get_session("bobs").await.is_err());
    a.create_session(&namespace_open_to(&bob)).await.unwrap();
    // Namespaced creation follows the parent's policy, not the list.
    b.create_session(&creator_only("ns/child")).await.unwrap();
    b.get_session("ns/child").await.unwrap();
    s.shutdown().await;

    // Without the option anyone with a certificate may (the default).
    let (_d2, s) = start_temp().await;
    client(&s, Some(&bob))
        .await
        .create_session(&top)
        .await
        .unwrap();
    s.shutdown().await;
}
