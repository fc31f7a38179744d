//! Intel DCAP collateral: TCB info, QE identity, CRLs and their issuer
//! chains, and where it comes from (a file, a directory for air-gapped
//! sites). The on-disk JSON format is specified in `docs/evidence.md`.

use crate::evidence::TeeKind;
use crate::VerifyError;
use dcap_qvl::QuoteCollateralV3;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Largest collateral JSON file accepted (real ones are 14–20 KiB).
pub const MAX_COLLATERAL_FILE: usize = 1024 * 1024;

/// Collateral for one (TEE, FMSPC, PCK CA), with its content hash.
#[derive(Clone, Debug)]
pub struct Collateral {
    /// The collateral in dcap-qvl's structure.
    pub inner: QuoteCollateralV3,
    /// SHA-256 over every field (length-prefixed): the cache key.
    pub hash: [u8; 32],
}

/// The JSON file format: every binary field is hex, chains are PEM.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollateralJson {
    pck_crl_issuer_chain: String,
    root_ca_crl: String,
    pck_crl: String,
    tcb_info_issuer_chain: String,
    tcb_info: String,
    tcb_info_signature: String,
    qe_identity_issuer_chain: String,
    qe_identity: String,
    qe_identity_signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pck_certificate_chain: Option<String>,
}

fn malformed(detail: String) -> VerifyError {
    VerifyError::Malformed {
        what: "collateral",
        detail,
    }
}

impl Collateral {
    /// Wraps dcap-qvl collateral, computing its content hash.
    pub fn new(inner: QuoteCollateralV3) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut field = |b: &[u8]| {
            ctx.update(&(b.len() as u64).to_le_bytes());
            ctx.update(b);
        };
        field(inner.pck_crl_issuer_chain.as_bytes());
        field(&inner.root_ca_crl);
        field(&inner.pck_crl);
        field(inner.tcb_info_issuer_chain.as_bytes());
        field(inner.tcb_info.as_bytes());
        field(&inner.tcb_info_signature);
        field(inner.qe_identity_issuer_chain.as_bytes());
        field(inner.qe_identity.as_bytes());
        field(&inner.qe_identity_signature);
        field(
            inner
                .pck_certificate_chain
                .as_deref()
                .unwrap_or("")
                .as_bytes(),
        );
        let mut hash = [0u8; 32];
        hash.copy_from_slice(ctx.finish().as_ref());
        Collateral { inner, hash }
    }

    /// Parses the JSON file format (hex binary fields, PEM chains).
    pub fn from_json(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.len() > MAX_COLLATERAL_FILE {
            return Err(VerifyError::TooLarge {
                what: "collateral JSON",
                size: bytes.len(),
                limit: MAX_COLLATERAL_FILE,
            });
        }
        let j: CollateralJson =
            serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let h = |name: &str, v: &str| {
            hex::decode(v.trim()).map_err(|e| malformed(format!("{name} is not hex: {e}")))
        };
        Ok(Collateral::new(QuoteCollateralV3 {
            root_ca_crl: h("root_ca_crl", &j.root_ca_crl)?,
            pck_crl: h("pck_crl", &j.pck_crl)?,
            tcb_info_signature: h("tcb_info_signature", &j.tcb_info_signature)?,
            qe_identity_signature: h("qe_identity_signature", &j.qe_identity_signature)?,
            pck_crl_issuer_chain: j.pck_crl_issuer_chain,
            tcb_info_issuer_chain: j.tcb_info_issuer_chain,
            tcb_info: j.tcb_info,
            qe_identity_issuer_chain: j.qe_identity_issuer_chain,
            qe_identity: j.qe_identity,
            pck_certificate_chain: j.pck_certificate_chain,
        }))
    }

    /// Serialises to the JSON file format.
    pub fn to_json(&self) -> String {
        let i = &self.inner;
        serde_json::to_string_pretty(&CollateralJson {
            pck_crl_issuer_chain: i.pck_crl_issuer_chain.clone(),
            root_ca_crl: hex::encode(&i.root_ca_crl),
            pck_crl: hex::encode(&i.pck_crl),
            tcb_info_issuer_chain: i.tcb_info_issuer_chain.clone(),
            tcb_info: i.tcb_info.clone(),
            tcb_info_signature: hex::encode(&i.tcb_info_signature),
            qe_identity_issuer_chain: i.qe_identity_issuer_chain.clone(),
            qe_identity: i.qe_identity.clone(),
            qe_identity_signature: hex::encode(&i.qe_identity_signature),
            pck_certificate_chain: i.pck_certificate_chain.clone(),
        })
        .unwrap_or_default()
    }

    /// Reads a collateral JSON file.
    pub fn from_file(path: &Path) -> Result<Self, VerifyError> {
        let bytes = read_limited(path, MAX_COLLATERAL_FILE)?;
        Self::from_json(&bytes).map_err(|e| match e {
            VerifyError::Malformed { what, detail } => VerifyError::Malformed {
                what,
                detail: format!("{}: {detail}", path.display()),
            },
            e => e,
        })
    }

    /// (TEE, FMSPC) named by the TCB info, without verifying anything.
    fn key(&self) -> Option<(TeeKind, [u8; 6])> {
        #[derive(Deserialize)]
        struct Head {
            id: String,
            fmspc: String,
        }
        let h: Head = serde_json::from_str(&self.inner.tcb_info).ok()?;
        let tee = match h.id.as_str() {
            "SGX" => TeeKind::Sgx,
            "TDX" => TeeKind::Tdx,
            _ => return None,
        };
        let f = hex::decode(&h.fmspc).ok()?;
        Some((tee, f.try_into().ok()?))
    }
}

/// Reads a file of at most `limit` bytes.
pub(crate) fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>, VerifyError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| {
        VerifyError::CollateralUnavailable(format!("cannot open {}: {e}", path.display()))
    })?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| {
            VerifyError::CollateralUnavailable(format!("cannot read {}: {e}", path.display()))
        })?;
    if buf.len() > limit {
        return Err(VerifyError::TooLarge {
            what: "file",
            size: buf.len(),
            limit,
        });
    }
    Ok(buf)
}

/// Writes a cache file (fetched collateral, a fetched VCEK) through a
/// temporary file in the same directory and a rename, so a reader never
/// sees half a file. Best effort: the cache only saves a fetch, so a
/// failure is logged, not returned.
pub(crate) fn write_cache_file(path: &Path, bytes: &[u8]) {
    // Unique per writer: two verifications fetching the same item at once
    // must not write into one temporary file.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}.{seq}", std::process::id()));
    let tmp = path.with_file_name(name);
    let r = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(error = %e, "cannot write cache file {}", path.display());
    }
}

/// What collateral a quote needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CollateralRequest {
    /// SGX or TDX.
    pub tee: TeeKind,
    /// FMSPC from the PCK certificate.
    pub fmspc: [u8; 6],
    /// The CA that issued the PCK certificate (selects the PCK CRL).
    pub ca: PckCa,
}

/// Where collateral comes from.
pub trait CollateralSource: Send + Sync {
    /// Collateral for `req`, valid at `now` if the source can tell.
    fn get(&self, req: &CollateralRequest, now: u64) -> Result<Arc<Collateral>, VerifyError>;
}

/// One fixed collateral set (e.g. `--collateral FILE`).
pub struct StaticCollateral(pub Arc<Collateral>);

impl CollateralSource for StaticCollateral {
    fn get(&self, _req: &CollateralRequest, _now: u64) -> Result<Arc<Collateral>, VerifyError> {
        Ok(self.0.clone())
    }
}

/// Collateral sets of a directory by (TEE, FMSPC).
type DirIndex = HashMap<(TeeKind, [u8; 6]), Vec<Arc<Collateral>>>;

/// A directory of collateral JSON files for air-gapped sites: every
/// `*.json` file is read and indexed by the TEE and FMSPC of its TCB info.
/// The directory is rescanned when a request finds nothing valid, so an
/// operator can drop in fresh files without a restart.
pub struct DirCollateral {
    dir: PathBuf,
    index: Mutex<DirIndex>,
}

/// Most files read from a collateral directory.
const MAX_DIR_FILES: usize = 4096;

impl DirCollateral {
    /// Indexes `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, VerifyError> {
        let d = DirCollateral {
            dir: dir.into(),
            index: Mutex::new(HashMap::new()),
        };
        d.rescan()?;
        Ok(d)
    }

    fn rescan(&self) -> Result<(), VerifyError> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| {
            VerifyError::CollateralUnavailable(format!(
                "cannot read collateral directory {}: {e}",
                self.dir.display()
            ))
        })?;
        let mut index: HashMap<_, Vec<Arc<Collateral>>> = HashMap::new();
        for entry in rd.flatten().take(MAX_DIR_FILES) {
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            // Unreadable or foreign files are skipped: the directory may hold
            // other things; a missing entry is reported at lookup.
            let Ok(c) = Collateral::from_file(&p) else {
                tracing::warn!(file = %p.display(), "skipping unreadable collateral file");
                continue;
            };
            if let Some(k) = c.key() {
                index.entry(k).or_default().push(Arc::new(c));
            }
        }
        if let Ok(mut i) = self.index.lock() {
            *i = index;
        }
        Ok(())
    }

    fn lookup(&self, req: &CollateralRequest) -> Vec<Arc<Collateral>> {
        self.index
            .lock()
            .map(|i| i.get(&(req.tee, req.fmspc)).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl CollateralSource for DirCollateral {
    fn get(&self, req: &CollateralRequest, now: u64) -> Result<Arc<Collateral>, VerifyError> {
        let pick = |cands: Vec<Arc<Collateral>>| -> Option<Arc<Collateral>> {
            // Prefer a set whose TCB info is current at `now`, newest first.
            let mut best: Option<(u64, Arc<Collateral>)> = None;
            for c in cands {
                let dates = crate::dcap::tcb_info_dates(&c.inner.tcb_info);
                let (issue, next) = dates.unwrap_or((0, 0));
                let current = issue <= now && now <= next;
                let score = if current { issue + 1 } else { 0 };
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((score, c));
                }
            }
            best.map(|(_, c)| c)
        };
        if let Some(c) = pick(self.lookup(req)) {
            let (issue, next) = crate::dcap::tcb_info_dates(&c.inner.tcb_info).unwrap_or((0, 0));
            if issue <= now && now <= next {
                return Ok(c);
            }
        }
        self.rescan()?;
        pick(self.lookup(req)).ok_or_else(|| {
            VerifyError::CollateralUnavailable(format!(
                "no collateral for {} FMSPC {} in {}",
                req.tee,
                hex::encode_upper(req.fmspc),
                self.dir.display()
            ))
        })
    }
}

/// Intel's Provisioning Certification Service.
pub const INTEL_PCS_URL: &str = "https://api.trustedservices.intel.com";
/// Where Intel publishes the SGX root CA CRL (the PCS has no endpoint for it).
pub const INTEL_ROOT_CRL_URL: &str =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";
/// Collateral is refreshed this long before any part of it expires.
pub const REFRESH_MARGIN: u64 = 24 * 3600;

impl Collateral {
    /// The earliest `nextUpdate` of the TCB info, QE identity and CRLs
    /// (unverified: used only to decide when to refresh).
    pub fn next_update(&self) -> Option<u64> {
        let i = &self.inner;
        let (_, tcb) = crate::dcap::tcb_info_dates(&i.tcb_info)?;
        let (_, qe) = crate::dcap::tcb_info_dates(&i.qe_identity)?;
        let mut m = tcb.min(qe);
        for crl in [&i.root_ca_crl, &i.pck_crl] {
            if let Ok(d) = crate::der::crl_dates("CRL", crl) {
                if let Some(n) = d.next_update {
                    m = m.min(n);
                }
            }
        }
        Some(m)
    }
}

/// Collateral from a PCCS-compatible service (Intel PCS or a local PCCS,
/// API v4) with an in-memory and optional on-disk cache
/// (`<dir>/<tee>-<FMSPC>-<ca>.json`, the collateral JSON format).
///
/// A cached set is used until [`REFRESH_MARGIN`] before its earliest
/// `nextUpdate`; then it is fetched again. If the service cannot be reached
/// the cached set keeps being used while it is still valid (verification
/// refuses it once expired, naming what expired).
pub struct PccsCollateral {
    base: String,
    cache_dir: Option<PathBuf>,
    memory: Mutex<HashMap<PccsKey, Arc<Collateral>>>,
}

/// (TEE, FMSPC, PCK CA): what one collateral set is for.
type PccsKey = (TeeKind, [u8; 6], PckCa);

/// Which Intel CA issued a PCK certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PckCa {
    /// Intel SGX PCK Processor CA.
    Processor,
    /// Intel SGX PCK Platform CA.
    Platform,
}

impl PckCa {
    fn as_str(self) -> &'static str {
        match self {
            PckCa::Processor => "processor",
            PckCa::Platform => "platform",
        }
    }
}

#[derive(Deserialize)]
struct TcbInfoResponse<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a serde_json::value::RawValue,
    signature: String,
}

#[derive(Deserialize)]
struct QeIdentityResponse<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    enclave_identity: &'a serde_json::value::RawValue,
    signature: String,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> VerifyError {
    VerifyError::CollateralUnavailable(format!("{what}: {e}"))
}

impl PccsCollateral {
    /// A source fetching from `base` (e.g. `https://api.trustedservices.intel.com`
    /// or `http://127.0.0.1:8081`), caching on disk in `cache_dir` if given.
    pub fn new(base: &str, cache_dir: Option<PathBuf>) -> Result<Self, VerifyError> {
        let base = base
            .trim_end_matches('/')
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_string();
        if let Some(d) = &cache_dir {
            std::fs::create_dir_all(d).map_err(|e| {
                unavailable(&format!("cannot create cache directory {}", d.display()), e)
            })?;
        }
        Ok(PccsCollateral {
            base,
            cache_dir,
            memory: Mutex::new(HashMap::new()),
        })
    }

    fn cache_path(&self, tee: TeeKind, fmspc: [u8; 6], ca: PckCa) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| {
            d.join(format!(
                "{tee}-{}-{}.json",
                hex::encode_upper(fmspc),
                ca.as_str()
            ))
        })
    }

    fn fetch_ok(&self, url: &str) -> Result<crate::http::Response, VerifyError> {
        let r = crate::http::get(url).map_err(|e| unavailable("PCCS request failed", e))?;
        if r.status != 200 {
            return Err(unavailable(
                "PCCS request failed",
                format!("{url} answered HTTP {}", r.status),
            ));
        }
        Ok(r)
    }

    fn header(r: &crate::http::Response, names: &[&str]) -> Result<String, VerifyError> {
        for n in names {
            if let Some(v) = r.header(n) {
                return crate::http::percent_decode(v)
                    .map_err(|e| unavailable(&format!("bad {n} header"), e));
            }
        }
        Err(unavailable(
            "PCCS response",
            format!("no {} header", names[0]),
        ))
    }

    /// Fetches a fresh collateral set.
    pub fn fetch(
        &self,
        tee: TeeKind,
        fmspc: [u8; 6],
        ca: PckCa,
    ) -> Result<Collateral, VerifyError> {
        let t = match tee {
            TeeKind::Tdx => "tdx",
            _ => "sgx",
        };
        let b = &self.base;
        let fm = hex::encode_upper(fmspc);
        let crl = self.fetch_ok(&format!(
            "{b}/sgx/certification/v4/pckcrl?ca={}&encoding=der",
            ca.as_str()
        ))?;
        let pck_crl_issuer_chain = Self::header(&crl, &["SGX-PCK-CRL-Issuer-Chain"])?;
        // A PCCS may answer the CRL in hex rather than DER.
        let pck_crl = decode_crl(crl.body);
        let tcb = self.fetch_ok(&format!("{b}/{t}/certification/v4/tcb?fmspc={fm}"))?;
        let tcb_info_issuer_chain = Self::header(
            &tcb,
            &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
        )?;
        let tr: TcbInfoResponse =
            serde_json::from_slice(&tcb.body).map_err(|e| unavailable("TCB info response", e))?;
        let qe = self.fetch_ok(&format!("{b}/{t}/certification/v4/qe/identity"))?;
        let qe_identity_issuer_chain = Self::header(&qe, &["SGX-Enclave-Identity-Issuer-Chain"])?;
        let qr: QeIdentityResponse =
            serde_json::from_slice(&qe.body).map_err(|e| unavailable("QE identity response", e))?;
        let root_url = if self.base.starts_with(INTEL_PCS_URL) {
            INTEL_ROOT_CRL_URL.to_string()
        } else {
            format!("{b}/sgx/certification/v4/rootcacrl")
        };
        let root_ca_crl = decode_crl(self.fetch_ok(&root_url)?.body);
        let hx = |what: &str, s: &str| hex::decode(s).map_err(|e| unavailable(what, e));
        Ok(Collateral::new(QuoteCollateralV3 {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain,
            tcb_info: tr.tcb_info.get().to_string(),
            tcb_info_signature: hx("TCB info signature", &tr.signature)?,
            qe_identity_issuer_chain,
            qe_identity: qr.enclave_identity.get().to_string(),
            qe_identity_signature: hx("QE identity signature", &qr.signature)?,
            pck_certificate_chain: None,
        }))
    }

    /// Collateral for (tee, fmspc, ca) at `now`, refreshing as needed.
    pub fn get_for(
        &self,
        tee: TeeKind,
        fmspc: [u8; 6],
        ca: PckCa,
        now: u64,
    ) -> Result<Arc<Collateral>, VerifyError> {
        let key = (tee, fmspc, ca);
        let fresh = |c: &Collateral| c.next_update().is_some_and(|n| now + REFRESH_MARGIN < n);
        let mut cached = self.memory.lock().ok().and_then(|m| m.get(&key).cloned());
        if cached.is_none() {
            if let Some(p) = self.cache_path(tee, fmspc, ca).filter(|p| p.is_file()) {
                cached = Collateral::from_file(&p).ok().map(Arc::new);
            }
        }
        if let Some(c) = &cached {
            if fresh(c) {
                self.remember(key, c.clone());
                return Ok(c.clone());
            }
        }
        match self.fetch(tee, fmspc, ca) {
            Ok(c) => {
                let c = Arc::new(c);
                if let Some(p) = self.cache_path(tee, fmspc, ca) {
                    write_cache_file(&p, c.to_json().as_bytes());
                }
                self.remember(key, c.clone());
                Ok(c)
            }
            Err(e) => match cached {
                // Still usable: verification refuses it once really expired.
                Some(c) => {
                    tracing::warn!(error = %e, "collateral refresh failed; using cached collateral");
                    Ok(c)
                }
                None => Err(e),
            },
        }
    }

    fn remember(&self, key: PccsKey, c: Arc<Collateral>) {
        if let Ok(mut m) = self.memory.lock() {
            m.insert(key, c);
        }
    }
}

fn decode_crl(body: Vec<u8>) -> Vec<u8> {
    match std::str::from_utf8(&body) {
        Ok(s) if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
            hex::decode(s.trim()).unwrap_or(body)
        }
        _ => body,
    }
}

impl CollateralSource for PccsCollateral {
    fn get(&self, req: &CollateralRequest, now: u64) -> Result<Arc<Collateral>, VerifyError> {
        self.get_for(req.tee, req.fmspc, req.ca, now)
    }
}
