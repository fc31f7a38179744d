//! `sigil cas`: run and maintain the Configuration and Attestation Service.
//!
//! - `sigil cas serve --data-dir D [--listen ADDR]` prints `listening on
//!   ADDR` and `fingerprint sha256:HEX` and writes both to `D/cas.json`.
//! - `sigil cas serve --postgres-url URL ...`: the store in a PostgreSQL
//!   database shared by several replicas (docs/cas-store.md).
//! - `sigil cas backup --data-dir D --out FILE` (consistent, while running),
//!   or `--postgres-url URL` for a PostgreSQL store.
//! - `sigil cas restore BACKUP --data-dir NEW`, or `--postgres-url URL`
//!   into an empty PostgreSQL database (the migration path).
//! - `sigil cas trust ADDR --fingerprint F` remembers a CAS in `cas.toml`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use sigil_client::config::{config_dir, default_identity_dir, CasTrust};
use sigil_client::{BlockingCasClient, Fingerprint, Identity};

subcommand_args! {
    /// Arguments of `sigil cas`.
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Run the CAS (HTTPS) on a data directory.
    Serve(Box<ServeArgs>),
    /// Write a consistent copy of the store to a new file (works while the CAS runs).
    Backup(BackupArgs),
    /// Restore a backup into a new data directory, or into an empty PostgreSQL database (--postgres-url).
    Restore(RestoreArgs),
    /// Remember a CAS address and fingerprint for the other commands.
    Trust(TrustArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Data directory (store, identity, cas.json); created if missing.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Master key file (64 hex digits, mode 0600; created if missing).
    /// Default: $SIGIL_CAS_MASTER_KEY, else DATA_DIR/master.key.
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Fingerprint allowed to read the audit log (repeat; default: any client).
    #[arg(long)]
    audit_reader: Vec<Fingerprint>,
    /// Fingerprint allowed to create top-level sessions (repeat; default:
    /// any client with a certificate). Sessions inside a namespace follow
    /// the parent's create_sessions policy.
    #[arg(long)]
    session_creator: Vec<Fingerprint>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Most concurrent connections.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// `/v1/attest` requests per second allowed per client IP (token bucket
    /// refill rate; fractions allowed, e.g. 0.5).
    #[arg(long, default_value_t = 5.0, value_parser = positive_rate)]
    attest_rate: f64,
    /// `/v1/attest` burst per client IP (bucket size): requests allowed at
    /// once before the rate applies.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    attest_burst: u32,
    /// SGX/TDX collateral from this PCCS-compatible URL (Intel PCS or a
    /// local PCCS). Default: $SIGIL_PCCS_URL, else Intel's PCS.
    #[arg(long, conflicts_with = "collateral_dir")]
    pccs_url: Option<String>,
    /// SGX/TDX collateral from a directory of JSON files instead of a PCCS
    /// (air-gapped). Default: $SIGIL_COLLATERAL_DIR.
    #[arg(long)]
    collateral_dir: Option<PathBuf>,
    /// Cache directory for collateral fetched from the PCCS.
    /// Default: $SIGIL_COLLATERAL_CACHE.
    #[arg(long)]
    collateral_cache: Option<PathBuf>,
    /// The store in a PostgreSQL database instead of DATA_DIR/store.redb,
    /// so several CAS replicas can share it. All replicas need the same
    /// master key (--master-key-file or SIGIL_CAS_MASTER_KEY), which is then
    /// never created.
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Most connections to PostgreSQL per CAS process.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    postgres_pool_size: u32,
    /// SEV-SNP VCEKs (`<chip_id hex>_<reported_tcb hex>.der`) for evidence
    /// that carries none; fetched VCEKs are kept there. Default: $SIGIL_SNP_CERT_DIR.
    #[arg(long)]
    snp_cert_dir: Option<PathBuf>,
    /// Fetch missing SEV-SNP VCEKs from this KDS-compatible URL (AMD's is
    /// https://kdsintf.amd.com). Default: $SIGIL_SNP_KDS_URL, else no fetching.
    #[arg(long)]
    snp_kds_url: Option<String>,
}

/// A finite rate > 0 and at most 1e6 per second.
fn positive_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number (requests per second, e.g. 5 or 0.5)"))?;
    if v.is_finite() && v > 0.0 && v <= 1e6 {
        Ok(v)
    } else {
        Err(format!(
            "`{s}` is out of range: the rate must be > 0 and at most 1000000 per second"
        ))
    }
}

/// A PostgreSQL URL: a secret (it may carry the password), never printed.
#[derive(Clone)]
pub(crate) struct SecretUrl(String);

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretUrl(s.to_string()))
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How to reach a PostgreSQL store (`serve`, `backup`, `restore`, `sigil
/// audit verify`).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PostgresArgs {
    /// PostgreSQL store: postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=verify-full].
    /// sslmode: verify-full (default), verify-ca, require or disable.
    /// Prefer the environment variable: a URL given as a flag shows in `ps`.
    #[arg(long, env = "SIGIL_CAS_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<SecretUrl>,
    /// PEM file of the CA certificate(s) the PostgreSQL server's certificate
    /// must chain to (default: the Mozilla roots).
    #[arg(long, env = "SIGIL_CAS_POSTGRES_CA_FILE")]
    postgres_ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) to log in to PostgreSQL with (pg_hba
    /// `cert`); needs --postgres-client-key.
    #[arg(
        long,
        env = "SIGIL_CAS_POSTGRES_CLIENT_CERT",
        requires = "postgres_client_key"
    )]
    postgres_client_cert: Option<PathBuf>,
    /// PEM private key of --postgres-client-cert: mode 0600 and owned by
    /// this user (or 0640 at most and owned by root, as in a Kubernetes
    /// Secret volume).
    #[arg(
        long,
        env = "SIGIL_CAS_POSTGRES_CLIENT_KEY",
        requires = "postgres_client_cert"
    )]
    postgres_client_key: Option<PathBuf>,
}

impl PostgresArgs {
    /// The store options, if a URL was given.
    pub(crate) fn options(&self, pool_size: u32) -> Option<sigil_cas::PostgresOptions> {
        let url = self.postgres_url.as_ref()?;
        let mut o = sigil_cas::PostgresOptions::new(url.0.clone());
        o.ca_file = self.postgres_ca_file.clone();
        o.client_cert = self.postgres_client_cert.clone();
        o.client_key = self.postgres_client_key.clone();
        o.pool_size = pool_size as usize;
        Some(o)
    }
}

#[derive(clap::Args, Debug)]
struct BackupArgs {
    /// Data directory of the CAS (asks the running CAS, whatever its store).
    #[arg(long, required_unless_present = "postgres_url")]
    data_dir: Option<PathBuf>,
    /// New file to write the backup to.
    #[arg(long)]
    out: PathBuf,
    /// Without --data-dir: back up this PostgreSQL store directly (one
    /// snapshot while the replicas keep running); same options as for serve.
    #[command(flatten)]
    postgres: PostgresArgs,
}

#[derive(clap::Args, Debug)]
struct RestoreArgs {
    /// Backup file made by `sigil cas backup` (from either store).
    #[arg(
        value_name = "BACKUP",
        required_unless_present = "backup",
        conflicts_with = "backup"
    )]
    backup_file: Option<PathBuf>,
    /// The backup file, as a flag.
    #[arg(long)]
    backup: Option<PathBuf>,
    /// New data directory (restores into the embedded store).
    #[arg(long, required_unless_present = "postgres_url")]
    data_dir: Option<PathBuf>,
    /// Master key the backup was made with (default: $SIGIL_CAS_MASTER_KEY,
    /// else DATA_DIR/master.key; into PostgreSQL, this option or the
    /// variable is required).
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Without --data-dir: restore into this PostgreSQL database, which
    /// must hold no CAS data (the tables are created); one transaction, so
    /// a refused or failed restore writes nothing. The migration path from
    /// the embedded store to PostgreSQL.
    #[command(flatten)]
    postgres: PostgresArgs,
}

#[derive(clap::Args, Debug)]
struct TrustArgs {
    /// CAS address, HOST:PORT.
    address: String,
    /// The CAS fingerprint as printed by `sigil cas serve` (sha256:HEX).
    #[arg(long)]
    fingerprint: Fingerprint,
}

/// How the client commands find and authenticate to the CAS.
#[derive(clap::Args, Debug, Clone)]
pub struct CasArgs {
    /// CAS address HOST:PORT (default: from `sigil cas trust`).
    #[arg(long, env = "SIGIL_CAS")]
    pub cas: Option<String>,
    /// Pinned CAS fingerprint (default: from `sigil cas trust`).
    #[arg(long, env = "SIGIL_CAS_FINGERPRINT")]
    pub cas_fingerprint: Option<Fingerprint>,
    /// Identity directory (default: CONFIG/identity).
    #[arg(long)]
    pub identity: Option<PathBuf>,
}

impl CasArgs {
    /// Connects with the identity (which must exist).
    pub fn connect(&self) -> Result<BlockingCasClient> {
        let trust = CasTrust::load(&config_dir()?)?;
        let addr = match (&self.cas, &trust) {
            (Some(a), _) => a.clone(),
            (None, Some(t)) => t.address.clone(),
            (None, None) => bail!(
                "no CAS given: pass --cas HOST:PORT --cas-fingerprint sha256:HEX, or run `sigil cas trust HOST:PORT --fingerprint sha256:HEX` once"
            ),
        };
        let pin = match (&self.cas_fingerprint, &trust) {
            (Some(f), _) => *f,
            (None, Some(t)) if self.cas.is_none() || self.cas.as_deref() == Some(&t.address) => {
                t.fingerprint
            }
            _ => bail!("no fingerprint for CAS {addr}: pass --cas-fingerprint sha256:HEX"),
        };
        let dir = match &self.identity {
            Some(d) => d.clone(),
            None => default_identity_dir()?,
        };
        let id = Identity::load(&dir).map_err(|e| {
            anyhow!("{e}; create one with `sigil identity create` or pass --identity DIR")
        })?;
        Ok(BlockingCasClient::connect(&addr, pin, Some(&id))?)
    }
}

/// Runs `sigil cas`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Serve(a) => serve(*a),
        Command::Backup(a) => {
            let stats = match (&a.data_dir, a.postgres.options(1)) {
                (Some(d), _) => sigil_cas::backup(d, &a.out)?,
                (None, Some(o)) => sigil_cas::backup_postgres(&o, &a.out)?,
                (None, None) => bail!("give --data-dir DIR or --postgres-url URL"),
            };
            println!(
                "backup written to {}: {} sessions, {} secrets (sealed), {} audit entries; keep the master key separately",
                a.out.display(),
                stats.sessions,
                stats.secrets,
                stats.audit_entries
            );
            Ok(())
        }
        Command::Restore(a) => restore(a),
        Command::Trust(a) => {
            sigil_client::client::parse_address(&a.address)?;
            let dir = config_dir()?;
            CasTrust {
                address: a.address.clone(),
                fingerprint: a.fingerprint,
            }
            .save(&dir)?;
            println!(
                "trusting CAS {} with fingerprint {}",
                a.address, a.fingerprint
            );
            Ok(())
        }
    }
}

fn restore(a: RestoreArgs) -> Result<()> {
    let Some(backup) = a.backup_file.or(a.backup) else {
        bail!("give the backup file: sigil cas restore BACKUP ...");
    };
    match (&a.data_dir, a.postgres.options(1)) {
        (Some(_), Some(_)) => bail!(
            "give either --data-dir (the embedded store) or --postgres-url (PostgreSQL), not both (is SIGIL_CAS_POSTGRES_URL set in the environment?)"
        ),
        (Some(d), None) => {
            let key = a.master_key_file.map(sigil_cas::MasterKeySource::File);
            let r = sigil_cas::restore(&backup, d, key.as_ref())?;
            println!(
                "restored into {}: audit log verified ({} entries, head {})",
                d.display(),
                r.entries,
                r.head
            );
        }
        (None, Some(o)) => {
            let key = match a.master_key_file {
                Some(f) => sigil_cas::MasterKeySource::File(f),
                None => match sigil_cas::seal::take_master_key_env() {
                    Some(h) => sigil_cas::MasterKeySource::Hex(h),
                    None => bail!(
                        "a restore into PostgreSQL needs the master key the backup was made with: --master-key-file FILE or SIGIL_CAS_MASTER_KEY"
                    ),
                },
            };
            let r = sigil_cas::store::restore_postgres(&backup, &o, &key)?;
            println!(
                "restored into PostgreSQL {}: {} sessions, {} secrets (sealed), {} audit entries verified (head {}); start the CAS replicas on it with the same master key",
                o.redacted_url(),
                r.stats.sessions,
                r.stats.secrets,
                r.audit.entries,
                r.audit.head
            );
        }
        (None, None) => bail!("give --data-dir DIR or --postgres-url URL"),
    }
    Ok(())
}

fn serve(a: ServeArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if a.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    // Secrets given through the environment are taken out of it before any
    // other thread starts (the scrub writes to the environment block).
    let master_key = sigil_cas::MasterKeySource::resolve(a.master_key_file.clone(), &a.data_dir);
    // clap has already read the URL into `a`.
    sigil_cas::scrub_env("SIGIL_CAS_POSTGRES_URL");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut cfg = sigil_cas::Config::new(&a.data_dir, a.listen);
        cfg.master_key = Some(master_key);
        cfg.limits.max_body_bytes = a.max_body_bytes;
        cfg.limits.max_connections = a.max_connections.max(1);
        cfg.limits.attest_rate_per_sec = a.attest_rate;
        cfg.limits.attest_burst = a.attest_burst;
        cfg.verifiers = sigil_cas::attest_api::VerifierConfig {
            pccs_url: a.pccs_url.clone(),
            collateral_dir: a.collateral_dir.clone(),
            collateral_cache: a.collateral_cache.clone(),
            snp_cert_dir: a.snp_cert_dir.clone(),
            snp_kds_url: a.snp_kds_url.clone(),
        };
        if !a.audit_reader.is_empty() {
            cfg.audit_readers = Some(a.audit_reader.clone());
        }
        if !a.session_creator.is_empty() {
            cfg.session_creators = Some(a.session_creator.clone());
        }
        if let Some(o) = a.postgres.options(a.postgres_pool_size) {
            cfg.store = sigil_cas::StoreConfig::Postgres(o);
        }
        let server = sigil_cas::Server::start(cfg).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {}", server.addr)?;
            writeln!(out, "fingerprint {}", server.fingerprint)?;
            out.flush()?;
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}
