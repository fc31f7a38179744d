//! The parsed session model. Every type can be built in code (public fields,
//! `Default` where a default exists) so tools such as `sigil convert` can
//! generate sessions and write them with [`Session::to_yaml`](crate::Session::to_yaml).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use zeroize::Zeroizing;

/// Longest accepted session name (all namespace segments and slashes).
pub const MAX_SESSION_NAME_LEN: usize = 255;
/// Longest accepted segment of a session name, and longest service, secret,
/// volume or image name.
pub const MAX_NAME_LEN: usize = 128;

/// A parsed and validated session: which services may run, which secrets they
/// receive and who may read or change the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Unique name, optionally namespaced with `/`.
    pub name: SessionName,
    /// Free-form version string (SCONE sessions use it for the language version, e.g. `"0.3"`).
    pub version: Option<String>,
    /// Hash of the session this one replaces; `None` for a new session.
    pub predecessor: Option<SessionHash>,
    /// Services allowed to attest against this session.
    pub services: Vec<Service>,
    /// Secrets generated, given or imported by this session.
    pub secrets: Vec<Secret>,
    /// Encrypted volumes.
    pub volumes: Vec<Volume>,
    /// Images: volumes to mount and files to inject.
    pub images: Vec<Image>,
    /// Who may read, update and create sessions.
    pub access_policy: AccessPolicy,
    /// Attestation mode and tolerated platform weaknesses.
    pub security: Security,
}

impl Session {
    /// An empty session with default policy and security (hardware attestation).
    pub fn new(name: SessionName) -> Session {
        Session {
            name,
            version: None,
            predecessor: None,
            services: Vec::new(),
            secrets: Vec::new(),
            volumes: Vec::new(),
            images: Vec::new(),
            access_policy: AccessPolicy::default(),
            security: Security::default(),
        }
    }

    /// The secret called `name`, if any.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|s| s.name == name)
    }

    /// The service called `name`, if any.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The image called `name`, if any.
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|s| s.name == name)
    }

    /// The volume called `name`, if any.
    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|s| s.name == name)
    }
}

/// SHA-256 hash of a session's canonical form (see `docs/session-language.md`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionHash(pub [u8; 32]);

impl fmt::Display for SessionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHash({self})")
    }
}

/// Error for a malformed session hash string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session hash is 64 hexadecimal digits")]
pub struct InvalidSessionHash;

impl FromStr for SessionHash {
    type Err = InvalidSessionHash;
    /// Accepts 64 hex digits (either case); `Display` always writes lowercase.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(InvalidSessionHash);
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| InvalidSessionHash)?;
        Ok(SessionHash(out))
    }
}

impl serde::Serialize for SessionHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SessionHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A validated session name: `/`-separated segments of `[A-Za-z0-9_.~-]{1,128}`,
/// at most 255 characters, no `.` or `..` segment.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionName(pub(crate) String);

/// Why a session name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session name: {0}")]
pub struct InvalidSessionName(pub &'static str);

impl SessionName {
    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace: everything before the last `/`, if there is one.
    pub fn namespace(&self) -> Option<&str> {
        self.0.rfind('/').map(|i| &self.0[..i])
    }
}

impl FromStr for SessionName {
    type Err = InvalidSessionName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(InvalidSessionName("it is empty"));
        }
        if s.len() > MAX_SESSION_NAME_LEN {
            return Err(InvalidSessionName("it is longer than 255 characters"));
        }
        for seg in s.split('/') {
            if seg.is_empty() {
                return Err(InvalidSessionName(
                    "a namespace segment is empty (leading, trailing or double '/')",
                ));
            }
            if seg.len() > MAX_NAME_LEN {
                return Err(InvalidSessionName(
                    "a segment is longer than 128 characters",
                ));
            }
            if seg == "." || seg == ".." {
                return Err(InvalidSessionName(
                    "'.' and '..' are not allowed as segments",
                ));
            }
            if !seg.bytes().all(is_session_name_byte) {
                return Err(InvalidSessionName(
                    "only A-Z a-z 0-9 _ . ~ - and '/' between namespace segments are allowed",
                ));
            }
        }
        Ok(SessionName(s.to_owned()))
    }
}

fn is_session_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~' | b'-')
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionName({:?})", self.0)
    }
}

impl serde::Serialize for SessionName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SessionName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A service (program) that may attest against this session.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Service {
    /// Unique within the session.
    pub name: String,
    /// argv; empty means "the image's own command".
    pub command: Vec<String>,
    /// Environment given to the service (may contain placeholders).
    pub environment: BTreeMap<String, String>,
    /// Working directory (absolute).
    pub pwd: Option<String>,
    /// Name of an [`Image`] of this session.
    pub image_name: Option<String>,
    /// Accepted measurements: the service attests if ANY rule matches; a rule
    /// matches if ALL of its fields match.
    pub attestation: Vec<AttestationRule>,
}

/// One attestation rule: every `Some` field must match the evidence.
/// Fields of different TEEs are not mixed within a rule (validation refuses it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AttestationRule {
    /// SGX MRENCLAVE.
    pub mrenclave: Option<[u8; 32]>,
    /// SGX MRSIGNER; requires `isvprodid`.
    pub mrsigner: Option<[u8; 32]>,
    /// SGX ISVPRODID (with `mrsigner`).
    pub isvprodid: Option<u16>,
    /// Minimum SGX ISVSVN (with `mrsigner`); `None` means 0.
    pub isvsvn_min: Option<u16>,
    /// TDX MRTD.
    pub mrtd: Option<[u8; 48]>,
    /// TDX RTMR0..3.
    pub rtmr: [Option<[u8; 48]>; 4],
    /// SEV-SNP launch measurement.
    pub snp_measurement: Option<[u8; 48]>,
    /// Measurement reported by a simulated enclave; only honoured when
    /// `security.attestation.mode` is `simulation`.
    pub simulation_measurement: Option<[u8; 32]>,
}

impl AttestationRule {
    /// True if the rule constrains nothing (validation refuses such rules).
    pub fn is_empty(&self) -> bool {
        *self == AttestationRule::default()
    }
}

/// A secret of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// Unique within the session; used in placeholders.
    pub name: String,
    /// What the secret is and how it is made.
    pub kind: SecretKind,
    /// Sessions allowed to import this secret.
    pub export: Vec<SecretExport>,
    /// Set if (and only if) `kind` is [`SecretKind::Imported`].
    pub import: Option<SecretImport>,
}

/// What a secret is. Random and key kinds are generated by the CAS on first use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// Random printable ASCII string of `size` characters.
    Ascii {
        /// Number of characters.
        size: usize,
    },
    /// Random bytes.
    Binary {
        /// Number of bytes.
        size: usize,
    },
    /// A value given in the session itself.
    Explicit {
        /// The value (redacted in `Debug`).
        value: SecretValue,
    },
    /// A private key: generated by the CAS, or given in the session.
    PrivateKey {
        /// Key algorithm.
        algorithm: KeyAlgorithm,
        /// A key given in the session: PKCS#8 DER (the parser normalises PEM,
        /// PKCS#1 and SEC1 to it). `None`: the CAS generates the key.
        value: Option<SecretValue>,
    },
    /// A self-signed CA certificate with its key.
    X509Ca {
        /// Subject common name; `None` lets the CAS choose (session and secret name).
        common_name: Option<String>,
        /// Validity; `None` lets the CAS choose.
        valid_for: Option<Duration>,
        /// Key algorithm.
        algorithm: KeyAlgorithm,
    },
    /// A certificate issued by an `x509-ca` secret, with its key.
    X509 {
        /// Name of an `x509-ca` secret of this session, or of an imported secret.
        issuer: String,
        /// Subject common name.
        common_name: String,
        /// DNS subject alternative names.
        dns: Vec<String>,
        /// Validity.
        valid_for: Duration,
        /// Key algorithm.
        algorithm: KeyAlgorithm,
    },
    /// Imported from another session (see [`Secret::import`]).
    Imported,
}

impl SecretKind {
    /// The YAML / canonical spelling of the kind.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretKind::Ascii { .. } => "ascii",
            SecretKind::Binary { .. } => "binary",
            SecretKind::Explicit { .. } => "explicit",
            SecretKind::PrivateKey { .. } => "private-key",
            SecretKind::X509Ca { .. } => "x509-ca",
            SecretKind::X509 { .. } => "x509",
            SecretKind::Imported => "imported",
        }
    }
}

/// Default validity of an `x509` certificate when `valid_for` is omitted: 365 days.
pub const DEFAULT_X509_VALID_FOR: Duration = Duration::from_secs(365 * 86_400);
/// Default size of random `ascii` and `binary` secrets when `size` is omitted.
pub const DEFAULT_RANDOM_SECRET_SIZE: usize = 32;

/// An explicit secret value. Zeroized on drop, redacted in `Debug`, compared in
/// constant time.
#[derive(Clone)]
pub struct SecretValue {
    bytes: Zeroizing<Vec<u8>>,
    /// For a private key: ring's verdict on the bytes, computed at most once
    /// (parsing an RSA key is the expensive part of reading a session, and
    /// the parser, validation and the CAS all need the verdict).
    key_check: std::sync::OnceLock<Result<KeyAlgorithm, crate::keys::KeyError>>,
}

impl SecretValue {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> SecretValue {
        SecretValue {
            bytes: Zeroizing::new(bytes),
            key_check: std::sync::OnceLock::new(),
        }
    }

    /// A PKCS#8 key the parser just had ring accept as `algorithm`.
    pub(crate) fn checked_private_key(der: Vec<u8>, algorithm: KeyAlgorithm) -> SecretValue {
        let v = SecretValue::new(der);
        let _ = v.key_check.set(Ok(algorithm));
        v
    }

    /// The secret bytes. Do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The algorithm ring parses these bytes (PKCS#8 DER) as
    /// ([`crate::keys::pkcs8_algorithm`]). Ring runs at most once per value:
    /// the verdict is kept (a value parsed from a document already has it).
    pub fn private_key_algorithm(&self) -> Result<KeyAlgorithm, crate::keys::KeyError> {
        self.key_check
            .get_or_init(|| crate::keys::pkcs8_algorithm(&self.bytes))
            .clone()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        // Lengths are not secret; contents are compared in constant time.
        use subtle::ConstantTimeEq;
        bool::from(self.bytes[..].ct_eq(&other.bytes[..]))
    }
}
impl Eq for SecretValue {}

/// Key algorithms for `private-key`, `x509-ca` and `x509` secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
}

impl KeyAlgorithm {
    /// Canonical spelling: `ecdsa-p256`, `ecdsa-p384`, `ed25519`, `rsa-2048`, `rsa-3072`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
        }
    }

    /// Parses the canonical spelling or an alias (`p256`, `P-256`, `secp256r1`,
    /// `prime256v1`, `p384`, `P-384`, `secp384r1`, `rsa2048`, `rsa3072`), case-insensitively.
    pub fn parse(s: &str) -> Option<KeyAlgorithm> {
        Some(match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "p256" | "p-256" | "secp256r1" | "prime256v1" => KeyAlgorithm::EcdsaP256,
            "ecdsa-p384" | "p384" | "p-384" | "secp384r1" => KeyAlgorithm::EcdsaP384,
            "ed25519" => KeyAlgorithm::Ed25519,
            "rsa-2048" | "rsa2048" => KeyAlgorithm::Rsa2048,
            "rsa-3072" | "rsa3072" => KeyAlgorithm::Rsa3072,
            _ => return None,
        })
    }
}

/// Permission for another session to import a secret.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretExport {
    /// Name of the session allowed to import the secret.
    pub session: String,
}

/// Where an imported secret comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretImport {
    /// Name of the exporting session.
    pub session: String,
    /// Name of the secret in the exporting session.
    pub secret: String,
    /// The kind this session expects (SCONE files write `kind:` next to
    /// `import:`). Placeholders are checked against it; the CAS must refuse
    /// to resolve the import if the exported secret does not
    /// [match](ImportKind::matches) it. `None`: any kind.
    pub kind: Option<ImportKind>,
}

/// The kind an importing session expects of an imported secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImportKind {
    /// `ascii`: a random ASCII secret or an explicit value.
    Ascii,
    /// `binary`: a random binary secret or an explicit value.
    Binary,
    /// `explicit`: an explicit value.
    Explicit,
    /// `private-key`.
    PrivateKey,
    /// `x509-ca`.
    X509Ca,
    /// `x509`.
    X509,
}

impl ImportKind {
    /// The YAML spelling (same as the secret kinds).
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Ascii => "ascii",
            ImportKind::Binary => "binary",
            ImportKind::Explicit => "explicit",
            ImportKind::PrivateKey => "private-key",
            ImportKind::X509Ca => "x509-ca",
            ImportKind::X509 => "x509",
        }
    }

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<ImportKind> {
        Some(match s {
            "ascii" => ImportKind::Ascii,
            "binary" => ImportKind::Binary,
            "explicit" => ImportKind::Explicit,
            "private-key" => ImportKind::PrivateKey,
            "x509-ca" => ImportKind::X509Ca,
            "x509" => ImportKind::X509,
            _ => return None,
        })
    }

    /// Whether an exported secret of kind `exported` satisfies this
    /// expectation. Explicit values satisfy `ascii` and `binary` (SCONE
    /// gives explicit values those kinds).
    pub fn matches(self, exported: &SecretKind) -> bool {
        matches!(
            (self, exported),
            (
                ImportKind::Ascii,
                SecretKind::Ascii { .. } | SecretKind::Explicit { .. }
            ) | (
                ImportKind::Binary,
                SecretKind::Binary { .. } | SecretKind::Explicit { .. }
            ) | (ImportKind::Explicit, SecretKind::Explicit { .. })
                | (ImportKind::PrivateKey, SecretKind::PrivateKey { .. })
                | (ImportKind::X509Ca, SecretKind::X509Ca { .. })
                | (ImportKind::X509, SecretKind::X509 { .. })
        )
    }

    /// A representative kind, for checks that only depend on the kind's class.
    pub(crate) fn representative(self) -> SecretKind {
        match self {
            ImportKind::Ascii => SecretKind::Ascii { size: 1 },
            ImportKind::Binary => SecretKind::Binary { size: 1 },
            ImportKind::Explicit => SecretKind::Explicit {
                value: SecretValue::new(Vec::new()),
            },
            ImportKind::PrivateKey => SecretKind::PrivateKey {
                algorithm: KeyAlgorithm::default(),
                value: None,
            },
            ImportKind::X509Ca => SecretKind::X509Ca {
                common_name: None,
                valid_for: None,
                algorithm: KeyAlgorithm::default(),
            },
            ImportKind::X509 => SecretKind::X509 {
                issuer: String::new(),
                common_name: String::new(),
                dns: Vec::new(),
                valid_for: DEFAULT_X509_VALID_FOR,
                algorithm: KeyAlgorithm::default(),
            },
        }
    }
}

/// An encrypted volume.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Volume {
    /// Unique within the session.
    pub name: String,
    /// Key the volume was sealed with (when it was made outside the CAS).
    pub key: Option<VolumeKeyHex>,
    /// Tag (authenticated root) of the sealed volume.
    pub tag: Option<[u8; 32]>,
}

/// A 32-byte volume key (hex in YAML). Zeroized on drop, redacted in `Debug`,
/// compared in constant time.
#[derive(Clone)]
pub struct VolumeKeyHex(Zeroizing<[u8; 32]>);

impl VolumeKeyHex {
    /// Wraps a key.
    pub fn new(key: [u8; 32]) -> VolumeKeyHex {
        VolumeKeyHex(Zeroizing::new(key))
    }

    /// The key bytes. Do not log them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for VolumeKeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VolumeKeyHex(<redacted>)")
    }
}

impl PartialEq for VolumeKeyHex {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0[..].ct_eq(&other.0[..]))
    }
}
impl Eq for VolumeKeyHex {}

/// An image: the volumes it mounts and the files injected into it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Image {
    /// Unique within the session.
    pub name: String,
    /// Volumes mounted into the image.
    pub volumes: Vec<ImageVolume>,
    /// Files written into the image's file system before the service starts.
    pub injection_files: Vec<InjectionFile>,
}

/// A volume mount of an image.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ImageVolume {
    /// Name of a [`Volume`] of this session.
    pub name: String,
    /// Absolute mount path.
    pub path: String,
}

/// A file injected into an image (content may contain placeholders).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectionFile {
    /// Absolute path.
    pub path: String,
    /// Content, with placeholders substituted at injection time.
    pub content: String,
    /// Permission bits (at most `0o7777`).
    pub mode: u32,
}

/// Default mode of an injected file: `0o600` (they usually contain secrets).
pub const DEFAULT_INJECTION_MODE: u32 = 0o600;

/// Who may read or update the session, and create sessions (in its namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    /// May read the session.
    pub read: Vec<Principal>,
    /// May replace the session by a successor.
    pub update: Vec<Principal>,
    /// May create sessions in this session's namespace.
    pub create_sessions: Vec<Principal>,
}

impl Default for AccessPolicy {
    /// `[CREATOR]` for each permission.
    fn default() -> Self {
        AccessPolicy {
            read: vec![Principal::Creator],
            update: vec![Principal::Creator],
            create_sessions: vec![Principal::Creator],
        }
    }
}

/// A party in an access policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// The client that created the session.
    Creator,
    /// Any client.
    Any,
    /// No client (`NONE` in YAML).
    Nobody,
    /// A client whose certificate's SubjectPublicKeyInfo has this SHA-256 hash.
    Fingerprint([u8; 32]),
}

impl fmt::Display for Principal {
    /// `CREATOR`, `ANY`, `NONE` or 64 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Creator => f.write_str("CREATOR"),
            Principal::Any => f.write_str("ANY"),
            Principal::Nobody => f.write_str("NONE"),
            Principal::Fingerprint(fp) => f.write_str(&hex::encode(fp)),
        }
    }
}

/// Error for a string that is not a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected CREATOR, ANY, NONE or a 64-hex-digit SPKI SHA-256 fingerprint")]
pub struct InvalidPrincipal;

impl FromStr for Principal {
    type Err = InvalidPrincipal;
    /// `CREATOR`, `ANY`, `NONE` (any case) or 64 hex digits, optionally
    /// with `:` between bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse::parse_principal(s).ok_or(InvalidPrincipal)
    }
}

/// Attestation security settings.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Security {
    /// Hardware (default) or simulation.
    pub attestation_mode: AttestationMode,
    /// Platform weaknesses accepted in attestation evidence.
    pub tolerate: BTreeSet<Tolerance>,
    /// Advisories (e.g. `INTEL-SA-00615`) not held against a platform.
    pub ignore_advisories: BTreeSet<String>,
    /// SEV-SNP: the lowest TCB (firmware and microcode security patch
    /// levels) accepted in a report (`security.attestation.snp.min_tcb`).
    /// `None`: no minimum.
    pub snp_min_tcb: Option<SnpMinTcb>,
}

/// The minimum SEV-SNP TCB a session accepts: each security patch level
/// (SPL) of the report's reported, committed and launch TCB must be at
/// least this (component by component, not as one number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SnpMinTcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
    /// FMC SPL, which only Turin and later report; ignored for reports
    /// without one. `None`: no minimum.
    pub fmc: Option<u8>,
}

/// Which evidence is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AttestationMode {
    /// Real TEE evidence only (default).
    #[default]
    Hardware,
    /// Also simulation evidence. Never a default; verifiers log loudly at every use.
    Simulation,
}

impl AttestationMode {
    /// `hardware` or `simulation`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationMode::Hardware => "hardware",
            AttestationMode::Simulation => "simulation",
        }
    }
}

/// Platform weaknesses that may be tolerated: something a session may
/// accept that is refused by default. `sigil-attest` decides with this
/// same type (re-exported as `sigil_attest::Tolerance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tolerance {
    /// Debug enclaves / TDs / SNP guests (memory readable by the host!).
    DebugMode,
    /// TCB is out of date (TCB status OutOfDate, and TDRelaunchAdvised).
    OutdatedTcb,
    /// Software hardening (e.g. LVI mitigations) needed (TCB status
    /// SWHardeningNeeded).
    SoftwareHardeningNeeded,
    /// Platform configuration needed (TCB status ConfigurationNeeded).
    ConfigurationNeeded,
    /// SMT (hyperthreading) enabled on the platform.
    Hyperthreading,
    /// TDX 1.5: the TD is bound to a service TD (non-zero MRSERVICETD).
    ServiceTd,
    /// TDX: SEPT_VE_DISABLE is not set.
    SeptVeNotDisabled,
}

impl Tolerance {
    /// All tolerances, in canonical order.
    pub const ALL: [Tolerance; 7] = [
        Tolerance::DebugMode,
        Tolerance::OutdatedTcb,
        Tolerance::SoftwareHardeningNeeded,
        Tolerance::ConfigurationNeeded,
        Tolerance::Hyperthreading,
        Tolerance::ServiceTd,
        Tolerance::SeptVeNotDisabled,
    ];

    /// The YAML spelling, e.g. `outdated-tcb`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tolerance::DebugMode => "debug-mode",
            Tolerance::OutdatedTcb => "outdated-tcb",
            Tolerance::SoftwareHardeningNeeded => "software-hardening-needed",
            Tolerance::ConfigurationNeeded => "configuration-needed",
            Tolerance::Hyperthreading => "hyperthreading",
            Tolerance::ServiceTd => "service-td",
            Tolerance::SeptVeNotDisabled => "sept-ve-not-disabled",
        }
    }

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Tolerance> {
        Tolerance::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
