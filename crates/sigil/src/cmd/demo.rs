//! `sigil demo`: the whole product in one command. Starts a CAS on a
//! temporary store, builds a small Python web service image from host files,
//! converts it, uploads its session (with a secret file and a secret
//! environment variable), runs it with podman in simulation mode, shows the
//! service proving it received its secrets, then shows the same image with
//! one byte of its binary changed being refused. Cleans up after itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use sigil_image::archive::{Format, LayerCompression};
use sigil_image::build::ImageBuilder;
use sigil_image::convert::{self, ConvertOptions, NoProgress};
use sigil_image::session::{build_session, SessionOptions};
use sigil_init::config::{Mode, SpkiPin};
use sigil_session::{InjectionFile, Secret, SecretKind, SecretValue};

/// Arguments of `sigil demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The static launcher (default: env SIGIL_INIT_BINARY, else `sigil-init`
    /// next to this executable; `scripts/build-launcher.sh` builds it).
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,
    /// Keep the temporary directory, image and containers (for inspection).
    #[arg(long)]
    pub keep: bool,
    /// Seconds to wait for the service to answer.
    #[arg(long, default_value_t = 90)]
    pub timeout: u64,
}

const SERVER_PY: &str = r#"import hashlib, http.server, json, os

SECRET_FILE = "/run/sigil/db-password"


def sha256(b):
    return hashlib.sha256(b).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(SECRET_FILE, "rb") as f:
            secret = f.read()
        body = json.dumps({
            "service": "sigil demo web service",
            "secret_file": SECRET_FILE,
            "secret_file_sha256": sha256(secret),
            "api_key_sha256": sha256(os.environ.get("DEMO_API_KEY", "").encode()),
            "pid": os.getpid(),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


port = int(os.environ["PORT"])
print(f"demo service: listening on 127.0.0.1:{port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

const PYTHON: &str = "/usr/bin/python3.11";
const PYTHON_LIB: &str = "/usr/lib/python3.11";

fn step(n: usize, msg: impl std::fmt::Display) {
    println!("\n[{n}/7] {msg}");
}

fn info(msg: impl std::fmt::Display) {
    println!("      {msg}");
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.stdin(Stdio::null());
    c
}

fn run_ok(c: &mut Command, what: &str) -> anyhow::Result<Output> {
    let out = c
        .output()
        .with_context(|| format!("{what}: cannot run podman"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

fn find_launcher(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("SIGIL_INIT_BINARY").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("sigil-init")));
    match beside {
        Some(p) if p.is_file() => Ok(p),
        _ => bail!("no launcher: build it with `bash scripts/build-launcher.sh` and pass its path with --launcher or SIGIL_INIT_BINARY (or run `bash scripts/demo.sh`, which does both)"),
    }
}

fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(hex::encode(b))
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `GET /` over plain HTTP/1.0; the body.
fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = Vec::new();
    s.take(1 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") =>
        {
            Ok(body.to_string())
        }
        _ => Err(std::io::Error::other(format!(
            "unexpected answer: {}",
            text.lines().next().unwrap_or("")
        ))),
    }
}

/// Removes containers and the image when the demo ends, however it ends.
struct Cleanup {
    containers: Vec<String>,
    image: Option<String>,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for c in &self.containers {
            let _ = podman().args(["rm", "-f", "-t", "1", c]).output();
        }
        if let Some(i) = &self.image {
            let _ = podman().args(["rmi", "-f", i]).output();
        }
    }
}

fn indent_lines(s: &str) {
    for l in s.lines().filter(|l| !l.trim().is_empty()) {
        info(format_args!("| {l}"));
    }
}

/// Runs `sigil demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    // 1. Prerequisites.
    step(1, "Checking prerequisites");
    let v = Command::new("podman").arg("--version").output();
    match v {
        Ok(o) if o.status.success() => info(String::from_utf8_lossy(&o.stdout).trim()),
        _ => bail!("podman is not installed. Install it (Debian/Ubuntu: `sudo apt-get install podman runc`; Fedora: `sudo dnf install podman`) or run `bash scripts/setup.sh`, then run `sigil demo` again"),
    }
    for p in [PYTHON, PYTHON_LIB] {
        if !Path::new(p).exists() {
            bail!("the sample service is built from the host's Python 3.11 and {p} is missing (Debian: `sudo apt-get install python3.11`)");
        }
    }
    let launcher = find_launcher(args.launcher)?;
    convert::check_launcher(&launcher).map_err(|e| anyhow!("{e}"))?;
    info(format_args!("launcher: {}", launcher.display()));

    let work = tempfile::Builder::new().prefix("sigil-demo-").tempdir()?;
    let work_path = work.path().to_path_buf();
    let tag = random_hex(4)?;
    let mut cleanup = Cleanup {
        containers: Vec::new(),
        image: None,
        keep: args.keep,
    };

    // 2. CAS.
    step(2, "Starting a CAS on a temporary store");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut cfg = sigil_cas::Config::new(work_path.join("cas"), "127.0.0.1:0".parse()?);
    std::fs::create_dir_all(work_path.join("cas"))?;
    cfg.master_key = Some(sigil_cas::MasterKeySource::Hex(zeroize::Zeroizing::new(
        random_hex(32)?,
    )));
    cfg.admin_socket = false;
    let server = rt
        .block_on(sigil_cas::Server::start(cfg))
        .map_err(|e| anyhow!("starting the CAS: {e}"))?;
    let cas_addr = server.addr.to_string();
    info(format_args!("CAS listening on {cas_addr}"));
    info(format_args!("CAS key pin {}", server.fingerprint));
    let identity = sigil_client::Identity::generate("sigil-demo", &[])?;
    let client = rt.block_on(sigil_client::CasClient::connect(
        &cas_addr,
        server.fingerprint,
        Some(&identity),
    ))?;

    let result = (|| -> anyhow::Result<()> {
        // 3. Sample image.
        step(3, "Building the sample image: a Python web service");
        let plain = work_path.join("web.tar");
        ImageBuilder::new()
            .layer(|l| {
                l.add_host_elf(PYTHON, PYTHON)
                    .add_host_dir(PYTHON_LIB, PYTHON_LIB)
                    .add_bytes("/app/server.py", SERVER_PY.as_bytes(), 0o644)
                    .add_dir("/tmp", 0o1777)
                    .add_dir("/run", 0o755)
            })
            .entrypoint([PYTHON, "/app/server.py"])
            .env("PATH", "/usr/bin:/bin")
            .working_dir("/app")
            .write_oci_archive(&plain)
            .map_err(|e| anyhow!("building the sample image: {e}"))?;
        info(format_args!(
            "{} ({} MiB): {PYTHON} with its libraries, {PYTHON_LIB}, /app/server.py",
            plain.display(),
            std::fs::metadata(&plain)?.len() >> 20
        ));

        // 4. Convert.
        step(4, "Converting it into a confidential image");
        let image_name = format!("localhost/sigil-demo-{tag}:latest");
        let converted = work_path.join("web-sigil.tar");
        let pin = SpkiPin(server.fingerprint.0);
        let opts = ConvertOptions {
            from: plain.clone(),
            from_ref: None,
            to: converted.clone(),
            format: Format::OciArchive,
            compression: LayerCompression::NONE,
            image_name: image_name.clone(),
            binary: Some(PYTHON.into()),
            encrypt: vec!["/app".into()],
            authenticate: vec![PYTHON_LIB.into()],
            plain: vec![],
            launcher: launcher.clone(),
            cas_addr: cas_addr.clone(),
            cas_pin: pin,
            session: "demo".into(),
            service: "web".into(),
            mode: Mode::Sim,
            volume_name: "app".into(),
            limits: sigil_image::Limits::default(),
            seal_threads: None,
        };
        let conv = convert::convert(&opts, &NoProgress).map_err(|e| anyhow!("convert: {e}"))?;
        info("/app encrypted, /usr/lib/python3.11 and the libraries authenticated, sealed into /sigil/volumes/app");
        info(format_args!(
            "entrypoint /sigil/sigil-init; simulation measurement {}",
            hex::encode(conv.measurement)
        ));

        // 5. Session.
        step(
            5,
            "Uploading the session demo (service web) with two secrets",
        );
        let port = free_port()?;
        let db_password = random_hex(16)?;
        let api_key = random_hex(16)?;
        let (mut session, notes) = build_session(
            &conv,
            &SessionOptions {
                name: "demo".into(),
                service: "web".into(),
                image: "web_image".into(),
                command: Some(vec![PYTHON.into(), "/app/server.py".into()]),
                env: vec![("PORT".into(), port.to_string())],
                allow_simulation: true,
                ..SessionOptions::default()
            },
        )
        .map_err(|e| anyhow!("session: {e}"))?;
        for (name, value) in [("db_password", &db_password), ("api_key", &api_key)] {
            session.secrets.push(Secret {
                name: name.into(),
                kind: SecretKind::Explicit {
                    value: SecretValue::new(value.as_bytes().to_vec()),
                },
                export: vec![],
                import: None,
            });
        }
        session.services[0]
            .environment
            .insert("DEMO_API_KEY".into(), "$$SIGIL::api_key$$".into());
        session.images[0].injection_files.push(InjectionFile {
            path: "/run/sigil/db-password".into(),
            content: "$$SIGIL::db_password$$".into(),
            mode: 0o400,
        });
        let written = rt
            .block_on(client.create_session(&session.to_yaml()))
            .map_err(|e| anyhow!("uploading the session: {e}"))?;
        info(format_args!("session demo stored, hash {}", written.hash));
        for n in notes {
            info(format_args!("note: {n}"));
        }
        info("secret db_password -> file /run/sigil/db-password (mode 0400); secret api_key -> env DEMO_API_KEY");

        // 6. Run.
        step(
            6,
            "Running it with podman (simulation mode, memory-only /run/sigil)",
        );
        let out = run_ok(
            podman().args(["load", "-q", "-i"]).arg(&converted),
            "podman load",
        )?;
        cleanup.image = Some(image_name.clone());
        info(String::from_utf8_lossy(&out.stdout).trim());
        let good = format!("sigil-demo-web-{tag}");
        let run_args = |name: &str| -> Vec<String> {
            vec![
                format!("--name={name}"),
                "--network=host".into(),
                "--tmpfs=/run/sigil:rw,size=64m,mode=0755".into(),
                format!("--env=SIGIL_CAS_ADDR={cas_addr}"),
                "--env=SIGIL_MODE=sim".into(),
                "--env=SIGIL_CAS_TIMEOUT=30".into(),
            ]
        };
        run_ok(
            podman()
                .args(["run", "-d"])
                .args(run_args(&good))
                .arg(&image_name),
            "podman run",
        )?;
        cleanup.containers.push(good.clone());
        let start = Instant::now();
        let body = loop {
            match http_get(port) {
                Ok(b) => break b,
                Err(e) => {
                    let state = podman()
                        .args(["inspect", "-f", "{{.State.Status}}", &good])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default();
                    if state == "exited" || start.elapsed() > Duration::from_secs(args.timeout) {
                        let logs = podman().args(["logs", &good]).output()?;
                        indent_lines(&String::from_utf8_lossy(&logs.stdout));
                        indent_lines(&String::from_utf8_lossy(&logs.stderr));
                        bail!("the service did not answer on 127.0.0.1:{port} ({e}; container {state})");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        let logs = podman().args(["logs", &good]).output()?;
        info("container output:");
        indent_lines(&String::from_utf8_lossy(&logs.stderr));
        indent_lines(&String::from_utf8_lossy(&logs.stdout));
        info(format_args!("GET http://127.0.0.1:{port}/ ->"));
        info(format_args!("| {}", body.trim()));
        let answer: serde_json::Value =
            serde_json::from_str(body.trim()).context("the service's answer is not JSON")?;
        let want_file = hex::encode(sigil_init::measurement::sha256(db_password.as_bytes()));
        let want_key = hex::encode(sigil_init::measurement::sha256(api_key.as_bytes()));
        if answer["secret_file_sha256"] != want_file.as_str()
            || answer["api_key_sha256"] != want_key.as_str()
        {
            bail!("the service's proof does not match the session's secrets");
        }
        info("OK: the SHA-256 of the secret file and of DEMO_API_KEY match the secrets in the session;");
        info("    the service got them from the CAS after attestation, not from the image.");

        // 7. Refusal.
        step(
            7,
            "Tampering: the same image with one byte of its binary changed",
        );
        let bad = format!("sigil-demo-tampered-{tag}");
        run_ok(
            podman()
                .args(["create"])
                .args(run_args(&bad))
                .arg(&image_name),
            "podman create",
        )?;
        cleanup.containers.push(bad.clone());
        let copy = work_path.join("python3.11");
        run_ok(
            podman().arg("cp").arg(format!("{bad}:{PYTHON}")).arg(&copy),
            "podman cp (out)",
        )?;
        let mut bytes = std::fs::read(&copy)?;
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&copy, &bytes)?;
        info(format_args!(
            "flipped one bit at offset {at} of {PYTHON} in container {bad}"
        ));
        run_ok(
            podman().arg("cp").arg(&copy).arg(format!("{bad}:{PYTHON}")),
            "podman cp (in)",
        )?;
        let out = podman()
            .args(["start", "-a", &bad])
            .output()
            .context("podman start")?;
        indent_lines(&String::from_utf8_lossy(&out.stderr));
        indent_lines(&String::from_utf8_lossy(&out.stdout));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("refused attestation") {
            bail!("the tampered image was not refused as expected");
        }
        let audit = rt.block_on(client.audit())?;
        if let Some(e) = audit.iter().rev().find(|e| e.action == "attest") {
            info(format_args!(
                "CAS audit log, entry {}: {} {} ({})",
                e.index,
                e.details["config_id"].as_str().unwrap_or(""),
                e.details["result"].as_str().unwrap_or(""),
                e.details["reasons"]
                    .as_array()
                    .map(|r| r
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join("; "))
                    .unwrap_or_default()
            ));
        }
        info("OK: refused by the CAS; the application never started and got no secret.");
        Ok(())
    })();

    println!();
    if args.keep {
        println!(
            "Kept {} and the containers/image (--keep).",
            work_path.display()
        );
        std::mem::forget(work);
    } else {
        println!("Cleaning up: containers, image, CAS and temporary files.");
    }
    drop(cleanup);
    rt.block_on(server.shutdown());
    result?;
    println!("Demo complete.");
    Ok(())
}
