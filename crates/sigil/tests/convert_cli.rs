//! `sigil convert` end to end through the real binary: a python3 image built
//! from this host's files, converted, loaded into real podman; the session
//! file parses with sigil-session and carries the measurement; the chart is
//! written; bad input gives one line on stderr and leaves nothing behind.
//!
//! The host's static `ldconfig` stands in for the launcher (only its being a
//! static ELF and its bytes matter here, not its behaviour).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sigil_image::build::ImageBuilder;
use sigil_testsupport::cli::{run, static_elf as launcher};
use sigil_testsupport::listing;
use sigil_testsupport::podman::podman;

const MARKER: &str = "SIGIL-CLI-MARKER-51d0e2-secret";

fn image(dir: &Path) -> PathBuf {
    let p = dir.join("in.tar");
    ImageBuilder::new()
        .layer(|l| {
            l.add_host_elf("/usr/bin/python3.11", "usr/bin/python3.11")
                .add_symlink("usr/bin/python3", "python3.11")
                .add_host_file("/usr/lib/python3.11/os.py", "usr/lib/python3.11/os.py")
        })
        .layer(|l| {
            l.add_bytes("app/main.py", b"print('hello')\n", 0o644)
                .add_bytes("app/key.py", format!("K='{MARKER}'\n").as_bytes(), 0o600)
                .add_bytes(
                    "app/start.sh",
                    b"#!/bin/sh\nexec python3 /app/main.py\n",
                    0o755,
                )
        })
        .entrypoint(["python3"])
        .cmd(["/app/main.py"])
        .env("PATH", "/usr/bin:/bin")
        .env("GREETING", "hi")
        .working_dir("/app")
        .expose("8080/tcp")
        .write_oci_archive(&p)
        .unwrap();
    p
}

/// `sigil convert --from FROM --to TO --launcher LAUNCHER --cas-pin PIN
/// EXTRA…`.
fn convert(from: &str, to: &str, launcher: &str, pin: &str, extra: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["convert", "--from", from, "--to", to])
        .args(["--launcher", launcher, "--cas-pin", pin])
        .args(extra)
        .env_remove("SIGIL_INIT_BINARY")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE"))
}

const PIN: &str = "sha256:0101010101010101010101010101010101010101010101010101010101010101";

#[test]
fn converts_writes_session_and_chart_and_loads_in_podman() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let out = t.path().join("pyweb.tar");
    let chart = t.path().join("chart");
    let name = format!("pyweb{}", std::process::id());
    let r = convert(
        img.to_str().unwrap(),
        out.to_str().unwrap(),
        launcher(),
        PIN,
        &[
            "--dir",
            "/app",
            "--name",
            &name,
            "--service-name",
            "web",
            "--env",
            "EXTRA=1",
            "--allow-simulation",
            "--allow-tcb-vulnerabilities",
            "--k8s-helm-output-dir",
            chart.to_str().unwrap(),
            "--k8s-helm-workload",
            "statefulset",
        ],
    );
    let stdout = String::from_utf8_lossy(&r.stdout).to_string();
    assert!(
        r.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        stdout.contains("security    attestation mode: simulation"),
        "{stdout}"
    );
    assert!(stdout.contains("INTEL-SA-00615"), "{stdout}");

    let session_path = t.path().join("pyweb.session.yaml");
    let meta = std::fs::metadata(&session_path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let yaml = std::fs::read_to_string(&session_path).unwrap();
    let s = sigil_session::Session::parse(&yaml).unwrap();
    assert_eq!(s.name.as_str(), name);
    let svc = &s.services[0];
    assert_eq!(svc.name, "web");
    assert_eq!(svc.command, vec!["python3", "/app/main.py"]);
    assert_eq!(
        svc.environment.get("GREETING").map(String::as_str),
        Some("hi")
    );
    assert_eq!(svc.environment.get("EXTRA").map(String::as_str), Some("1"));
    assert_eq!(svc.pwd.as_deref(), Some("/app"));
    let m = svc.attestation[0].simulation_measurement.unwrap();
    assert!(stdout.contains(&hex::encode(m)), "{stdout}");
    assert_eq!(
        s.security.attestation_mode,
        sigil_session::AttestationMode::Simulation
    );
    assert!(s.volumes[0].key.is_some() && s.volumes[0].tag.is_some());
    // The key is in the 0600 session file only, never on stdout.
    let key_hex = hex::encode(s.volumes[0].key.as_ref().unwrap().expose());
    assert!(!stdout.contains(&key_hex));

    assert!(chart.join("Chart.yaml").is_file());
    let values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
    assert!(values.contains("workload: \"statefulset\""), "{values}");
    assert!(
        values.contains(&format!("configId: \"{name}/web\"")),
        "{values}"
    );
    assert!(values.contains("- 8080"), "{values}");

    let image_ref = format!("localhost/{name}-sigil:latest");
    podman(&["load", "-i", out.to_str().unwrap()]);
    let ep = podman(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}}",
        &image_ref,
    ]);
    podman(&["rmi", &image_ref]);
    assert_eq!(ep.trim(), "[\"/sigil/sigil-init\"]");
    let mut left = listing(t.path());
    left.retain(|n| n.starts_with('.'));
    assert!(left.is_empty(), "{left:?}");
}

/// `sigil convert` fails with one line naming `expect`, and leaves nothing
/// behind in `t`.
fn fails(t: &Path, from: &str, launcher: &str, pin: &str, extra: &[&str], expect: &str) {
    let before = listing(t);
    let r = convert(
        from,
        t.join("o.tar").to_str().unwrap(),
        launcher,
        pin,
        extra,
    );
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr).trim().to_string();
    assert!(err.contains(expect), "expected {expect:?} in {err:?}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert_eq!(listing(t), before, "left behind after {err}");
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let img = img.to_str().unwrap();
    let l = launcher();
    // A good image, launcher and pin; the arguments added are wrong.
    for (more, expect) in [
        (&["--binary", "/app/start.sh"][..], "--binary /bin/sh"),
        (
            &["--dir", "/nonexistent"],
            "/nonexistent: does not exist in the image",
        ),
        (
            &["--binary", "/usr/bin/nothing"],
            "does not exist in the image",
        ),
        (
            &["--dir", "/app", "--k8s-helm-set", "novalue"],
            "expected key=value",
        ),
    ] {
        fails(t.path(), img, l, PIN, more, expect);
    }
    // The image, the launcher or the pin is wrong.
    for (from, launcher, pin, expect) in [
        ("/nonexistent/image.tar", l, PIN, "no such file"),
        (img, "/usr/bin/python3.11", PIN, "dynamically linked"),
        (img, l, "sha256:zz", "--cas-pin"),
    ] {
        fails(t.path(), from, launcher, pin, &[], expect);
    }
}

#[test]
fn dry_run_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let before = listing(t.path());
    let r = convert(
        img.to_str().unwrap(),
        t.path().join("x.tar").to_str().unwrap(),
        launcher(),
        PIN,
        &["--dir", "/app", "--dry-run"],
    );
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        stdout.contains("would convert") && stdout.contains("layer sha256:"),
        "{stdout}"
    );
    assert_eq!(listing(t.path()), before);
}

#[test]
fn cas_pin_defaults_to_the_trusted_cas() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let config = t.path().join("config");
    let convert = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args(["convert", "--from", img.to_str().unwrap(), "--to"])
            .arg(t.path().join("x.tar"))
            .args(["--dir", "/app", "--launcher", launcher(), "--dry-run"])
            .env("SIGIL_CONFIG_DIR", config)
            .env_remove("SIGIL_INIT_BINARY")
            .output()
            .unwrap()
    };
    // Nothing trusted yet: a one-line error that says what to do.
    let r = convert(&config);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains("sigil cas trust"), "{err}");
    // After `sigil cas trust`, the remembered fingerprint is the pin.
    let trust = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["cas", "trust", "127.0.0.1:8081", "--fingerprint", PIN])
        .env("SIGIL_CONFIG_DIR", &config)
        .output()
        .unwrap();
    assert!(
        trust.status.success(),
        "{}",
        String::from_utf8_lossy(&trust.stderr)
    );
    let r = convert(&config);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.contains(&format!("pinning the CAS key {PIN}")), "{out}");
}
