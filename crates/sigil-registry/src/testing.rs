//! Test support (feature `testing`): a real registry (Debian's
//! `docker-registry`, the CNCF distribution server) on loopback, optionally
//! with TLS from a fresh self-signed CA and htpasswd basic auth.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry binary shipped by Debian's `docker-registry` package.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A registry server process, killed on drop.
pub struct LocalRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Temporary directory: config, storage, certificates.
    pub dir: tempfile::TempDir,
    /// CA certificate (PEM file) when serving TLS.
    pub ca_file: Option<PathBuf>,
}

/// How to run the registry.
#[derive(Default, Clone)]
pub struct RegistryConfig {
    /// Serve HTTPS with a certificate for 127.0.0.1 signed by a fresh CA.
    pub tls: bool,
    /// Require basic auth for this user and password (htpasswd, bcrypt).
    pub user: Option<(String, String)>,
}

/// Whether the registry binary is installed. Tests print a loud message and
/// return when it is not (scripts/setup.sh installs it, so CI never skips).
pub fn available() -> bool {
    if Path::new(REGISTRY_BIN).is_file() {
        return true;
    }
    eprintln!(
        "\n\n*** SKIPPED: {REGISTRY_BIN} is missing; run scripts/setup.sh (apt-get install docker-registry apache2-utils) ***\n\n"
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// A bcrypt htpasswd line, made with `htpasswd` (apache2-utils) or python3's bcrypt.
fn htpasswd_line(user: &str, pass: &str) -> String {
    if let Ok(o) = Command::new("htpasswd").args(["-nbB", user, pass]).output() {
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).trim().to_string();
        }
    }
    let o = Command::new("python3")
        .args([
            "-c",
            "import bcrypt,sys;print(sys.argv[1]+':'+bcrypt.hashpw(sys.argv[2].encode(),bcrypt.gensalt()).decode())",
            user,
            pass,
        ])
        .output()
        .expect("run python3");
    assert!(
        o.status.success(),
        "neither htpasswd (apache2-utils) nor python3 bcrypt is available: run scripts/setup.sh"
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn write_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sigil-registry test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let ca_file = dir.join("ca.pem");
    let cert_file = dir.join("server.pem");
    let key_file = dir.join("server.key");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    std::fs::write(&cert_file, cert.pem()).expect("write cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("write key");
    (ca_file, cert_file, key_file)
}

impl LocalRegistry {
    /// Starts a registry and waits until it accepts connections.
    pub fn start(cfg: &RegistryConfig) -> LocalRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: sigil-test-secret\n",
            storage.display()
        );
        let mut ca_file = None;
        if cfg.tls {
            let (ca, cert, key) = write_tls(dir.path());
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca_file = Some(ca);
        }
        if let Some((u, p)) = &cfg.user {
            let hp = dir.path().join("htpasswd");
            let mut f = std::fs::File::create(&hp).expect("htpasswd file");
            writeln!(f, "{}", htpasswd_line(u, p)).expect("write htpasswd");
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: sigil-test\n    path: {}\n",
                hp.display()
            ));
        }
        let conf = dir.path().join("config.yml");
        std::fs::write(&conf, yaml).expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = LocalRegistry {
            child,
            host,
            dir,
            ca_file,
        };
        let addr: SocketAddr = reg.host.parse().expect("addr");
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "docker-registry did not start: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry stores the bytes of blob `digest` (`sha256:...`).
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
