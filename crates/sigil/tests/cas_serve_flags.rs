//! `sigil cas serve` flags through the real binary: `--attest-rate` and
//! `--attest-burst` (the per-IP token bucket in front of `/v1/attest`), and
//! the attestation verifiers' collateral sources.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use sigil_client::{CasClient, ClientError, Fingerprint};
use sigil_testsupport::cli::cas_serve_banner;

const KEY_HEX: &str = "4444444444444444444444444444444444444444444444444444444444444444";

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_cmd(data_dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sigil"));
    c.args(["cas", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("SIGIL_CAS_MASTER_KEY", KEY_HEX)
        .env("RUST_LOG", "warn");
    c
}

/// `cmd`, a `sigil cas serve` of `data_dir` with `flags`, must fail with
/// `needle` on stderr before it creates its data directory.
fn refused_before_start(mut cmd: Command, data_dir: &Path, flags: &[&str], needle: &str) {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{flags:?} accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{flags:?}: {err}");
    assert!(!data_dir.exists(), "nothing created for {flags:?}");
}

/// Starts `sigil cas serve` with `extra` flags; returns it with its address and pin.
fn serve(data_dir: &Path, extra: &[&str]) -> (Serve, String, Fingerprint) {
    let mut child = serve_cmd(data_dir, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sigil cas serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (addr, fp) = cas_serve_banner(&mut lines).expect("serve exited early");
    (Serve(child), addr, fp.parse().unwrap())
}

/// Sends `n` (empty, hence invalid) attest requests; returns the statuses.
async fn attest_statuses(addr: &str, fp: Fingerprint, n: usize) -> Vec<u16> {
    let c = CasClient::connect(addr, fp, None).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        match c.post_json("/v1/attest", &serde_json::json!({})).await {
            Err(ClientError::Api { status, .. }) => out.push(status),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attest_rate_limit_comes_from_the_flags() {
    let d = tempfile::tempdir().unwrap();
    // Burst 3, refill far too slow to matter during the test.
    let (_s, addr, fp) = serve(
        &d.path().join("a"),
        &["--attest-burst", "3", "--attest-rate", "0.001"],
    );
    // Past the limiter, an empty body is a 400; beyond the burst, 429.
    assert_eq!(
        attest_statuses(&addr, fp, 5).await,
        [400, 400, 400, 429, 429]
    );
    // The management API is not limited.
    let c = CasClient::connect(&addr, fp, None).await.unwrap();
    assert!(c.health().await.is_ok());

    // Defaults: burst 20.
    let (_s2, addr2, fp2) = serve(&d.path().join("b"), &["--attest-rate", "0.001"]);
    let st = attest_statuses(&addr2, fp2, 21).await;
    assert!(st[..20].iter().all(|s| *s == 400), "{st:?}");
    assert_eq!(st[20], 429);
}

#[test]
fn bad_rate_limit_flags_are_refused_before_starting() {
    let d = tempfile::tempdir().unwrap();
    for (flags, needle) in [
        (&["--attest-rate", "0"][..], "out of range"),
        (&["--attest-rate=-1"], "out of range"),
        (&["--attest-rate", "NaN"], "out of range"),
        (&["--attest-rate", "fast"], "not a number"),
        (&["--attest-burst", "0"], "--attest-burst"),
    ] {
        let x = d.path().join("x");
        refused_before_start(serve_cmd(&x, flags), &x, flags, needle);
    }
}

#[test]
fn verifier_flags_are_checked_before_anything_is_created() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing");
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let m = missing.to_str().unwrap();
    let f = file.to_str().unwrap();
    let here = d.path().to_str().unwrap();
    for (flags, needle) in [
        (vec!["--collateral-dir", m], "missing"),
        (
            vec!["--collateral-dir", here, "--pccs-url", "http://127.0.0.1:1"],
            "cannot be used with",
        ),
        (vec!["--pccs-url", "pccs.example"], "is not an http(s) URL"),
        (
            vec!["--collateral-dir", here, "--snp-cert-dir", f],
            "is not a directory",
        ),
        (
            vec!["--collateral-dir", here, "--snp-kds-url", "kds"],
            "SNP KDS URL",
        ),
    ] {
        let x = d.path().join("x");
        let mut cmd = serve_cmd(&x, &flags);
        cmd.env_remove("SIGIL_PCCS_URL")
            .env_remove("SIGIL_COLLATERAL_DIR");
        refused_before_start(cmd, &x, &flags, needle);
    }
    // Good directories: it starts.
    let certs = d.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (_s, _addr, _fp) = serve(
        &d.path().join("ok"),
        &[
            "--collateral-dir",
            here,
            "--snp-cert-dir",
            certs.to_str().unwrap(),
            "--snp-kds-url",
            "http://127.0.0.1:1",
        ],
    );
}

/// `--session-creator` restricts top-level session creation; without it the
/// CAS says at start that anyone with a client certificate may create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_creator_flag_restricts_and_default_warns() {
    let d = tempfile::tempdir().unwrap();
    let alice = sigil_client::Identity::generate("alice", &[]).unwrap();
    let bob = sigil_client::Identity::generate("bob", &[]).unwrap();
    let alice_hex = alice.fingerprint().to_hex();
    let (_s, addr, fp) = serve(&d.path().join("a"), &["--session-creator", &alice_hex]);
    let yaml = |n: &str| {
        format!("name: {n}\nsecrets:\n  - name: s\n    kind: ascii\n    size: 8\naccess_policy:\n  read: [CREATOR]\n  update: [CREATOR]\n  create_sessions: [CREATOR]\n")
    };
    let b = CasClient::connect(&addr, fp, Some(&bob)).await.unwrap();
    match b.create_session(&yaml("bobs")).await {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 403),
        other => panic!("bob created a top-level session: {other:?}"),
    }
    let a = CasClient::connect(&addr, fp, Some(&alice)).await.unwrap();
    a.create_session(&yaml("alices")).await.unwrap();

    // Default: open, and said so loudly at start.
    let log_path = d.path().join("serve.log");
    let mut child = serve_cmd(&d.path().join("b"), &[])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Serve(child);
    let mut lines = BufReader::new(stdout).lines();
    while !lines
        .next()
        .expect("serve exited early")
        .unwrap()
        .starts_with("listening on ")
    {}
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains("anyone with a client certificate can create") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        log.contains("anyone with a client certificate can create") && log.contains("WARN"),
        "{log}"
    );
}
