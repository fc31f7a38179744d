//! The HTTPS server: own accept loop (tokio-rustls, TLS 1.3 only, optional
//! client certificates), hyper HTTP/1.1 per connection with a per-connection
//! [`ConnInfo`], limits and timeouts, and a local admin socket for backups.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::DistinguishedName;
use sigil_client::tls::{provider, EXPORTER_LABEL};
use sigil_client::wire::{CasInfo, Health};
use sigil_client::{Fingerprint, Identity};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::http::{self, HttpResponse};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::seal::{MasterKey, MasterKeySource};
use crate::state::{CasState, Clock, ConnInfo, SystemClock};
use crate::store::{RedbStore, SessionStore, StoreConfig};
use crate::CasError;

/// File name of the store in the data directory.
pub const STORE_FILE: &str = "store.redb";
/// File name of the admin socket in the data directory.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// File the CAS writes its address and fingerprint to.
pub const INFO_FILE: &str = "cas.json";
/// The CAS certificate (public), for convenience.
pub const CERT_FILE: &str = "cas-cert.pem";
const IDENTITY_META: &str = "identity";

/// Request and connection limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body, all routes.
    pub max_body_bytes: usize,
    /// Concurrent connections; more are closed at once.
    pub max_connections: usize,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Deadline to receive a request's headers (also bounds idle keep-alive).
    pub header_timeout: Duration,
    /// Deadline to receive a request's body.
    pub body_timeout: Duration,
    /// `/v1/attest` tokens per second per client IP.
    pub attest_rate_per_sec: f64,
    /// `/v1/attest` burst per client IP.
    pub attest_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            attest_rate_per_sec: 5.0,
            attest_burst: 20,
        }
    }
}

/// How to run a CAS.
#[derive(Clone)]
pub struct Config {
    /// Data directory (store, identity, `cas.json`, default master key).
    pub data_dir: PathBuf,
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Master key source; `None`: `SIGIL_CAS_MASTER_KEY` or `DATA_DIR/master.key`.
    pub master_key: Option<MasterKeySource>,
    /// Limits.
    pub limits: Limits,
    /// Who may read the audit log (`None`: any authenticated client).
    pub audit_readers: Option<Vec<Fingerprint>>,
    /// Who may create top-level sessions (`None`: any authenticated
    /// client, which the CAS warns about at start).
    pub session_creators: Option<Vec<Fingerprint>>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Serve `DATA_DIR/admin.sock` (backups while running).
    pub admin_socket: bool,
    /// Collateral sources of the attestation verifiers; unset fields fall
    /// back to environment variables.
    pub verifiers: crate::attest_api::VerifierConfig,
    /// Where sessions, secrets and the audit log live (default: redb in
    /// the data directory).
    pub store: StoreConfig,
}

impl Config {
    /// Defaults for a data dir and address.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Config {
        Config {
            data_dir: data_dir.into(),
            listen,
            master_key: None,
            limits: Limits::default(),
            audit_readers: None,
            session_creators: None,
            clock: Arc::new(SystemClock),
            admin_socket: true,
            verifiers: Default::default(),
            store: StoreConfig::Redb,
        }
    }
}

/// A running CAS.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The CAS fingerprint (SPKI SHA-256 of its certificate).
    pub fingerprint: Fingerprint,
    /// Shared state (tests and the demo may inspect it).
    pub state: Arc<CasState>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    admin_path: Option<PathBuf>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl RunningServer {
    /// Stops accepting, lets open requests finish, and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(p) = self.admin_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Entry point.
#[derive(Debug)]
pub struct Server;

/// Loads the CAS identity from the store, generating it on first start.
/// The private key is sealed under the master key in the store's meta table
/// (so backups carry it); `DATA_DIR/cas-cert.pem` is a public copy.
fn load_identity(store: &dyn SessionStore, key: &MasterKey) -> Result<Identity, CasError> {
    let stored = match store.meta(IDENTITY_META)? {
        Some(b) => b,
        None => {
            let id = Identity::generate("sigil-cas", &[])
                .map_err(|e| CasError::Internal(e.to_string()))?;
            let mut plain = zeroize::Zeroizing::new(Vec::new());
            plain.extend_from_slice(&(id.key_pkcs8_der().len() as u32).to_be_bytes());
            plain.extend_from_slice(id.key_pkcs8_der());
            plain.extend_from_slice(id.cert_der());
            let sealed = key.seal(&[b"cas-identity"], &plain)?;
            store.meta_insert_if_absent(IDENTITY_META, &sealed)?
        }
    };
    let plain = key.open(&[b"cas-identity"], &stored)?;
    let bad = || CasError::Integrity("the stored CAS identity is malformed".into());
    if plain.len() < 4 {
        return Err(bad());
    }
    let n = u32::from_be_bytes([plain[0], plain[1], plain[2], plain[3]]) as usize;
    if plain.len() < 4 + n {
        return Err(bad());
    }
    Identity::from_der(plain[4..4 + n].to_vec(), plain[4 + n..].to_vec())
        .map_err(|e| CasError::Integrity(format!("the stored CAS identity is unusable: {e}")))
}

/// Accepts any client certificate: the SPKI fingerprint is the identity
/// and access policies decide. The handshake signature is still verified,
/// so a client must hold the key of the certificate it presents.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Fingerprint::of_cert_der(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ClientCertVerified::assertion())
    }

    sigil_client::provider_signature_checks!(provider);
}

fn tls_config(id: &Identity) -> Result<rustls::ServerConfig, CasError> {
    let p = provider();
    let mut cfg = rustls::ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CasError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(AnyClientCert { provider: p }))
        .with_single_cert(id.rustls_chain(), id.rustls_key())
        .map_err(|e| CasError::Config(format!("TLS identity: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn create_private_dir(d: &Path) -> Result<(), CasError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(|e| CasError::Config(format!("cannot create {}: {e}", d.display())))
}

/// Opens the store of a data directory with the master key (creating both
/// if new) and checks the audit log.
pub fn open_data_dir(
    data_dir: &Path,
    key_src: Option<&MasterKeySource>,
    create: bool,
) -> Result<(Arc<RedbStore>, Arc<MasterKey>), CasError> {
    if create {
        create_private_dir(data_dir)?;
    }
    let src = key_src
        .cloned()
        .unwrap_or_else(|| MasterKeySource::resolve(None, data_dir));
    let key = Arc::new(MasterKey::load(&src, create)?);
    let store = Arc::new(RedbStore::open(
        &data_dir.join(STORE_FILE),
        Some(key.clone()),
    )?);
    crate::store::verify_audit_exclusive(store.as_ref(), Some(&key)).map_err(|e| {
        CasError::Integrity(format!(
            "{e}; refusing to start on a tampered store (restore a backup)"
        ))
    })?;
    Ok((store, key))
}

/// Opens the configured store with the master key and checks its audit log
/// (the redb file of the data directory, or the shared PostgreSQL database).
pub fn open_store(
    data_dir: &Path,
    key_src: Option<&MasterKeySource>,
    store: &StoreConfig,
) -> Result<(Arc<dyn SessionStore>, Arc<MasterKey>), CasError> {
    match store {
        StoreConfig::Redb => {
            let (s, k) = open_data_dir(data_dir, key_src, true)?;
            Ok((s, k))
        }
        StoreConfig::Postgres(opts) => open_postgres(data_dir, key_src, opts),
    }
}

#[cfg(feature = "postgres")]
fn open_postgres(
    data_dir: &Path,
    key_src: Option<&MasterKeySource>,
    opts: &crate::store::PostgresOptions,
) -> Result<(Arc<dyn SessionStore>, Arc<MasterKey>), CasError> {
    create_private_dir(data_dir)?;
    let src = key_src
        .cloned()
        .unwrap_or_else(|| MasterKeySource::resolve(None, data_dir));
    // Never made up here: every replica must use the same key.
    let key = Arc::new(MasterKey::load(&src, false).map_err(|e| {
        let m = match e {
            CasError::Config(m) => m,
            e => e.to_string(),
        };
        CasError::Config(format!(
            "{m}; a PostgreSQL store is never given a new key: every replica needs the same master key \
             (64 hex digits, e.g. `openssl rand -hex 32` once)"
        ))
    })?);
    let store = crate::store::PostgresStore::connect(opts, Some(key.clone()))?;
    store
        .verify_audit_snapshot(Some(&key))
        .map_err(|e| match e {
            CasError::Integrity(m) if m.contains("MAC") => CasError::Integrity(format!(
                "{m}; either the master key is not the one this database was created with, or the log was rewritten: refusing to start on a tampered store"
            )),
            e => CasError::Integrity(format!(
                "{e}; refusing to start on a tampered store (restore a backup)"
            )),
        })?;
    tracing::info!("store: PostgreSQL {}", store.target());
    Ok((Arc::new(store), key))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(
    _data_dir: &Path,
    _key_src: Option<&MasterKeySource>,
    _opts: &crate::store::PostgresOptions,
) -> Result<(Arc<dyn SessionStore>, Arc<MasterKey>), CasError> {
    Err(CasError::Config(
        "this build has no PostgreSQL store (cargo feature `postgres` of sigil-cas)".into(),
    ))
}

impl Server {
    /// Starts a CAS: opens (or creates) the data directory, loads or makes
    /// its identity, binds, writes `cas.json`, and serves until
    /// [`RunningServer::shutdown`].
    pub async fn start(config: Config) -> Result<RunningServer, CasError> {
        // Verifier configuration first: a bad one creates nothing.
        let vcfg = config.verifiers.clone().with_env_fallbacks();
        let verifiers = Arc::new(vcfg.build()?);
        tracing::info!("attestation: {}", vcfg.describe());
        let dd = config.data_dir.clone();
        let ks = config.master_key.clone();
        let sc = config.store.clone();
        // Store calls block (fsync, or a database round trip): off the async threads.
        let (store, key, identity) = tokio::task::spawn_blocking(move || {
            let (store, key) = open_store(&dd, ks.as_ref(), &sc)?;
            let identity = load_identity(store.as_ref(), &key)?;
            Ok::<_, CasError>((store, key, identity))
        })
        .await
        .map_err(|e| CasError::Internal(e.to_string()))??;
        let fingerprint = identity.fingerprint();
        std::fs::write(config.data_dir.join(CERT_FILE), identity.cert_pem())
            .map_err(|e| CasError::Config(format!("cannot write {CERT_FILE}: {e}")))?;
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(&identity)?));
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| CasError::Config(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CasError::Config(e.to_string()))?;
        let metrics = Metrics::default();
        metrics.describe(
            "sigil_cas_http_requests_total",
            "HTTP requests by route and status.",
        );
        metrics.describe(
            "sigil_cas_session_ops_total",
            "Session operations by result.",
        );
        metrics.describe("sigil_cas_connections_total", "Accepted TLS connections.");
        metrics.describe(
            "sigil_cas_connections_refused_total",
            "Connections refused (limit, handshake).",
        );
        let state = Arc::new(CasState {
            store: store.clone(),
            key,
            metrics,
            clock: config.clock.clone(),
            attest_limiter: RateLimiter::new(
                config.limits.attest_rate_per_sec,
                config.limits.attest_burst,
            ),
            fingerprint,
            audit_readers: config.audit_readers.clone(),
            session_creators: config.session_creators.clone(),
            verifiers,
        });
        state.append_audit(
            "cas",
            "cas.start",
            None,
            serde_json::json!({ "listen": addr.to_string(), "fingerprint": fingerprint.to_string() }),
        )?;
        let info = CasInfo {
            listen: addr.to_string(),
            fingerprint: fingerprint.to_string(),
        };
        let info_json = serde_json::to_vec_pretty(&info).unwrap_or_default();
        let info_path = config.data_dir.join(INFO_FILE);
        let tmp = config.data_dir.join("cas.json.tmp");
        std::fs::write(&tmp, info_json)
            .and_then(|_| std::fs::rename(&tmp, &info_path))
            .map_err(|e| CasError::Config(format!("cannot write {}: {e}", info_path.display())))?;

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            listener,
            acceptor,
            state.clone(),
            config.limits.clone(),
            stop_rx.clone(),
        ))];
        let mut admin_path = None;
        if config.admin_socket {
            let p = config.data_dir.join(ADMIN_SOCKET);
            let _ = std::fs::remove_file(&p);
            match tokio::net::UnixListener::bind(&p) {
                Ok(l) => {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
                    tasks.push(tokio::spawn(admin_loop(l, store, stop_rx)));
                    admin_path = Some(p);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket unavailable; backups need the CAS stopped")
                }
            }
        }
        tracing::info!(%addr, %fingerprint, "CAS listening");
        match &config.session_creators {
            None => tracing::warn!(
                "anyone with a client certificate can create top-level sessions; \
                 restrict this with --session-creator FINGERPRINT"
            ),
            Some(c) => tracing::info!("{} fingerprint(s) may create top-level sessions", c.len()),
        }
        Ok(RunningServer {
            addr,
            fingerprint,
            state,
            stop,
            tasks,
            admin_path,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<CasState>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (tcp, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    state.metrics.inc("sigil_cas_connections_refused_total", &[("reason", "limit")]);
                    drop(tcp);
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (a, s, l, st) = (acceptor.clone(), state.clone(), limits.clone(), stop.clone());
                conns.spawn(async move {
                    serve_connection(a, tcp, peer, s, l, st).await;
                    drop(permit);
                });
            }
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // Let open connections finish their requests (they got the stop signal).
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<CasState>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            state.metrics.inc(
                "sigil_cas_connections_refused_total",
                &[("reason", "handshake")],
            );
            return;
        }
        Err(_) => {
            state.metrics.inc(
                "sigil_cas_connections_refused_total",
                &[("reason", "handshake_timeout")],
            );
            return;
        }
    };
    state.metrics.inc("sigil_cas_connections_total", &[]);
    let conn = tls.get_ref().1;
    let client = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| Fingerprint::of_cert_der(c).ok());
    let exporter = conn
        .export_keying_material([0u8; 64], EXPORTER_LABEL, None)
        .ok();
    let info = ConnInfo {
        peer,
        client,
        exporter,
    };
    let header_timeout = limits.header_timeout;
    let svc = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        let limits = limits.clone();
        async move { Ok::<_, Infallible>(route(state, info, limits, req).await) }
    });
    let http = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(http);
    tokio::select! {
        _ = http.as_mut() => {}
        _ = stop.changed() => {
            http.as_mut().graceful_shutdown();
            let _ = http.await;
        }
    }
}

fn route_label(method: &Method, path: &str) -> &'static str {
    match (method, path) {
        (_, "/healthz") => "healthz",
        (_, "/metrics") => "metrics",
        (_, "/v1/attest") => "attest",
        (_, "/v1/sessions") => "sessions",
        (_, p) if p.starts_with("/v1/sessions/") => "session",
        (_, p) if p.starts_with("/v1/audit") => "audit",
        _ => "other",
    }
}

async fn route(
    state: Arc<CasState>,
    info: ConnInfo,
    limits: Limits,
    req: Request<Incoming>,
) -> HttpResponse {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let label = route_label(&method, &path);
    let resp = route_inner(&state, info, &limits, req, &method, &path, query).await;
    let status = resp.status();
    state.metrics.inc(
        "sigil_cas_http_requests_total",
        &[("route", label), ("status", status.as_str())],
    );
    tracing::info!(
        peer = %info.peer,
        client = %info.client.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        %method,
        route = label,
        status = status.as_u16(),
        "request"
    );
    resp
}

async fn route_inner(
    state: &Arc<CasState>,
    info: ConnInfo,
    limits: &Limits,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    query: Option<String>,
) -> HttpResponse {
    // The per-address attestation limit comes before the body: a limited
    // client must not make the server read (and buffer) its request.
    if method == Method::POST && path == "/v1/attest" && !state.attest_limiter.allow(info.peer.ip())
    {
        return http::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many attestation requests from this address; retry later",
        );
    }
    // Body next, with the global size limit and a deadline.
    let collected = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(req.into_body(), limits.max_body_bytes).collect(),
    )
    .await;
    let body: Bytes = match collected {
        Err(_) => return http::error(StatusCode::REQUEST_TIMEOUT, "request body timed out"),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return http::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body exceeds {} bytes", limits.max_body_bytes),
                );
            }
            return http::error(StatusCode::BAD_REQUEST, format!("cannot read body: {e}"));
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    match (method, path) {
        (&Method::GET, "/healthz") => http::json(
            StatusCode::OK,
            &Health {
                status: "ok".into(),
                fingerprint: state.fingerprint.to_string(),
            },
        ),
        (&Method::GET, "/metrics") => {
            let audit_len = state.store.audit_len().unwrap_or(0) as f64;
            let text = state.metrics.render(&[(
                "sigil_cas_audit_entries",
                "Entries in the audit log.",
                audit_len,
            )]);
            http::with_type(StatusCode::OK, "text/plain; version=0.0.4", text.into())
        }
        (&Method::POST, "/v1/attest") => {
            let st = state.clone();
            blocking(move || crate::attest_api::handle(&st, &info, body)).await
        }
        (_, p) if p.starts_with("/v1/") => {
            let st = state.clone();
            let (m, p) = (method.clone(), p.to_string());
            blocking(move || crate::api::handle(&st, &info, &m, &p, query.as_deref(), body)).await
        }
        _ => http::error(StatusCode::NOT_FOUND, format!("no route {method} {path}")),
    }
}

/// Runs store-touching work off the async threads (commits fsync).
async fn blocking(f: impl FnOnce() -> HttpResponse + Send + 'static) -> HttpResponse {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "handler panicked");
            http::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Admin protocol (local socket, one JSON line each way):
/// `{"op":"backup","out":"/abs/path"}` → `{"ok":true,"stats":{…}}` or
/// `{"ok":false,"error":"…"}`. Access = file permissions of the socket (0600).
async fn admin_loop(
    listener: tokio::net::UnixListener,
    store: Arc<dyn SessionStore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((sock, _)) = r else { continue };
                let store = store.clone();
                tokio::spawn(async move {
                    let (rd, mut wr) = sock.into_split();
                    let mut line = String::new();
                    let mut rd = BufReader::new(tokio::io::AsyncReadExt::take(rd, 8192));
                    let reply = match rd.read_line(&mut line).await {
                        Ok(_) => admin_request(&line, store).await,
                        Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
                    };
                    let mut out = reply.to_string();
                    out.push('\n');
                    let _ = wr.write_all(out.as_bytes()).await;
                });
            }
            _ = stop.changed() => break,
        }
    }
}

async fn admin_request(line: &str, store: Arc<dyn SessionStore>) -> serde_json::Value {
    #[derive(serde::Deserialize)]
    struct Req {
        op: String,
        out: Option<PathBuf>,
    }
    let req: Req = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return serde_json::json!({"ok": false, "error": format!("bad request: {e}")}),
    };
    match (req.op.as_str(), req.out) {
        ("backup", Some(out)) => {
            let r = tokio::task::spawn_blocking(move || store.backup_to(&out)).await;
            match r {
                Ok(Ok(stats)) => serde_json::json!({"ok": true, "stats": stats}),
                Ok(Err(e)) => serde_json::json!({"ok": false, "error": e.to_string()}),
                Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
            }
        }
        _ => {
            serde_json::json!({"ok": false, "error": "unknown op; expected {\"op\":\"backup\",\"out\":PATH}"})
        }
    }
}
