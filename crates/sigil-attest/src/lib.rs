//! Verification of TEE evidence (SGX DCAP, TDX, SEV-SNP, simulation) into
//! normalised [`Claims`], and the policy [`decide`](policy::decide).
//!
//! The flow in the CAS is: the launcher sends an [`Evidence`]; a [`Verifier`]
//! checks that it is genuine (signatures, certificate chains, revocation,
//! collateral freshness at a given time) and turns it into [`Claims`];
//! [`policy::decide`] then checks the claims against the session's rules and
//! security section, including the report-data binding to the TLS channel.
//!
//! Verification never refuses for reasons that are a matter of policy (TCB
//! status, debug mode, TDX service TDs, SEPT_VE_DISABLE, simulation): those
//! become claims, and `decide` refuses them unless the session tolerates them.
//!
//! The wire format of evidence and the claims are specified in
//! `docs/evidence.md`.

pub mod claims;
pub mod collateral;
pub mod dcap;
mod der;
pub mod evidence;
pub mod http;
pub mod policy;
pub mod session;
pub mod sgx;
pub mod simulation;
pub mod snp;
pub mod tdx;
pub mod time_util;

pub use claims::{Claims, SnpTcb, SnpTcbs, TcbStatus};
pub use evidence::{Evidence, TeeKind};
pub use policy::{decide, Decision, Reason, Rule, SecurityPolicy, Tolerance};

/// Why evidence could not be verified. Every variant names what is wrong, in
/// words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The evidence or a structure inside it could not be parsed.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being parsed (e.g. "SGX quote", "VCEK certificate").
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A size limit was exceeded.
    #[error("{what} is too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A signature did not verify.
    #[error("invalid signature: {0}")]
    BadSignature(String),
    /// A certificate chain did not lead to the trusted root, or a certificate
    /// in it is revoked or outside its validity period.
    #[error("certificate chain of {what} rejected: {detail}")]
    BadChain {
        /// Which chain.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A piece of collateral is not valid at the verification time.
    #[error("collateral expired: {0}")]
    CollateralExpired(String),
    /// Collateral is missing or could not be fetched.
    #[error("collateral unavailable: {0}")]
    CollateralUnavailable(String),
    /// The evidence is well-formed and signed but its content is not
    /// acceptable under any policy (e.g. no matching TCB level, revoked TCB,
    /// QE identity mismatch).
    #[error("evidence rejected: {0}")]
    Rejected(String),
    /// This verifier does not handle that kind of evidence.
    #[error("no verifier configured for {0} evidence")]
    Unsupported(TeeKind),
}

/// Verifies one kind of evidence into normalised claims.
///
/// `now` is the verification time in Unix seconds: the CAS passes its clock,
/// tests pin it (real collateral expires).
pub trait Verifier: Send + Sync {
    /// The kind of evidence this verifier handles.
    fn kind(&self) -> TeeKind;
    /// Checks that `evidence` is genuine at time `now` and returns its claims.
    fn verify(&self, evidence: &Evidence, now: u64) -> Result<Claims, VerifyError>;
}

/// A set of verifiers, one per TEE kind; dispatches on [`Evidence::kind`].
#[derive(Default)]
pub struct Verifiers {
    verifiers: Vec<Box<dyn Verifier>>,
}

impl Verifiers {
    /// An empty set (refuses every evidence as unsupported).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a verifier; a later one for the same kind replaces an earlier one.
    pub fn with(mut self, v: Box<dyn Verifier>) -> Self {
        self.verifiers.retain(|x| x.kind() != v.kind());
        self.verifiers.push(v);
        self
    }

    /// Verifies `evidence` with the verifier for its kind.
    pub fn verify(&self, evidence: &Evidence, now: u64) -> Result<Claims, VerifyError> {
        self.verifiers
            .iter()
            .find(|v| v.kind() == evidence.kind)
            .ok_or(VerifyError::Unsupported(evidence.kind))?
            .verify(evidence, now)
    }
}
