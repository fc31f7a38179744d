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

/// What collateral a quote needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CollateralRequest {
    /// SGX or TDX.
    pub tee: TeeKind,
    /// FMSPC from the PCK certificate.
    pub fmspc: [u8; 6],
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

/// A directory of collateral JSON files for air-gapped sites: every
/// `*.json` file is read and indexed by the TEE and FMSPC of its TCB info.
/// The directory is rescanned when a request finds nothing valid, so an
/// operator can drop in fresh files without a restart.
pub struct DirCollateral {
    dir: PathBuf,
    index: Mutex<HashMap<(TeeKind, [u8; 6]), Vec<Arc<Collateral>>>>,
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
