//! The launcher against a real CAS on loopback (real TLS, real redb store,
//! real sealed volumes), without containers: the `sigil-init` binary runs
//! with `SIGIL_ROOT` pointing at an image tree on tmpfs (`/dev/shm`) in
//! simulation mode, and really `fexecve`s `/bin/sh` from verified bytes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sigil_client::AuditEntry;
use sigil_init::attest::{run_attestation, AttestError, AttestParams, CasConnection};
use sigil_init::config::{ConfigId, InitConfig, SpkiPin};
use sigil_init::evidence::Provider;
use sigil_init::measurement;

mod support;

use support::{image_tree, init_config};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_sigil-init");

/// The CAS of these tests.
struct Cas(support::Cas);

impl std::ops::Deref for Cas {
    type Target = support::Cas;
    fn deref(&self) -> &support::Cas {
        &self.0
    }
}

impl Cas {
    fn start() -> Cas {
        Cas(support::Cas::start(&"22".repeat(32), "tester", |_| {}))
    }

    fn attest_audit(&self) -> Vec<AuditEntry> {
        self.rt
            .block_on(self.client.audit())
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "attest")
            .collect()
    }
}

/// An image tree on tmpfs: `/usr/bin/sh` (the host's, an ELF), a sealed
/// volume with `/app/hello.txt`, `/sigil/init.toml`, `/run/sigil`.
struct Image {
    root: tempfile::TempDir,
    init: InitConfig,
    key_hex: String,
    tag_hex: String,
}

impl Image {
    fn new(cas: &Cas, session: &str) -> Image {
        Self::new_in(cas, session, Path::new("/dev/shm"))
    }

    fn new_in(cas: &Cas, session: &str, parent: &Path) -> Image {
        let (root, sealed) = image_tree(
            parent,
            "sigil-init-test-",
            "hello.txt",
            b"hello from the sealed volume",
        );
        let tag_hex = hex_of(&sealed.tag.0);
        let init = init_config(cas, session, "web", &tag_hex, vec!["PASS_ME".into()]);
        let img = Image {
            root,
            init,
            key_hex: sealed.key.to_hex().to_string(),
            tag_hex,
        };
        img.write_init();
        img
    }

    fn write_init(&self) {
        fs::write(self.path("sigil/init.toml"), self.init.to_toml().unwrap()).unwrap();
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn measurement(&self) -> [u8; 32] {
        measurement::from_paths(
            Path::new(LAUNCHER),
            &self.path("sigil/init.toml"),
            &self.path("usr/bin/sh"),
        )
        .unwrap()
    }

    /// A session for this image: simulation mode (unless `hardware`), a rule
    /// with `measurement`, secrets in env, arguments and files.
    fn session(
        &self,
        name: &str,
        measurement: &[u8; 32],
        volume_tag: &str,
        hardware: bool,
    ) -> String {
        let root = self.root.path().display();
        let mode = if hardware { "hardware" } else { "simulation" };
        format!(
            r#"
name: {name}
services:
  - name: web
    image_name: img
    command: ["sh", "-c", "echo ARG=$0; echo KEY=$API_KEY; echo PASS=$PASS_ME; echo B64=$TOKEN_B64; echo HOSTONLY=$HOST_ONLY; echo PID=$$; echo PWD=$(pwd); echo FILE=$(cat {root}/run/sigil/secret.txt); echo CFG=$(head -1 {root}/run/sigil/files/etc/app/tls.crt); echo VOL=$(cat {root}/run/sigil/volumes/app/app/hello.txt)", "--token=$$SIGIL::token:hex$$"]
    pwd: /tmp
    environment:
      API_KEY: "$$SIGIL::api_key$$"
      TOKEN_B64: "$$SIGIL::token:base64$$"
    attestation:
      - simulation_measurement: {m}
secrets:
  - name: api_key
    kind: ascii
    size: 24
  - name: token
    kind: binary
    size: 16
  - name: greeting
    value: "hello-from-cas"
  - name: key
    kind: private-key
    algorithm: ed25519
  - name: ca
    kind: x509-ca
    common_name: Test CA
  - name: cert
    kind: x509
    issuer: ca
    common_name: web.svc
    dns: [web.svc]
    valid_for: 30d
volumes:
  - name: app
    key: {key}
    tag: {volume_tag}
images:
  - name: img
    volumes:
      - name: app
        path: /app
    injection_files:
      - path: /run/sigil/secret.txt
        content: "$$SIGIL::greeting$$"
        mode: 0400
      - path: /etc/app/tls.crt
        content: "$$SIGIL::cert:chain$$"
      - path: /run/sigil/token.bin
        content: "$$SIGIL::token:der$$"
      - path: /run/sigil/key.pem
        content: "$$SIGIL::key:pem$$"
security:
  attestation:
    mode: {mode}
"#,
            m = hex_of(measurement),
            key = self.key_hex,
        )
    }

    fn run(&self, extra_env: &[(&str, &str)]) -> (Output, u32) {
        let mut c = Command::new(LAUNCHER);
        c.env_clear()
            .env("SIGIL_ROOT", self.root.path())
            .env("SIGIL_MODE", "sim")
            .env("SIGIL_CAS_TIMEOUT", "5")
            .env("PASS_ME", "passed-through")
            .env("HOST_ONLY", "must-not-arrive");
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        (child.wait_with_output().unwrap(), pid)
    }
}

/// A CAS and an image for session `name`, which admits the image's
/// measurement and volume (simulation mode unless `hardware`).
fn cas_with_image(name: &str, hardware: bool) -> (Cas, Image) {
    let cas = Cas::start();
    let img = Image::new(&cas, name);
    cas.create(&img.session(name, &img.measurement(), &img.tag_hex.clone(), hardware));
    (cas, img)
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

/// Asserts the launcher refused: exit 1, the application printed nothing,
/// stderr names the reason.
fn assert_refused(out: &Output, reason: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "the application ran: {}",
        text(&out.stdout)
    );
    assert!(stderr.contains(reason), "expected {reason:?} in: {stderr}");
    assert!(
        stderr.contains("the application was not started"),
        "{stderr}"
    );
}

#[test]
fn happy_path_secrets_arrive_in_env_args_files_and_volume() {
    let (cas, img) = cas_with_image("happy", false);
    let (out, pid) = img.run(&[]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "attested at CAS {} as happy/web (measurement {}",
            cas.addr(),
            hex_of(&img.measurement())
        )),
        "{stderr}"
    );
    // Argument: the token, hex.
    let token_hex = line(&stdout, "ARG=--token=");
    assert_eq!(token_hex.len(), 32, "{stdout}");
    // The same binary secret in three formats: hex (argument), base64
    // (environment), raw bytes (file).
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD
        .decode(line(&stdout, "B64="))
        .unwrap();
    assert_eq!(hex_of(&b64), token_hex);
    assert_eq!(
        hex_of(&fs::read(img.path("run/sigil/token.bin")).unwrap()),
        token_hex
    );
    let pem = fs::read_to_string(img.path("run/sigil/key.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    // Environment: generated ascii secret and pass-through, nothing else.
    let key = line(&stdout, "KEY=");
    assert_eq!(key.len(), 24, "{stdout}");
    assert_eq!(line(&stdout, "PASS="), "passed-through");
    assert_eq!(line(&stdout, "HOSTONLY="), "");
    // exec, not fork: the application has the launcher's PID.
    assert_eq!(line(&stdout, "PID="), pid.to_string());
    assert_eq!(line(&stdout, "PWD="), "/tmp");
    // Files: explicit value in a file in the memory dir with mode 0400, a
    // PEM chain outside it through a symlink into memory.
    assert_eq!(line(&stdout, "FILE="), "hello-from-cas");
    assert_eq!(line(&stdout, "CFG="), "-----BEGIN CERTIFICATE-----");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(img.path("run/sigil/secret.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o400);
    // (The symlink is absolute in image terms; outside a container the
    // test reads the memory copy directly.)
    assert_eq!(
        fs::read_link(img.path("etc/app/tls.crt")).unwrap(),
        Path::new("/run/sigil/files/etc/app/tls.crt")
    );
    // Volume opened into memory.
    assert_eq!(line(&stdout, "VOL="), "hello from the sealed volume");
    assert_eq!(
        fs::read_link(img.path("app")).unwrap(),
        Path::new("/run/sigil/volumes/app/app")
    );

    // Audit: one accepted attempt with the claims, no secrets.
    let audit = cas.attest_audit();
    assert_eq!(audit.len(), 1);
    let d = &audit[0].details;
    assert_eq!(d["result"], "accepted");
    assert_eq!(d["config_id"], "happy/web");
    assert_eq!(d["claims"]["tee"], "simulation");
    assert_eq!(d["measurement"], hex_of(&img.measurement()));
    let json = serde_json::to_string(&audit[0]).unwrap();
    for secret in [key, token_hex, "hello-from-cas", &img.key_hex] {
        assert!(!json.contains(secret), "audit leaks a secret: {json}");
    }
}

#[test]
fn tampered_binary_is_refused_with_the_reason_in_output_and_audit() {
    let (cas, img) = cas_with_image("tamper", false);
    let mut b = fs::read(img.path("usr/bin/sh")).unwrap();
    let n = b.len() - 100;
    b[n] ^= 0x01;
    fs::write(img.path("usr/bin/sh"), b).unwrap();
    let (out, _) = img.run(&[]);
    assert_refused(&out, "no attestation rule of session tamper matches");
    let audit = cas.attest_audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].details["result"], "refused");
    let reasons = audit[0].details["reasons"].to_string();
    assert!(reasons.contains("no attestation rule"), "{reasons}");
}

#[test]
fn tampered_volume_and_rollback_are_refused_by_the_launcher() {
    let cas = Cas::start();
    // Rollback: the session knows a newer tag than the image carries.
    let img = Image::new(&cas, "rollback");
    cas.create(&img.session("rollback", &img.measurement(), &"ab".repeat(32), false));
    let (out, _) = img.run(&[]);
    assert_refused(&out, "rollback refused");

    // Tampered volume file: one byte in the middle of a sealed file's own
    // range flipped (small files share packs under data/).
    let img = Image::new(&cas, "tampervol");
    cas.create(&img.session("tampervol", &img.measurement(), &img.tag_hex.clone(), false));
    let (blob, range) = sigil_fs::Volume::open(
        img.path("sigil/volumes/app"),
        &sigil_fs::VolumeKey::from_hex(&img.key_hex).unwrap(),
        &img.tag_hex.parse::<sigil_fs::VolumeTag>().unwrap(),
    )
    .unwrap()
    .data_range("app/hello.txt")
    .unwrap();
    let mut b = fs::read(&blob).unwrap();
    let n = ((range.start + range.end) / 2) as usize;
    b[n] ^= 0x80;
    fs::write(&blob, b).unwrap();
    let (out, _) = img.run(&[]);
    assert_refused(&out, "volume app");
}

#[test]
fn hardware_only_session_refuses_simulation() {
    let (cas, img) = cas_with_image("hwonly", true);
    let (out, _) = img.run(&[]);
    assert_refused(&out, "does not set attestation mode simulation");
    let audit = cas.attest_audit();
    assert!(audit[0].details["reasons"]
        .to_string()
        .contains("simulation"));
}

#[test]
fn wrong_pin_unknown_config_id_and_unreachable_cas() {
    let (cas, mut img) = cas_with_image("pins", false);

    // Unknown config id (the environment may name another service; the CAS
    // decides against that session's rules).
    let (out, _) = img.run(&[("SIGIL_CONFIG_ID", "nosuch/web")]);
    assert_refused(&out, "unknown config id nosuch/web");
    assert!(cas.attest_audit()[0].details["reasons"]
        .to_string()
        .contains("unknown config id"));

    // Unreachable: a port nobody listens on; bounded retries, then a clear line.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (out, _) = img.run(&[
        ("SIGIL_CAS_ADDR", &format!("127.0.0.1:{port}")),
        ("SIGIL_CAS_TIMEOUT", "0.6"),
    ]);
    assert_refused(&out, "unreachable after");

    // Wrong pin: init.toml pins another key; nothing is sent.
    img.init.cas_fingerprint = SpkiPin([7; 32]);
    img.write_init();
    let before = cas.attest_audit().len();
    let (out, _) = img.run(&[]);
    assert_refused(&out, "is not the CAS pinned in init.toml");
    assert_eq!(cas.attest_audit().len(), before);
}

#[test]
fn memory_dir_on_disk_is_refused() {
    let cas = Cas::start();
    let img = Image::new_in(&cas, "disk", Path::new(env!("CARGO_TARGET_TMPDIR")));
    cas.create(&img.session("disk", &img.measurement(), &img.tag_hex.clone(), false));
    let (out, _) = img.run(&[]);
    assert_refused(&out, "is not memory-backed");
}

#[test]
fn evidence_replayed_on_another_connection_is_refused() {
    let cas = Cas::start();
    let m = [0x5a; 32];
    let img = Image::new(&cas, "replay");
    cas.create(&img.session("replay", &m, &img.tag_hex.clone(), false));
    let cid = ConfigId {
        session: "replay".into(),
        service: "web".into(),
    };
    let provider = Provider::Simulation { measurement: m };
    let t = Duration::from_secs(5);

    // Evidence made for connection A, sent on connection B.
    let a = CasConnection::connect(&cas.addr(), cas.pin(), t).unwrap();
    let ev = provider.evidence(&a.report_data().unwrap()).unwrap();
    let b = CasConnection::connect(&cas.addr(), cas.pin(), t).unwrap();
    assert_ne!(a.report_data().unwrap(), b.report_data().unwrap());
    match b.attest(&cid, &ev) {
        Err(AttestError::Refused { reasons, .. }) => {
            assert!(
                reasons
                    .iter()
                    .any(|r| r.contains("report data does not match")),
                "{reasons:?}"
            )
        }
        other => panic!("replay not refused: {other:?}"),
    }
    // On its own connection the same evidence is accepted.
    let svc = a.attest(&cid, &ev).unwrap();
    assert_eq!(svc.service.service, "web");
    assert_eq!(svc.tee, "simulation");

    // And the library entry point does the same end to end.
    let p = AttestParams {
        cas_addr: cas.addr(),
        pin: cas.pin(),
        config_id: cid,
        provider,
        deadline: t,
        io_timeout: t,
    };
    let got = run_attestation(&p, |_, _| {}).unwrap();
    assert_eq!(got.measurement, hex_of(&m));
    assert!(got.service.environment["API_KEY"].len() == 24);
    let audit = cas.attest_audit();
    let results: Vec<&str> = audit
        .iter()
        .map(|e| e.details["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["refused", "accepted", "accepted"]);
}
