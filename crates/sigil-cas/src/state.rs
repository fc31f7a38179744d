//! The CAS state shared by every handler: store, master key, clock,
//! metrics, rate limiting; and the operations of the management API and of
//! service resolution.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use sigil_client::audit::AuditEntry;
use sigil_client::wire::{
    AuditPage, ResolvedFile, ResolvedService, ResolvedVolume, SessionInfo, SessionList,
    SessionSummary, SessionWritten,
};
use sigil_client::Fingerprint;
use sigil_session::placeholder::{self, Placeholder, SubstituteError};
use sigil_session::{Principal, SecretKind, Session};
use zeroize::Zeroizing;

use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::seal::MasterKey;
use crate::secrets::{self, Material};
use crate::store::{
    AuditDraft, AuditReport, Change, CommitError, Expect, SessionRecord, SessionStore, StoredPolicy,
};
use crate::CasError;

/// Largest audit page returned at once.
pub const MAX_AUDIT_PAGE: u64 = 1000;
/// Most bytes the placeholders of one service may expand to in total when
/// its configuration is resolved (the templates themselves are bounded by
/// the 1 MiB session document). Keeps the answer within the launcher's
/// 8 MiB limit and the CAS's memory bounded.
pub const MAX_RESOLVED_SECRET_BYTES: usize = 4 * 1024 * 1024;

/// Source of the current time (tests may substitute their own).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What a handler knows about the connection a request came on.
#[derive(Clone, Copy)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// SPKI SHA-256 of the client certificate, if the client presented one.
    pub client: Option<Fingerprint>,
    /// TLS exporter (`EXPORTER-sigil-attestation-v1`, no context, 64 bytes).
    /// Always set for TLS 1.3 connections (the CAS accepts nothing else).
    pub exporter: Option<[u8; 64]>,
}

impl std::fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnInfo")
            .field("peer", &self.peer)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl ConnInfo {
    /// The client fingerprint, or 401.
    pub fn require_client(&self) -> Result<Fingerprint, CasError> {
        self.client.ok_or_else(|| {
            CasError::Unauthenticated(
                "this route needs a client certificate; create one with `sigil identity create`"
                    .into(),
            )
        })
    }
}

/// Everything the handlers share.
pub struct CasState {
    /// The store.
    pub store: Arc<dyn SessionStore>,
    /// The master key.
    pub key: Arc<MasterKey>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Token bucket per client IP for `/v1/attest`.
    pub attest_limiter: RateLimiter,
    /// The CAS's own fingerprint.
    pub fingerprint: Fingerprint,
    /// Who may read the audit log (`None`: any authenticated client).
    pub audit_readers: Option<Vec<Fingerprint>>,
    /// Who may create top-level sessions (`None`: any authenticated
    /// client). Sessions inside a namespace follow the parent's
    /// `create_sessions` policy instead.
    pub session_creators: Option<Vec<Fingerprint>>,
    /// The attestation verifiers (built at start from [`crate::Config::verifiers`]).
    pub verifiers: Arc<sigil_attest::Verifiers>,
}

impl std::fmt::Debug for CasState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasState")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// RFC 3339 UTC with seconds.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn policy_of(s: &Session) -> StoredPolicy {
    let f = |v: &Vec<Principal>| v.iter().map(|p| p.to_string()).collect();
    StoredPolicy {
        read: f(&s.access_policy.read),
        update: f(&s.access_policy.update),
        create_sessions: f(&s.access_policy.create_sessions),
    }
}

fn permitted(list: &[String], caller: &Fingerprint, creator: &str) -> bool {
    let me = caller.to_hex();
    list.iter().any(|p| match p.as_str() {
        "ANY" => true,
        "NONE" => false,
        "CREATOR" => me == creator,
        h => me == h,
    })
}

fn parse_yaml(yaml: &str) -> Result<Session, CasError> {
    Session::parse(yaml).map_err(|errs| {
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        CasError::BadRequest(format!("invalid session: {}", msgs.join("; ")))
    })
}

fn subst_err(e: SubstituteError<CasError>) -> CasError {
    match e {
        SubstituteError::Resolve(e) => e,
        other => CasError::BadRequest(other.to_string()),
    }
}

/// The session changed (or was deleted) between the decision made on the
/// version `given` and the release of its configuration.
fn changed(session: &str, given: &str) -> CasError {
    CasError::Conflict {
        message: format!("session `{session}` changed while the request was handled; retry"),
        current: None,
        given: Some(given.to_string()),
    }
}

impl CasState {
    /// Now as RFC 3339.
    pub fn now_rfc3339(&self) -> String {
        rfc3339(self.clock.now())
    }

    /// Reads, integrity-checks and decrypts a session.
    pub fn read_session(&self, name: &str) -> Result<Option<(SessionRecord, Session)>, CasError> {
        let Some(rec) = self.store.get(name)? else {
            return Ok(None);
        };
        rec.check_mac(&self.key)?;
        let session = self.open_record(&rec)?;
        Ok(Some((rec, session)))
    }

    fn open_record(&self, rec: &SessionRecord) -> Result<Session, CasError> {
        use base64::Engine;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(rec.sealed_yaml.as_bytes())
            .map_err(|_| CasError::Integrity(format!("session `{}` is malformed", rec.name)))?;
        let yaml = self.key.open(&[b"session", rec.name.as_bytes()], &blob)?;
        let text = std::str::from_utf8(&yaml)
            .map_err(|_| CasError::Integrity(format!("session `{}` is malformed", rec.name)))?;
        let s = Session::parse(text).map_err(|_| {
            CasError::Integrity(format!("stored session `{}` no longer parses", rec.name))
        })?;
        if s.hash().to_string() != rec.hash {
            return Err(CasError::Integrity(format!(
                "stored session `{}` does not match its hash",
                rec.name
            )));
        }
        Ok(s)
    }

    /// A session by name, or 404.
    pub fn session(&self, name: &str) -> Result<Session, CasError> {
        self.read_session(name)?
            .map(|(_, s)| s)
            .ok_or_else(|| CasError::NotFound(format!("no session `{name}`")))
    }

    /// The opened secret materials of a session.
    pub fn materials(&self, session: &str) -> Result<BTreeMap<String, Material>, CasError> {
        let mut out = BTreeMap::new();
        for (name, blob) in self.store.secrets(session)? {
            let m = Material::open(&self.key, session, &name, &blob)?;
            out.insert(name, m);
        }
        Ok(out)
    }

    /// The material of an imported secret of `session`, if the exporting
    /// session exports it to `session`.
    fn imported_material(
        &self,
        session: &Session,
        importer_creator: &str,
        secret_name: &str,
    ) -> Result<Option<Material>, CasError> {
        let Some(secret) = session.secret(secret_name) else {
            return Ok(None);
        };
        let Some(imp) = &secret.import else {
            return Ok(None);
        };
        let Some((exp_rec, exporter)) = self.read_session(&imp.session)? else {
            return Err(CasError::BadRequest(format!(
                "secret `{secret_name}` imports from session `{}`, which does not exist",
                imp.session
            )));
        };
        let exported = exporter
            .secret(&imp.secret)
            .is_some_and(|s| s.export.iter().any(|e| e.session == session.name.as_str()));
        if !exported {
            return Err(CasError::Forbidden(format!(
                "session `{}` does not export secret `{}` to `{}`",
                imp.session,
                imp.secret,
                session.name.as_str()
            )));
        }
        // An export names the importer by session name only, and any
        // identity may create a top-level session: whoever first takes a
        // name an export lists (not created yet, or deleted) would get the
        // secret. So the importing session must also belong to someone the
        // exporter trusts: its creator, or an identity its read or update
        // policy names explicitly (`ANY` does not count).
        let trusted = importer_creator == exp_rec.creator
            || exp_rec
                .policy
                .read
                .iter()
                .chain(exp_rec.policy.update.iter())
                .any(|p| p == importer_creator);
        if !trusted {
            return Err(CasError::Forbidden(format!(
                "session `{}` exports secret `{}` to `{}`, but `{}` belongs to sha256:{importer_creator}, which `{}` does not trust (its creator, or an identity named in its access_policy read or update)",
                imp.session,
                imp.secret,
                session.name.as_str(),
                session.name.as_str(),
                imp.session
            )));
        }
        let mut mats = self.materials(&imp.session)?;
        Ok(mats.remove(&imp.secret))
    }

    /// Appends an audit entry (durably) with arbitrary JSON details.
    pub fn append_audit(
        &self,
        actor: &str,
        action: &str,
        session: Option<&str>,
        details: serde_json::Value,
    ) -> Result<AuditEntry, CasError> {
        self.store.append_audit(AuditDraft {
            time: self.now_rfc3339(),
            actor: actor.to_string(),
            action: action.to_string(),
            session: session.map(str::to_string),
            old_hash: None,
            new_hash: None,
            details,
        })
    }

    /// Verifies the audit chain and the MAC'd head.
    pub fn verify_audit(&self) -> Result<AuditReport, CasError> {
        crate::store::verify_audit(self.store.as_ref(), Some(&self.key))
    }

    fn seal_secrets(
        &self,
        name: &str,
        mats: &BTreeMap<String, Material>,
    ) -> Result<Vec<(String, Vec<u8>)>, CasError> {
        mats.iter()
            .map(|(n, m)| Ok((n.clone(), m.seal(&self.key, name, n)?)))
            .collect()
    }

    fn make_record(
        &self,
        s: &Session,
        yaml: &str,
        creator: &str,
        created_at: &str,
    ) -> Result<SessionRecord, CasError> {
        use base64::Engine;
        let name = s.name.as_str();
        let sealed = self
            .key
            .seal(&[b"session", name.as_bytes()], yaml.as_bytes())?;
        let mut r = SessionRecord {
            name: name.to_string(),
            hash: s.hash().to_string(),
            creator: creator.to_string(),
            policy: policy_of(s),
            created_at: created_at.to_string(),
            updated_at: self.now_rfc3339(),
            sealed_yaml: base64::engine::general_purpose::STANDARD.encode(sealed),
            mac: String::new(),
        };
        r.seal_mac(&self.key);
        Ok(r)
    }

    /// Counts the outcome of session operation `op` in the metrics and
    /// passes it on: every public session operation goes through here.
    fn counted<T>(&self, op: &str, r: Result<T, CasError>) -> Result<T, CasError> {
        let result = if r.is_ok() { "ok" } else { "refused" };
        self.metrics.inc(
            "sigil_cas_session_ops_total",
            &[("op", op), ("result", result)],
        );
        r
    }

    /// `POST /v1/sessions`.
    pub fn create_session(
        &self,
        caller: &Fingerprint,
        yaml: &str,
    ) -> Result<SessionWritten, CasError> {
        self.counted("create", self.create_inner(caller, yaml))
    }

    fn create_inner(&self, caller: &Fingerprint, yaml: &str) -> Result<SessionWritten, CasError> {
        let s = parse_yaml(yaml)?;
        let name = s.name.as_str().to_string();
        if s.predecessor.is_some() {
            return Err(CasError::BadRequest(
                "a new session must not have a `predecessor`; remove it, or use update".into(),
            ));
        }
        if let Some(parent) = s.name.namespace() {
            let Some(prec) = self.store.get(parent)? else {
                return Err(CasError::NotFound(format!(
                    "namespace `{parent}` does not exist: create session `{parent}` first"
                )));
            };
            prec.check_mac(&self.key)?;
            if !permitted(&prec.policy.create_sessions, caller, &prec.creator) {
                return Err(CasError::Forbidden(format!(
                    "{caller} may not create sessions in namespace `{parent}` (its access_policy.create_sessions)"
                )));
            }
        } else if let Some(creators) = &self.session_creators {
            if !creators.iter().any(|c| c == caller) {
                return Err(CasError::Forbidden(format!(
                    "{caller} may not create top-level sessions (see --session-creator)"
                )));
            }
        }
        if self.store.get(&name)?.is_some() {
            return Err(exists(&name));
        }
        let mats = secrets::materialize(
            &self.key,
            &s,
            &BTreeMap::new(),
            &|n| self.imported_material(&s, &caller.to_hex(), n),
            true,
        )?;
        let sealed = self.seal_secrets(&name, &mats)?;
        let now = self.now_rfc3339();
        let record = self.make_record(&s, yaml, &caller.to_hex(), &now)?;
        let hash = record.hash.clone();
        let change = Change {
            name: name.clone(),
            expect: Expect::Absent,
            record: Some(record),
            secrets: sealed,
            audit: AuditDraft {
                time: now,
                actor: caller.to_string(),
                action: "session.create".into(),
                session: Some(name.clone()),
                old_hash: None,
                new_hash: Some(hash.clone()),
                details: serde_json::json!({ "secrets": mats.keys().collect::<Vec<_>>() }),
            },
        };
        match self.store.commit(change) {
            Ok(_) => Ok(SessionWritten {
                name,
                hash,
                predecessor: None,
            }),
            Err(CommitError::Conflict { .. }) => Err(exists(s.name.as_str())),
            Err(CommitError::Store(e)) => Err(e),
        }
    }

    /// `PUT /v1/sessions`.
    pub fn update_session(
        &self,
        caller: &Fingerprint,
        yaml: &str,
    ) -> Result<SessionWritten, CasError> {
        self.counted("update", self.update_inner(caller, yaml))
    }

    fn update_inner(&self, caller: &Fingerprint, yaml: &str) -> Result<SessionWritten, CasError> {
        let s = parse_yaml(yaml)?;
        let name = s.name.as_str().to_string();
        let Some(cur) = self.store.get(&name)? else {
            return Err(CasError::NotFound(format!(
                "no session `{name}`; create it first"
            )));
        };
        cur.check_mac(&self.key)?;
        if !permitted(&cur.policy.update, caller, &cur.creator) {
            return Err(CasError::Forbidden(format!(
                "{caller} may not update session `{name}` (its access_policy.update)"
            )));
        }
        let given = s.predecessor.map(|h| h.to_string());
        if given.as_deref() != Some(cur.hash.as_str()) {
            return Err(CasError::Conflict {
                message: match &given {
                    None => format!("update of `{name}` must carry the current hash as `predecessor` (`sigil session update` fills it in)"),
                    Some(_) => format!("`predecessor` of `{name}` is not its current hash: someone updated it since; fetch it again"),
                },
                current: Some(cur.hash.clone()),
                given,
            });
        }
        let old = self.materials(&name)?;
        let mats = secrets::materialize(
            &self.key,
            &s,
            &old,
            &|n| self.imported_material(&s, &cur.creator, n),
            true,
        )?;
        let generated: Vec<&String> = mats
            .iter()
            .filter(|(n, m)| old.get(*n).is_none_or(|o| o.kind_id != m.kind_id))
            .map(|(n, _)| n)
            .collect();
        let sealed = self.seal_secrets(&name, &mats)?;
        let record = self.make_record(&s, yaml, &cur.creator, &cur.created_at)?;
        let hash = record.hash.clone();
        let change = Change {
            name: name.clone(),
            expect: Expect::Hash(cur.hash.clone()),
            record: Some(record),
            secrets: sealed,
            audit: AuditDraft {
                time: self.now_rfc3339(),
                actor: caller.to_string(),
                action: "session.update".into(),
                session: Some(name.clone()),
                old_hash: Some(cur.hash.clone()),
                new_hash: Some(hash.clone()),
                details: serde_json::json!({ "generated": generated }),
            },
        };
        match self.store.commit(change) {
            Ok(_) => Ok(SessionWritten {
                name,
                hash,
                predecessor: Some(cur.hash),
            }),
            Err(CommitError::Conflict { current }) => Err(CasError::Conflict {
                message: format!("`{name}` was updated concurrently; fetch it again and retry"),
                current,
                given,
            }),
            Err(CommitError::Store(e)) => Err(e),
        }
    }

    /// `GET /v1/sessions/{name}`.
    pub fn get_session_info(
        &self,
        caller: &Fingerprint,
        name: &str,
    ) -> Result<SessionInfo, CasError> {
        let Some(rec) = self.store.get(name)? else {
            return Err(CasError::NotFound(format!("no session `{name}`")));
        };
        rec.check_mac(&self.key)?;
        if !permitted(&rec.policy.read, caller, &rec.creator) {
            return Err(CasError::Forbidden(format!(
                "{caller} may not read session `{name}` (its access_policy.read)"
            )));
        }
        let s = self.open_record(&rec)?;
        Ok(SessionInfo {
            name: rec.name,
            hash: rec.hash,
            creator: format!("sha256:{}", rec.creator),
            created_at: rec.created_at,
            updated_at: rec.updated_at,
            yaml: s.to_yaml_redacted(),
        })
    }

    /// `GET /v1/sessions`: the sessions the caller may read.
    pub fn list_sessions(&self, caller: &Fingerprint) -> Result<SessionList, CasError> {
        let mut sessions = Vec::new();
        for rec in self.store.list()? {
            if rec.check_mac(&self.key).is_err() {
                tracing::error!(session = %rec.name, "stored record fails its integrity check");
                continue;
            }
            if permitted(&rec.policy.read, caller, &rec.creator) {
                sessions.push(SessionSummary {
                    name: rec.name,
                    hash: rec.hash,
                });
            }
        }
        Ok(SessionList { sessions })
    }

    /// `DELETE /v1/sessions/{name}` (needs update permission; refused while
    /// the session's namespace holds sessions).
    pub fn delete_session(&self, caller: &Fingerprint, name: &str) -> Result<(), CasError> {
        self.counted("delete", self.delete_inner(caller, name))
    }

    fn delete_inner(&self, caller: &Fingerprint, name: &str) -> Result<(), CasError> {
        let Some(cur) = self.store.get(name)? else {
            return Err(CasError::NotFound(format!("no session `{name}`")));
        };
        cur.check_mac(&self.key)?;
        if !permitted(&cur.policy.update, caller, &cur.creator) {
            return Err(CasError::Forbidden(format!(
                "{caller} may not delete session `{name}` (its access_policy.update)"
            )));
        }
        let prefix = format!("{name}/");
        if let Some(child) = self
            .store
            .list()?
            .into_iter()
            .find(|r| r.name.starts_with(&prefix))
        {
            return Err(CasError::Conflict {
                message: format!(
                    "session `{name}` still has session `{}` in its namespace; delete that first",
                    child.name
                ),
                current: None,
                given: None,
            });
        }
        let change = Change {
            name: name.to_string(),
            expect: Expect::Hash(cur.hash.clone()),
            record: None,
            secrets: vec![],
            audit: AuditDraft {
                time: self.now_rfc3339(),
                actor: caller.to_string(),
                action: "session.delete".into(),
                session: Some(name.to_string()),
                old_hash: Some(cur.hash.clone()),
                new_hash: None,
                details: serde_json::Value::Null,
            },
        };
        match self.store.commit(change) {
            Ok(_) => Ok(()),
            Err(CommitError::Conflict { current }) => Err(CasError::Conflict {
                message: format!("`{name}` changed concurrently; retry"),
                current,
                given: Some(cur.hash),
            }),
            Err(CommitError::Store(e)) => Err(e),
        }
    }

    /// `GET /v1/audit?from=N&limit=M`.
    pub fn audit_page(
        &self,
        caller: &Fingerprint,
        from: u64,
        limit: u64,
    ) -> Result<AuditPage, CasError> {
        if let Some(readers) = &self.audit_readers {
            if !readers.iter().any(|r| r == caller) {
                return Err(CasError::Forbidden(format!(
                    "{caller} may not read the audit log (see --audit-reader)"
                )));
            }
        }
        let limit = limit.clamp(1, MAX_AUDIT_PAGE);
        let total = self.store.audit_len()?;
        let entries = self.store.audit_range(from, limit)?;
        let prev = if from == 0 {
            "00".repeat(32)
        } else {
            self.store
                .audit_range(from - 1, 1)?
                .pop()
                .map(|e| e.hash)
                .unwrap_or_default()
        };
        Ok(AuditPage {
            entries,
            total,
            prev,
        })
    }

    /// The service `service` of session `session` with every placeholder
    /// substituted by the session's own and imported secrets: command,
    /// environment, pwd, the injection files and volumes of its image.
    pub fn resolve_service(
        &self,
        session: &str,
        service: &str,
    ) -> Result<ResolvedService, CasError> {
        self.resolve_inner(session, service, None)
    }

    /// As [`CasState::resolve_service`], but only from the session version
    /// whose hash is `hash`: the version an attestation was decided
    /// against. If the session was updated (or deleted) since, this is a
    /// [`CasError::Conflict`], so configuration and secrets of a newer
    /// version are never released on a decision made under an older one.
    pub fn resolve_service_at(
        &self,
        session: &str,
        service: &str,
        hash: &str,
    ) -> Result<ResolvedService, CasError> {
        self.resolve_inner(session, service, Some(hash))
    }

    /// As [`CasState::resolve_service_at`], for a caller that already holds
    /// the version it decided on (`rec`, `s`, as [`CasState::read_session`]
    /// returned them): the session is not read and parsed a second time.
    pub fn resolve_decided(
        &self,
        session: &str,
        service: &str,
        rec: &SessionRecord,
        s: &Session,
    ) -> Result<ResolvedService, CasError> {
        self.resolve_from(session, service, rec, s, true)
    }

    fn resolve_inner(
        &self,
        session: &str,
        service: &str,
        expect_hash: Option<&str>,
    ) -> Result<ResolvedService, CasError> {
        let Some((rec, s)) = self.read_session(session)? else {
            return Err(match expect_hash {
                Some(h) => changed(session, h),
                None => CasError::NotFound(format!("no session `{session}`")),
            });
        };
        if let Some(h) = expect_hash.filter(|h| *h != rec.hash) {
            return Err(changed(session, h));
        }
        self.resolve_from(session, service, &rec, &s, expect_hash.is_some())
    }

    /// Resolves `service` from the version `rec`/`s`; with `check_version`,
    /// refuses ([`CasError::Conflict`]) if the stored session is no longer
    /// that version once its secrets have been read.
    fn resolve_from(
        &self,
        session: &str,
        service: &str,
        rec: &SessionRecord,
        s: &Session,
        check_version: bool,
    ) -> Result<ResolvedService, CasError> {
        let svc = s.service(service).ok_or_else(|| {
            CasError::NotFound(format!("session `{session}` has no service `{service}`"))
        })?;
        let mut mats = self.materials(session)?;
        // The record and its secrets are committed together but read in two
        // transactions: if the record is unchanged after reading the
        // secrets, the secrets belong to this version (hashes never repeat,
        // each names its predecessor).
        if check_version && self.store.get(session)?.map(|r| r.hash).as_ref() != Some(&rec.hash) {
            return Err(changed(session, &rec.hash));
        }
        for sec in &s.secrets {
            if matches!(sec.kind, SecretKind::Imported) {
                if let Some(m) = self.imported_material(s, &rec.creator, &sec.name)? {
                    mats.insert(sec.name.clone(), m);
                }
            }
        }
        // A 1 MiB session can hold ~80k placeholders of a 64 KiB secret:
        // without a budget, one attestation would make the CAS allocate
        // gigabytes. The budget is checked as each placeholder is rendered.
        let used = std::cell::Cell::new(0usize);
        let render = |ph: &Placeholder, in_file: bool| -> Result<Vec<u8>, CasError> {
            let m = mats.get(&ph.secret).ok_or_else(|| {
                CasError::BadRequest(format!(
                    "placeholder names secret `{}`, which session `{session}` does not have",
                    ph.secret
                ))
            })?;
            let out = m.render(&ph.secret, ph.format, in_file)?;
            let total = used.get().saturating_add(out.len());
            if total > MAX_RESOLVED_SECRET_BYTES {
                return Err(CasError::BadRequest(format!(
                    "the secrets substituted into service `{service}` of session `{session}` exceed {MAX_RESOLVED_SECRET_BYTES} bytes"
                )));
            }
            used.set(total);
            Ok(out)
        };
        let text = |t: &str| -> Result<String, CasError> {
            placeholder::substitute(t, |ph| {
                let b = Zeroizing::new(render(ph, false)?);
                String::from_utf8(b.to_vec()).map_err(|_| {
                    CasError::BadRequest(format!(
                        "secret `{}` is not UTF-8 text; use `:hex` or `:base64`",
                        ph.secret
                    ))
                })
            })
            .map_err(subst_err)
        };
        let command = svc
            .command
            .iter()
            .map(|a| text(a))
            .collect::<Result<Vec<_>, _>>()?;
        let environment = svc
            .environment
            .iter()
            .map(|(k, v)| Ok((k.clone(), text(v)?)))
            .collect::<Result<BTreeMap<_, _>, CasError>>()?;
        let pwd = svc.pwd.as_deref().map(text).transpose()?;
        let image = match &svc.image_name {
            Some(i) => Some(s.image(i).ok_or_else(|| {
                CasError::Integrity(format!("service `{service}` names unknown image `{i}`"))
            })?),
            None => None,
        };
        let mut injection_files = Vec::new();
        let mut volumes = Vec::new();
        if let Some(img) = image {
            for f in &img.injection_files {
                let content =
                    placeholder::substitute_bytes(f.content.as_bytes(), |ph| render(ph, true))
                        .map_err(subst_err)?;
                injection_files.push(ResolvedFile {
                    path: f.path.clone(),
                    content,
                    mode: f.mode,
                });
            }
            for iv in &img.volumes {
                let v = s.volume(&iv.name).ok_or_else(|| {
                    CasError::Integrity(format!("image names unknown volume `{}`", iv.name))
                })?;
                volumes.push(ResolvedVolume {
                    name: v.name.clone(),
                    path: iv.path.clone(),
                    key: v.key.as_ref().map(|k| hex::encode(k.expose())),
                    tag: v.tag.map(hex::encode),
                });
            }
        }
        Ok(ResolvedService {
            session: session.to_string(),
            session_hash: rec.hash.clone(),
            service: service.to_string(),
            command,
            environment,
            pwd,
            injection_files,
            volumes,
        })
    }
}

fn exists(name: &str) -> CasError {
    CasError::Conflict {
        message: format!("session `{name}` already exists; use `sigil session update`"),
        current: None,
        given: None,
    }
}
