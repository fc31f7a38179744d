//! Async HTTPS client of the CAS: one keep-alive TLS 1.3 connection, server
//! pinned by fingerprint, optional client identity.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
pub use hyper::Method;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::audit::AuditEntry;
use crate::tls::{client_config, EXPORTER_LABEL};
use crate::wire::{AuditPage, ErrorBody, Health, SessionInfo, SessionList, SessionWritten};
use crate::{ClientError, Fingerprint, Identity};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response body accepted (audit pages are the biggest answers).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Entries fetched per audit page.
const AUDIT_PAGE: u64 = 1000;

/// A connection to a CAS.
pub struct CasClient {
    sender: tokio::sync::Mutex<SendRequest<Full<Bytes>>>,
    exporter: [u8; 64],
    authority: String,
    addr: String,
}

impl std::fmt::Debug for CasClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasClient")
            .field("addr", &self.addr)
            .finish()
    }
}

/// A raw answer.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Body bytes.
    pub body: Bytes,
}

/// Splits `https://host:port/…`, `host:port` or `[v6]:port` into host and port.
pub fn parse_address(addr: &str) -> Result<(String, u16), ClientError> {
    let a = addr.trim();
    let a = a.strip_prefix("https://").unwrap_or(a);
    if a.starts_with("http://") {
        return Err(ClientError::BadAddress(format!(
            "`{addr}`: the CAS speaks HTTPS only; use https:// or HOST:PORT"
        )));
    }
    let a = a.split('/').next().unwrap_or(a);
    let (host, port) = a.rsplit_once(':').ok_or_else(|| {
        ClientError::BadAddress(format!("`{addr}`: expected HOST:PORT, e.g. 127.0.0.1:8443"))
    })?;
    let port: u16 = port
        .parse()
        .map_err(|_| ClientError::BadAddress(format!("`{addr}`: port `{port}` is not a number")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(ClientError::BadAddress(format!("`{addr}`: empty host")));
    }
    Ok((host.to_string(), port))
}

/// Percent-encodes a session name for a URL path (keeps `/` as separator).
pub fn encode_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl CasClient {
    /// Connects to the CAS at `addr`, accepting only a server whose
    /// certificate's SPKI hashes to `pin`, and authenticating with
    /// `identity` if given.
    pub async fn connect(
        addr: &str,
        pin: Fingerprint,
        identity: Option<&Identity>,
    ) -> Result<CasClient, ClientError> {
        let (host, port) = parse_address(addr)?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| ClientError::Connect(format!("{addr}: connection timed out")))?
            .map_err(|e| ClientError::Connect(format!("{addr}: {e} (is the CAS running?)")))?;
        let _ = tcp.set_nodelay(true);
        let connector = TlsConnector::from(Arc::new(client_config(pin, identity)?));
        // The name is not checked (the pin is the trust) but rustls needs one.
        let sn = ServerName::try_from(host.clone())
            .or_else(|_| ServerName::try_from("sigil-cas".to_string()))
            .map_err(|e| ClientError::BadAddress(e.to_string()))?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(sn, tcp))
            .await
            .map_err(|_| ClientError::Connect(format!("{addr}: TLS handshake timed out")))?
            .map_err(|e| {
                let msg = e.to_string();
                if msg.contains("ApplicationVerificationFailure") {
                    ClientError::PinMismatch(format!(
                        "{addr} is not the CAS with fingerprint {pin}; check --cas-fingerprint"
                    ))
                } else {
                    ClientError::Connect(format!("{addr}: TLS handshake failed: {msg}"))
                }
            })?;
        let exporter = tls
            .get_ref()
            .1
            .export_keying_material([0u8; 64], EXPORTER_LABEL, None)
            .map_err(|e| ClientError::Tls(format!("TLS exporter: {e}")))?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::Connect(format!("{addr}: HTTP handshake failed: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(CasClient {
            sender: tokio::sync::Mutex::new(sender),
            exporter,
            authority: format!("{host}:{port}"),
            addr: addr.to_string(),
        })
    }

    /// The 64-byte TLS exporter value of this connection
    /// (label `EXPORTER-sigil-attestation-v1`, no context). The CAS computes
    /// the same value on its side; attestation evidence binds to it.
    pub fn exporter(&self) -> [u8; 64] {
        self.exporter
    }

    /// Sends one request and returns the answer whatever its status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<RawResponse, ClientError> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        if let Some(ct) = content_type {
            b = b.header(hyper::header::CONTENT_TYPE, ct);
        }
        let req = b
            .body(Full::new(body))
            .map_err(|e| ClientError::Http(format!("bad request: {e}")))?;
        let fut = async {
            let mut s = self.sender.lock().await;
            s.ready()
                .await
                .map_err(|e| ClientError::Http(format!("connection to {} lost: {e}", self.addr)))?;
            let resp = s
                .send_request(req)
                .await
                .map_err(|e| ClientError::Http(format!("request to {} failed: {e}", self.addr)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Http(format!("reading answer: {e}")))?
                .to_bytes();
            Ok(RawResponse { status, body })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| ClientError::Http(format!("{}: request timed out", self.addr)))?
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Bytes, ClientError> {
        let r = self.request(method, path, content_type, body).await?;
        if r.status.is_success() {
            Ok(r.body)
        } else {
            Err(api_error(r.status, &r.body))
        }
    }

    async fn call_json<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<R, ClientError> {
        let b = self.call(method, path, content_type, body).await?;
        serde_json::from_slice(&b)
            .map_err(|e| ClientError::Http(format!("unexpected answer from the CAS: {e}")))
    }

    /// POSTs a JSON body to `path` and returns the raw 2xx answer.
    pub async fn post_json<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Bytes, ClientError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ClientError::Http(format!("cannot encode request: {e}")))?;
        self.call(Method::POST, path, Some("application/json"), body.into())
            .await
    }

    /// GETs `path` and decodes the JSON answer.
    pub async fn get_json<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        self.call_json(Method::GET, path, None, Bytes::new()).await
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get_json("/healthz").await
    }

    /// Creates a session from YAML; returns its hash.
    pub async fn create_session(&self, yaml: &str) -> Result<SessionWritten, ClientError> {
        self.send_session(Method::POST, yaml).await
    }

    /// Updates a session with YAML exactly as given (it must carry the
    /// current hash as `predecessor`).
    pub async fn update_session_exact(&self, yaml: &str) -> Result<SessionWritten, ClientError> {
        self.send_session(Method::PUT, yaml).await
    }

    /// Create (POST) and update (PUT) differ only in the method: same
    /// endpoint, YAML body and answer.
    async fn send_session(
        &self,
        method: Method,
        yaml: &str,
    ) -> Result<SessionWritten, ClientError> {
        self.call_json(
            method,
            "/v1/sessions",
            Some("application/yaml"),
            Bytes::copy_from_slice(yaml.as_bytes()),
        )
        .await
    }

    /// Updates a session. When the YAML has no `predecessor`, the current
    /// hash is fetched and filled in, so nobody copies hashes by hand.
    pub async fn update_session(&self, yaml: &str) -> Result<SessionWritten, ClientError> {
        let mut s = sigil_session::Session::parse(yaml)
            .map_err(|e| ClientError::BadSession(e.to_string()))?;
        if s.predecessor.is_some() {
            return self.update_session_exact(yaml).await;
        }
        let current = self.get_session(s.name.as_str()).await?;
        let hash: sigil_session::SessionHash = current
            .hash
            .parse()
            .map_err(|_| ClientError::Http("the CAS returned a malformed hash".into()))?;
        s.predecessor = Some(hash);
        self.update_session_exact(&s.to_yaml()).await
    }

    /// Creates the session if it does not exist, else updates it (filling
    /// in the predecessor). Returns the answer and whether it was created.
    pub async fn create_or_update_session(
        &self,
        yaml: &str,
    ) -> Result<(SessionWritten, bool), ClientError> {
        let s = sigil_session::Session::parse(yaml)
            .map_err(|e| ClientError::BadSession(e.to_string()))?;
        match self.get_session(s.name.as_str()).await {
            Err(ClientError::Api { status: 404, .. }) => {
                Ok((self.create_session(yaml).await?, true))
            }
            Err(e) => Err(e),
            Ok(_) => Ok((self.update_session(yaml).await?, false)),
        }
    }

    /// Reads a session (redacted YAML and metadata).
    pub async fn get_session(&self, name: &str) -> Result<SessionInfo, ClientError> {
        self.get_json(&format!("/v1/sessions/{}", encode_path(name)))
            .await
    }

    /// Lists the sessions the caller may read.
    pub async fn list(&self) -> Result<SessionList, ClientError> {
        self.get_json("/v1/sessions").await
    }

    /// Deletes a session.
    pub async fn delete(&self, name: &str) -> Result<(), ClientError> {
        self.call(
            Method::DELETE,
            &format!("/v1/sessions/{}", encode_path(name)),
            None,
            Bytes::new(),
        )
        .await
        .map(|_| ())
    }

    /// One page of the audit log from entry `from`.
    pub async fn audit_page(&self, from: u64, limit: u64) -> Result<AuditPage, ClientError> {
        self.get_json(&format!("/v1/audit?from={from}&limit={limit}"))
            .await
    }

    /// The whole audit log.
    pub async fn audit(&self) -> Result<Vec<AuditEntry>, ClientError> {
        let mut all = Vec::new();
        loop {
            let page = self.audit_page(all.len() as u64, AUDIT_PAGE).await?;
            let n = page.entries.len();
            all.extend(page.entries);
            if n == 0 || all.len() as u64 >= page.total {
                return Ok(all);
            }
        }
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            error: e.error,
            current: e.current,
            given: e.given,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            error: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            current: None,
            given: None,
        },
    }
}

/// A blocking wrapper around [`CasClient`] with its own runtime, for code
/// that is not async (CLI, init).
pub struct BlockingCasClient {
    rt: tokio::runtime::Runtime,
    inner: CasClient,
}

impl BlockingCasClient {
    /// See [`CasClient::connect`].
    pub fn connect(
        addr: &str,
        pin: Fingerprint,
        identity: Option<&Identity>,
    ) -> Result<Self, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Io(format!("cannot start a runtime: {e}")))?;
        let inner = rt.block_on(CasClient::connect(addr, pin, identity))?;
        Ok(BlockingCasClient { rt, inner })
    }

    /// Runs any async operation of the inner client.
    pub fn run<'a, F, T>(&'a self, f: impl FnOnce(&'a CasClient) -> F) -> T
    where
        F: std::future::Future<Output = T> + 'a,
    {
        self.rt.block_on(f(&self.inner))
    }

    /// See [`CasClient::exporter`].
    pub fn exporter(&self) -> [u8; 64] {
        self.inner.exporter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("https://127.0.0.1:8443/").unwrap(),
            ("127.0.0.1".to_string(), 8443)
        );
        assert_eq!(parse_address("[::1]:1").unwrap(), ("::1".to_string(), 1));
        assert_eq!(parse_address("cas.example:443").unwrap().1, 443);
        assert!(parse_address("http://x:1").is_err());
        assert!(parse_address("nohost").is_err());
        assert!(parse_address("x:notaport").is_err());
        assert!(parse_address(":80").is_err());
    }

    #[test]
    fn path_encoding() {
        assert_eq!(encode_path("a/b-c_d.e"), "a/b-c_d.e");
        assert_eq!(encode_path("a b?"), "a%20b%3F");
    }
}
