//! The launcher's side of `POST /v1/attest` (`docs/protocol.md`): a pinned
//! TLS 1.3 connection, evidence bound to it through the TLS exporter,
//! retries with backoff while the CAS is unreachable.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use sigil_client::attest::{
    AttestAccepted, AttestRefused, AttestRequest, ATTEST_PATH, ATTEST_VERSION, MAX_ATTEST_RESPONSE,
    MAX_REASONS,
};
use sigil_client::tls::EXPORTER_LABEL;
use sigil_client::Fingerprint;

use crate::config::{ConfigId, SpkiPin};
use crate::evidence::{EvidenceError, Provider};
use crate::http;

/// Version string sent to the CAS.
pub const LAUNCHER_VERSION: &str = concat!("sigil-init/", env!("CARGO_PKG_VERSION"));

/// Why attestation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The CAS could not be reached before the deadline.
    #[error("CAS at {addr} unreachable after {attempts} attempts over {secs:.1}s: {last}")]
    Unreachable {
        /// Address tried.
        addr: String,
        /// How many attempts.
        attempts: u32,
        /// Seconds spent.
        secs: f64,
        /// Last error.
        last: String,
    },
    /// The server's key is not the pinned one.
    #[error("the server at {addr} is not the CAS pinned in init.toml (expected key {pin}); refusing to send evidence")]
    PinMismatch {
        /// Address.
        addr: String,
        /// The pin.
        pin: String,
    },
    /// The CAS refused, with its reasons.
    #[error("CAS at {addr} refused attestation as {config_id}: {}", reasons.join("; "))]
    Refused {
        /// Address.
        addr: String,
        /// `session/service`.
        config_id: String,
        /// Every reason given.
        reasons: Vec<String>,
    },
    /// The CAS answered with an error that retrying will not fix.
    #[error("CAS at {addr} answered {status}: {error}")]
    Rejected {
        /// Address.
        addr: String,
        /// HTTP status.
        status: u16,
        /// The CAS's message.
        error: String,
    },
    /// No evidence could be produced.
    #[error("evidence: {0}")]
    Evidence(#[from] EvidenceError),
    /// The answer made no sense.
    #[error("CAS at {addr}: {detail}")]
    Protocol {
        /// Address.
        addr: String,
        /// What is wrong.
        detail: String,
    },
}

/// One failed attempt: either worth retrying or final.
enum Attempt {
    Retry(String),
    Fatal(AttestError),
}

/// A pinned TLS 1.3 connection to the CAS, handshake completed.
pub struct CasConnection {
    addr: String,
    host: String,
    tls: StreamOwned<ClientConnection, TcpStream>,
}

impl std::fmt::Debug for CasConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasConnection")
            .field("addr", &self.addr)
            .finish()
    }
}

fn is_pin_failure(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)))
}

fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    addr.to_socket_addrs()
        .map(|a| a.collect::<Vec<_>>())
        .map_err(|e| format!("cannot resolve {addr}: {e}"))
}

impl CasConnection {
    /// Connects, completes a TLS 1.3 handshake and checks the server's key
    /// against `pin` (in the handshake, before any data is sent).
    pub fn connect(
        addr: &str,
        pin: SpkiPin,
        timeout: Duration,
    ) -> Result<CasConnection, AttestError> {
        match Self::try_connect(addr, pin, timeout) {
            Ok(c) => Ok(c),
            Err(Attempt::Fatal(e)) => Err(e),
            Err(Attempt::Retry(last)) => Err(AttestError::Unreachable {
                addr: addr.to_string(),
                attempts: 1,
                secs: 0.0,
                last,
            }),
        }
    }

    fn try_connect(addr: &str, pin: SpkiPin, timeout: Duration) -> Result<CasConnection, Attempt> {
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(addr)
            .to_string();
        let targets = resolve(addr).map_err(Attempt::Retry)?;
        let mut last = format!("{addr} resolves to no address");
        let mut tcp = None;
        for t in targets {
            match TcpStream::connect_timeout(&t, timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("connect to {t}: {e}"),
            }
        }
        let mut tcp = tcp.ok_or(Attempt::Retry(last))?;
        let io = |e: std::io::Error| Attempt::Retry(format!("{addr}: {e}"));
        tcp.set_nodelay(true).map_err(io)?;
        tcp.set_read_timeout(Some(timeout)).map_err(io)?;
        tcp.set_write_timeout(Some(timeout)).map_err(io)?;
        let cfg = sigil_client::tls::client_config(Fingerprint(pin.0), None).map_err(|e| {
            Attempt::Fatal(AttestError::Protocol {
                addr: addr.to_string(),
                detail: e.to_string(),
            })
        })?;
        // The pin, not the name, authenticates the CAS; the name only
        // feeds SNI, so any syntactically valid one will do.
        let name = ServerName::try_from(host.clone())
            .or_else(|_| ServerName::try_from("sigil-cas".to_string()))
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        let mut conn = ClientConnection::new(Arc::new(cfg), name).map_err(|e| {
            Attempt::Fatal(AttestError::Protocol {
                addr: addr.to_string(),
                detail: format!("TLS: {e}"),
            })
        })?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                if is_pin_failure(&e) {
                    return Err(Attempt::Fatal(AttestError::PinMismatch {
                        addr: addr.to_string(),
                        pin: pin.to_string(),
                    }));
                }
                return Err(Attempt::Retry(format!("TLS handshake with {addr}: {e}")));
            }
        }
        Ok(CasConnection {
            addr: addr.to_string(),
            host,
            tls: StreamOwned::new(conn, tcp),
        })
    }

    /// The 64-byte report data of this connection: the TLS exporter with
    /// label `EXPORTER-sigil-attestation-v1`, no context.
    pub fn report_data(&self) -> Result<[u8; 64], AttestError> {
        self.tls
            .conn
            .export_keying_material([0u8; 64], EXPORTER_LABEL, None)
            .map_err(|e| AttestError::Protocol {
                addr: self.addr.clone(),
                detail: format!("TLS exporter: {e}"),
            })
    }

    /// Sends one attest request on this connection and reads the answer.
    /// The connection is closed by the CAS afterwards.
    pub fn attest(
        mut self,
        config_id: &ConfigId,
        evidence: &sigil_attest::Evidence,
    ) -> Result<AttestAccepted, AttestError> {
        match self.try_attest(config_id, evidence) {
            Ok(a) => Ok(a),
            Err(Attempt::Fatal(e)) => Err(e),
            Err(Attempt::Retry(last)) => Err(AttestError::Unreachable {
                addr: self.addr.clone(),
                attempts: 1,
                secs: 0.0,
                last,
            }),
        }
    }

    fn try_attest(
        &mut self,
        config_id: &ConfigId,
        evidence: &sigil_attest::Evidence,
    ) -> Result<AttestAccepted, Attempt> {
        let addr = self.addr.clone();
        let proto = |detail: String| {
            Attempt::Fatal(AttestError::Protocol {
                addr: addr.clone(),
                detail,
            })
        };
        let ev = serde_json::to_value(evidence).map_err(|e| proto(format!("evidence: {e}")))?;
        let req = AttestRequest {
            version: ATTEST_VERSION,
            config_id: config_id.to_string(),
            evidence: ev,
            launcher_version: LAUNCHER_VERSION.to_string(),
        };
        let body = serde_json::to_vec(&req).map_err(|e| proto(format!("request: {e}")))?;
        http::write_post(&mut self.tls, &self.host, ATTEST_PATH, &body)
            .map_err(|e| Attempt::Retry(format!("sending to {addr}: {e}")))?;
        let resp = match http::read_response(&mut self.tls, MAX_ATTEST_RESPONSE) {
            Ok(r) => r,
            Err(http::HttpError::Io(e)) => {
                return Err(Attempt::Retry(format!("reading from {addr}: {e}")))
            }
            Err(e) => return Err(proto(e.to_string())),
        };
        self.tls.conn.send_close_notify();
        let _ = self.tls.flush();
        match resp.status {
            200 => {
                let a: AttestAccepted = serde_json::from_slice(&resp.body)
                    .map_err(|e| proto(format!("bad accept answer: {e}")))?;
                if a.service.session != config_id.session || a.service.service != config_id.service
                {
                    return Err(proto(format!(
                        "answer is for {}/{}, not {config_id}",
                        a.service.session, a.service.service
                    )));
                }
                Ok(a)
            }
            403 => {
                let r: AttestRefused = serde_json::from_slice(&resp.body)
                    .map_err(|e| proto(format!("bad refusal answer: {e}")))?;
                let mut reasons: Vec<String> = r
                    .reasons
                    .into_iter()
                    .take(MAX_REASONS)
                    .map(|s| s.chars().take(1000).collect())
                    .collect();
                if reasons.is_empty() {
                    reasons.push(r.error.chars().take(1000).collect());
                }
                Err(Attempt::Fatal(AttestError::Refused {
                    addr,
                    config_id: config_id.to_string(),
                    reasons,
                }))
            }
            s => {
                let msg = error_message(&resp.body);
                if s == 429 || s >= 500 {
                    Err(Attempt::Retry(format!("{addr} answered {s}: {msg}")))
                } else {
                    Err(Attempt::Fatal(AttestError::Rejected {
                        addr,
                        status: s,
                        error: msg,
                    }))
                }
            }
        }
    }
}

fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<sigil_client::ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
        .chars()
        .take(1000)
        .collect()
}

/// What to attest with and how long to keep trying.
#[derive(Debug, Clone)]
pub struct AttestParams {
    /// CAS `host:port`.
    pub cas_addr: String,
    /// Pin of the CAS key.
    pub pin: SpkiPin,
    /// `session/service`.
    pub config_id: ConfigId,
    /// Evidence source.
    pub provider: Provider,
    /// Give up after this long.
    pub deadline: Duration,
    /// Per-connection I/O timeout.
    pub io_timeout: Duration,
}

/// Attests (retrying with exponential backoff while the CAS is unreachable
/// or overloaded, until the deadline) and returns the CAS's answer. A
/// refusal, a pin mismatch or a malformed answer ends at once.
pub fn run_attestation(
    p: &AttestParams,
    mut on_retry: impl FnMut(&str, Duration),
) -> Result<AttestAccepted, AttestError> {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let r = CasConnection::try_connect(&p.cas_addr, p.pin, p.io_timeout).and_then(|mut c| {
            let rd = c.report_data().map_err(Attempt::Fatal)?;
            let ev = p
                .provider
                .evidence(&rd)
                .map_err(|e| Attempt::Fatal(e.into()))?;
            c.try_attest(&p.config_id, &ev)
        });
        let last = match r {
            Ok(a) => return Ok(a),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(last)) => last,
        };
        let elapsed = start.elapsed();
        if elapsed + backoff > p.deadline {
            return Err(AttestError::Unreachable {
                addr: p.cas_addr.clone(),
                attempts,
                secs: elapsed.as_secs_f64(),
                last,
            });
        }
        on_retry(&last, backoff);
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
