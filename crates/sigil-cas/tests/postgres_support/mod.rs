//! A private PostgreSQL cluster for tests: `initdb` into a temporary
//! directory, TLS with a CA made here, a free loopback port and a unix
//! socket in the directory; stopped (`pg_ctl stop`) and removed on drop.
//! As root, the server runs as the `postgres` system user (`runuser`),
//! since `initdb` refuses root.
//!
//! Without PostgreSQL's server binaries the tests fail under CI (`CI` set)
//! and are skipped, saying so, elsewhere. `SIGIL_PG_BINDIR` names the
//! directory of `initdb`/`pg_ctl`; otherwise `PATH`, then
//! `/usr/lib/postgresql/*/bin` (where Debian's `postgresql` puts them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The password of the `sigil` role the CAS logs in as.
pub const PASSWORD: &str = "test-Passw0rd-not-secret";

/// A role that logs in with a client certificate only (pg_hba `cert`
/// over TLS); it has no password.
pub const CERT_ROLE: &str = "sigil_cert";

fn find_bin_dir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("SIGIL_PG_BINDIR") {
        let d = PathBuf::from(d);
        return has(&d).then_some(d);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has(&d) && d.join("postgres").is_file() {
                return Some(d);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let d = e.path().join("bin");
            has(&d).then_some((v, d))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// The server binaries, or `None` after saying why the test is skipped.
/// Under CI a missing PostgreSQL is a failure.
pub fn bin_dir() -> Option<PathBuf> {
    let found = find_bin_dir();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL server binaries (initdb, pg_ctl) are required in CI: install the `postgresql` package (scripts/setup.sh) or set SIGIL_PG_BINDIR"
        );
        eprintln!(
            "SKIPPED: PostgreSQL server binaries not found (install `postgresql` or set SIGIL_PG_BINDIR)"
        );
    }
    found
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A running cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The port on 127.0.0.1 (also on 127.0.0.2: the certificate names
    /// 127.0.0.1 and `localhost` only).
    pub port: u16,
    /// The CA that signed the server certificate (PEM).
    pub ca_file: PathBuf,
    /// Another CA (PEM) that signed nothing but [`Self::rogue_client`].
    pub other_ca_file: PathBuf,
    /// Certificate and key (PEM, key mode 0600, owned by this user) for
    /// [`CERT_ROLE`], from the CA the server trusts for clients.
    pub client: (PathBuf, PathBuf),
    /// The same name, from the other CA: the server refuses it.
    pub rogue_client: (PathBuf, PathBuf),
    databases: AtomicU32,
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client certificate for `cn`, signed by `ca`, into `dir` (`NAME.crt`,
/// `NAME.key` with mode 0600).
fn write_client(
    dir: &Path,
    name: &str,
    cn: &str,
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, ca, ca_key).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    (c, k)
}

fn write_ca(dir: &Path, name: &str) -> (rcgen::Certificate, rcgen::KeyPair, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let cert = p.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}.crt"));
    std::fs::write(&path, cert.pem()).unwrap();
    (cert, key, path)
}

impl Cluster {
    /// A new cluster, or `None` (skipped) without PostgreSQL.
    pub fn start() -> Option<Cluster> {
        let bin = bin_dir()?;
        Some(Cluster::start_in(bin))
    }

    fn as_server(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's unix socket (`local ... trust`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn start_in(bin: PathBuf) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("sigil-pg-")
            .tempdir()
            .unwrap();
        let mut c = Cluster {
            ca_file: PathBuf::new(),
            other_ca_file: PathBuf::new(),
            client: Default::default(),
            rogue_client: Default::default(),
            dir,
            bin,
            port: 0,
            databases: AtomicU32::new(0),
        };
        let d = c.dir.path().to_path_buf();
        std::fs::create_dir(c.socket_dir()).unwrap();
        // TLS: a CA and a server certificate for 127.0.0.1 and localhost.
        let (ca, ca_key, ca_file) = write_ca(&d, "ca");
        let (other_ca, other_key, other) = write_ca(&d, "other");
        // Client certificates: the server trusts `client-ca` for them.
        let (client_ca, client_ca_key, _) = write_ca(&d, "client-ca");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(d.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(d.join("server.key"), key.serialize_pem()).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        std::fs::write(d.join("pw"), "postgres-superuser-pw\n").unwrap();
        c.ca_file = ca_file;
        c.other_ca_file = other;
        if is_root() {
            run(
                Command::new("chown").args(["-R", "postgres:"]).arg(&d),
                "chown",
            );
        }
        // Written after the chown: the client's files are this user's.
        let clients = d.join("clients");
        std::fs::create_dir(&clients).unwrap();
        c.client = write_client(&clients, "client", CERT_ROLE, &client_ca, &client_ca_key);
        c.rogue_client = write_client(&clients, "rogue", CERT_ROLE, &other_ca, &other_key);
        run(
            c.as_server("initdb")
                .arg("-D")
                .arg(c.data())
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", d.join("pw").display())),
            "initdb",
        );
        // TCP only with TLS and a password, or for CERT_ROLE a client
        // certificate; the unix socket (this test's directory) is the
        // administrator's.
        std::fs::write(
            c.data().join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 hostssl all {CERT_ROLE} 127.0.0.0/8 cert\n\
                 hostssl all all 127.0.0.0/8 scram-sha-256\n\
                 hostnossl all all 127.0.0.0/8 reject\n"
            ),
        )
        .unwrap();
        let mut last = String::new();
        for _ in 0..3 {
            c.port = free_port();
            let conf = format!(
                "listen_addresses = '127.0.0.1,127.0.0.2'\nport = {}\nunix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n\
                 password_encryption = 'scram-sha-256'\nfsync = off\nmax_connections = 60\n",
                c.port,
                c.socket_dir().display(),
                d.join("server.crt").display(),
                d.join("server.key").display(),
                d.join("client-ca.crt").display(),
            );
            std::fs::write(c.data().join("postgresql.auto.conf"), conf).unwrap();
            if is_root() {
                run(
                    Command::new("chown")
                        .args(["-R", "postgres:"])
                        .arg(c.data()),
                    "chown",
                );
            }
            let out = c.pg_ctl(&["start", "-w", "-t", "30"]);
            if out.status.success() {
                c.psql(
                    "postgres",
                    &format!("CREATE ROLE sigil LOGIN PASSWORD '{PASSWORD}'"),
                );
                c.psql("postgres", &format!("CREATE ROLE {CERT_ROLE} LOGIN"));
                return c;
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                std::fs::read_to_string(d.join("log")).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        self.as_server("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Stops the server (fast shutdown) and starts it again.
    pub fn restart(&self) {
        let out = self.pg_ctl(&["restart", "-w", "-t", "30", "-m", "fast"]);
        assert!(
            out.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL as the superuser over the unix socket; returns the rows
    /// (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let psql = if psql.is_file() {
            psql
        } else {
            PathBuf::from("psql")
        };
        run(
            Command::new(psql)
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
                .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql]),
            "psql",
        )
    }

    /// A new database owned by the `sigil` role.
    pub fn new_database(&self) -> String {
        self.new_database_of("sigil")
    }

    /// A new database owned by `role`.
    pub fn new_database_of(&self, role: &str) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("cas{n}");
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {role}"));
        name
    }

    /// Store options for `db` as [`CERT_ROLE`] with the client
    /// certificate `(cert, key)`: no password, verify-full.
    pub fn cert_options(
        &self,
        db: &str,
        client: &(PathBuf, PathBuf),
    ) -> sigil_cas::PostgresOptions {
        let mut o = sigil_cas::PostgresOptions::new(format!(
            "postgres://{CERT_ROLE}@127.0.0.1:{}/{db}",
            self.port
        ));
        o.ca_file = Some(self.ca_file.clone());
        o.client_cert = Some(client.0.clone());
        o.client_key = Some(client.1.clone());
        o
    }

    /// The URL of `db` on `host` (127.0.0.1 by default) with extra query.
    pub fn url_on(&self, host: &str, db: &str, query: &str) -> String {
        format!(
            "postgres://sigil:{PASSWORD}@{host}:{}/{db}{}{query}",
            self.port,
            if query.is_empty() { "" } else { "?" }
        )
    }

    /// The CAS store options for `db`: verify-full against this CA.
    pub fn options(&self, db: &str) -> sigil_cas::PostgresOptions {
        let mut o = sigil_cas::PostgresOptions::new(self.url_on("127.0.0.1", db, ""));
        o.ca_file = Some(self.ca_file.clone());
        o
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
    }
}

/// One cluster shared by the tests of a binary while any of them runs
/// (each test takes its own database); stopped when the last lets go.
pub fn shared() -> Option<Arc<Cluster>> {
    static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
    let mut g = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = g.upgrade() {
        return Some(c);
    }
    let c = Arc::new(Cluster::start()?);
    *g = Arc::downgrade(&c);
    Some(c)
}
