//! End to end with the real `sigil` binary, a real CAS (`sigil cas serve`),
//! `sigil convert` and real podman: a small shell service is converted,
//! attested in simulation mode and run; then each attack is tried and must
//! be refused with the application never started and the reason in the
//! launcher's output (and in the CAS audit log where the CAS decides).
//! Needs podman and the static launcher (`SIGIL_INIT_BINARY`, exported by
//! `scripts/test.sh`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use sigil_testsupport::cli::{assert_success, cas_serve_banner, launcher_binary, run};
use sigil_testsupport::podman::{self, podman};

const SIGIL: &str = env!("CARGO_BIN_EXE_sigil");

struct Cas {
    child: Child,
    // Kept open: a CAS writing to a closed stdout would fail.
    _stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
    addr: String,
    pin: String,
    dir: tempfile::TempDir,
}

impl Cas {
    fn start() -> Cas {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(SIGIL)
            .args(["cas", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("cas"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (addr, pin) = cas_serve_banner(&mut lines).expect("cas serve printed its address");
        let out = Command::new(SIGIL)
            .args(["identity", "create", "--dir"])
            .arg(dir.path().join("id"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cas {
            child,
            _stdout: lines,
            addr,
            pin,
            dir,
        }
    }

    fn audit(&self) -> String {
        let out = Command::new(SIGIL)
            .args(["audit", "show", "--json", "--cas", &self.addr])
            .args(["--cas-fingerprint", &self.pin, "--identity"])
            .arg(self.dir.path().join("id"))
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Cas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The plain input image: dash as `/bin/sh` with its libraries, and
/// `/app/hello.txt` with `content`.
fn base_image(dir: &Path, content: &str) -> PathBuf {
    let p = dir.join(format!("base-{}.tar", content.len()));
    sigil_image::build::ImageBuilder::new()
        .layer(|l| {
            l.add_host_elf("/bin/dash", "/bin/sh")
                .add_bytes("/app/hello.txt", content.as_bytes(), 0o644)
                .add_dir("/tmp", 0o1777)
                .add_dir("/run", 0o755)
        })
        .entrypoint(["/bin/sh"])
        .write_oci_archive(&p)
        .unwrap();
    p
}

/// Converts `base` for session `name` and uploads the session.
fn convert(cas: &Cas, base: &Path, name: &str, extra: &[&str]) -> String {
    let upload = format!("https://{}", cas.addr);
    let id = cas.dir.path().join("id");
    let mut args = vec![
        "--command",
        r#"sh -c "read x < /app/hello.txt; echo APP-STARTED $x KEY=$KEY PID=$$""#,
        "--env",
        "KEY=from-session",
        "--service-name",
        "web",
        "--cas",
        &upload,
        "--identity",
        id.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    convert_and_load(&cas.dir, base, name, &cas.addr, &cas.pin, &args)
}

/// `sigil convert` of `base` (binary /bin/sh, /app sealed, simulation mode)
/// for session `name`, with the CAS address and key pin written into the
/// image and `extra` arguments; the result is loaded into podman. Returns
/// the image name.
fn convert_and_load(
    work: &tempfile::TempDir,
    base: &Path,
    name: &str,
    cas_addr: &str,
    cas_pin: &str,
    extra: &[&str],
) -> String {
    let to = work.path().join(format!("{name}-sigil.tar"));
    let image = format!("localhost/sigil-e2e-{name}-{}:latest", std::process::id());
    let out = run(Command::new(SIGIL)
        .arg("convert")
        .arg("--from")
        .arg(base)
        .arg("--to")
        .arg(&to)
        .args(["--binary", "/bin/sh", "--dir", "/app"])
        .args([
            "--cas-addr",
            cas_addr,
            "--cas-pin",
            cas_pin,
            "--mode",
            "sim",
        ])
        .args(["--name", name, "--image-name", &image])
        .arg("--launcher")
        .arg(launcher_binary())
        .args(extra));
    assert_success(&out, "sigil convert");
    podman(&["load", "-q", "-i", to.to_str().unwrap()]);
    image
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman::output(&["rm", "-f", &self.0]);
    }
}

fn create(cas: &Cas, image: &str, env: &[&str]) -> Container {
    let name = format!("sigil-e2e-{}-{}", std::process::id(), rand_suffix());
    let addr = format!("SIGIL_CAS_ADDR={}", cas.addr);
    let mut args = vec!["create", "--name", &name, "--network=host"];
    args.extend(["--tmpfs", "/run/sigil:rw,size=16m,mode=0755", "-e", &addr]);
    args.extend(["-e", "SIGIL_MODE=sim", "-e", "SIGIL_CAS_TIMEOUT=10"]);
    for e in env {
        args.extend(["-e", e]);
    }
    args.push(image);
    podman(&args);
    Container(name)
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    hex::encode(b)
}

fn start(c: &Container) -> Output {
    podman::output(&["start", "-a", &c.0])
}

/// Flips one byte in the middle of `path` inside the (created) container.
fn tamper(c: &Container, path: &str, work: &Path) {
    let local = work.join(format!("tamper-{}", rand_suffix()));
    let cp = |a: &str, b: &str| podman(&["cp", a, b]);
    cp(&format!("{}:{path}", c.0), local.to_str().unwrap());
    let mut b = std::fs::read(&local).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    std::fs::write(&local, b).unwrap();
    cp(local.to_str().unwrap(), &format!("{}:{path}", c.0));
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_refused(o: &Output, reason: &str) {
    let (out, err) = text(o);
    assert!(!o.status.success(), "not refused:\n{out}\n{err}");
    assert!(
        !out.contains("APP-STARTED") && !err.contains("APP-STARTED"),
        "the app ran:\n{out}\n{err}"
    );
    assert!(err.contains(reason), "expected {reason:?} in:\n{err}");
    assert!(err.contains("the application was not started"), "{err}");
}

#[test]
fn converted_image_runs_attested_and_attacks_are_refused() {
    let cas = Cas::start();
    let work = cas.dir.path().to_path_buf();
    let base = base_image(&work, "v1-content");

    // Happy path: secrets in env and arguments, the app is PID 1 (exec).
    let image = convert(&cas, &base, "e2e", &["--allow-simulation"]);
    let c = create(&cas, &image, &[]);
    let o = start(&c);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        err.contains(&format!("attested at CAS {} as e2e/web", cas.addr)),
        "{err}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("APP-STARTED"))
        .expect(&out);
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[1], "v1-content", "{line}");
    assert_eq!(words[2], "KEY=from-session", "{line}");
    assert_eq!(words[3], "PID=1", "{line}");
    drop(c);

    // Tampered binary: measurement mismatch, decided by the CAS.
    let c = create(&cas, &image, &[]);
    tamper(&c, "/bin/sh", &work);
    assert_refused(&start(&c), "no attestation rule of session e2e matches");
    drop(c);

    // Tampered volume file: the sealed data of /app changed.
    let c = create(&cas, &image, &[]);
    tamper(&c, "/sigil/volumes/fs/manifest.sigil", &work);
    assert_refused(&start(&c), "volume tag mismatch");
    drop(c);

    // Rollback: the app is updated (v2, session updated to its measurement
    // and volume tag); the host puts v1's older volume into a v2 container.
    let old = create(&cas, &image, &[]);
    let v1_dir = work.join("v1-volume");
    podman(&[
        "cp",
        &format!("{}:/sigil/volumes/fs", old.0),
        v1_dir.to_str().unwrap(),
    ]);
    drop(old);
    let base2 = base_image(&work, "v2-content-newer");
    let image2 = convert(&cas, &base2, "e2e", &["--allow-simulation"]);
    let c = create(&cas, &image2, &[]);
    podman(&[
        "cp",
        &format!("{}/.", v1_dir.display()),
        &format!("{}:/sigil/volumes/fs", c.0),
    ]);
    assert_refused(&start(&c), "rolled-back volume");
    drop(c);
    // The v2 image itself runs.
    let c = create(&cas, &image2, &[]);
    let o = start(&c);
    assert!(
        text(&o).0.contains("APP-STARTED v2-content-newer"),
        "{:?}",
        text(&o)
    );
    drop(c);

    // Unknown config id (the environment may name it; the CAS decides).
    let c = create(&cas, &image, &["SIGIL_CONFIG_ID=nosuch/web"]);
    assert_refused(&start(&c), "unknown config id nosuch/web");
    drop(c);

    // A session without attestation mode simulation.
    let hw = convert(&cas, &base, "e2ehw", &[]);
    let c = create(&cas, &hw, &[]);
    assert_refused(&start(&c), "does not set attestation mode simulation");
    drop(c);

    // Wrong CAS key pin in init.toml: no evidence is sent.
    let other = Cas::start();
    // Converted against `other`'s pin but pointed at `cas`.
    let wrong = convert_and_load(
        &cas.dir,
        &base,
        "wrongpin",
        &cas.addr,
        &other.pin,
        &["--allow-simulation"],
    );
    let c = create(&cas, &wrong, &[]);
    assert_refused(&start(&c), "is not the CAS pinned in init.toml");
    drop(c);

    // The audit log has the CAS-side refusals with their reasons.
    let audit = cas.audit();
    for want in [
        "no attestation rule of session e2e matches",
        "unknown config id nosuch/web",
        "does not set attestation mode simulation",
    ] {
        assert!(audit.contains(want), "audit lacks {want:?}:\n{audit}");
    }

    for i in [&image, &image2, &hw, &wrong] {
        let _ = podman::output(&["rmi", "-f", i]);
    }
}
