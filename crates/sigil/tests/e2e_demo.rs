//! End to end with real podman: `sigil demo` starts a CAS, builds and
//! converts the sample Python service, runs it attested (simulation mode)
//! and checks its answer, then runs a copy with one byte of its binary
//! changed and checks that it is refused before the application starts.
//! Needs podman and the static launcher (`SIGIL_INIT_BINARY`, exported by
//! `scripts/test.sh`).

use std::process::Command;

use sigil_testsupport::cli::{launcher_binary, run};

#[test]
fn demo_runs_the_service_with_its_secrets_and_refuses_a_tampered_binary() {
    let out = run(Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["demo", "--launcher"])
        .arg(launcher_binary())
        .args(["--timeout", "120"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The launcher attested and the service answered with the proof.
    assert!(
        stdout.contains("sigil-init: attested at CAS 127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("as demo/web (measurement "), "{stdout}");
    assert!(stdout.contains("\"secret_file_sha256\""), "{stdout}");
    assert!(
        stdout.contains("OK: the SHA-256 of the secret file and of DEMO_API_KEY match"),
        "{stdout}"
    );
    // The tampered copy: refused with the reason, in the launcher's output
    // and in the audit log; the application never printed anything.
    let tampered = stdout.split("[7/7]").nth(1).expect("step 7 ran");
    assert!(
        tampered.contains("refused attestation as demo/web"),
        "{tampered}"
    );
    assert!(
        tampered.contains("no attestation rule of session demo matches"),
        "{tampered}"
    );
    assert!(
        tampered.contains("the application was not started"),
        "{tampered}"
    );
    assert!(!tampered.contains("demo service: listening"), "{tampered}");
    assert!(tampered.contains("CAS audit log, entry"), "{tampered}");
    assert!(tampered.contains("demo/web refused"), "{tampered}");
    assert!(stdout.contains("Demo complete."), "{stdout}");
}
