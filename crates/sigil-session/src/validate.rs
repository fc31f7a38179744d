//! Value rules and cross-references, on the model (so sessions built in code
//! get the same checks as parsed ones).

use std::collections::{HashMap, HashSet};

use crate::model::*;
use crate::parse::{key_path, Cx};
use crate::placeholder::{self, Format};
use crate::yaml::{truncate, Pos};

/// Longest command argument, environment value, path.
const MAX_ARG: usize = 32 * 1024;
const MAX_ARGS: usize = 1024;
const MAX_ENV_VALUE: usize = 64 * 1024;
const MAX_ENV_VARS: usize = 1024;
const MAX_PATH: usize = 4096;
/// Largest injected file content.
pub const MAX_INJECTION_CONTENT: usize = 512 * 1024;
/// Largest explicit secret value.
pub const MAX_EXPLICIT_VALUE: usize = 64 * 1024;
/// Largest random secret.
pub const MAX_RANDOM_SIZE: usize = 64 * 1024;
const MAX_RULES: usize = 256;
const MAX_DNS: usize = 100;
/// X.509 upper bound for a common name (RFC 5280 ub-common-name).
const MAX_CN: usize = 64;
const MAX_VERSION: usize = 64;
const MAX_VALID_FOR_SECS: u64 = 100 * 365 * 86_400;

/// Service, secret, volume and image names: `[A-Za-z0-9_.-]{1,128}`.
/// `None` for a valid name, else why it is not one.
pub fn name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("name is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("name is longer than 128 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Some("name may only contain A-Z a-z 0-9 _ . -")
    } else {
        None
    }
}

fn path_error(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        Some("path must be absolute")
    } else if p.len() > MAX_PATH {
        Some("path is longer than 4096 bytes")
    } else if p.contains('\0') {
        Some("path contains a NUL character")
    } else if p.split('/').any(|c| c == "..") {
        Some("path must not contain '..'")
    } else {
        None
    }
}

fn dns_error(d: &str) -> Option<&'static str> {
    let body = d.strip_prefix("*.").unwrap_or(d);
    if d.is_empty() || d.len() > 253 {
        return Some("DNS name must be 1-253 characters");
    }
    for label in body.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Some("DNS name labels must be 1-63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Some("DNS name labels may only contain letters, digits and inner '-' ('*.' allowed as a prefix)");
        }
    }
    None
}

fn advisory_ok(a: &str) -> bool {
    let Some((prefix, num)) = a.rsplit_once('-') else {
        return false;
    };
    matches!(prefix, "INTEL-SA" | "AMD-SB" | "AMD-SN")
        && (4..=6).contains(&num.len())
        && num.bytes().all(|b| b.is_ascii_digit())
}

/// Which placeholder formats fit a secret kind.
fn format_fits(kind: &SecretKind, f: Format) -> bool {
    use Format::*;
    match kind {
        SecretKind::Ascii { .. } | SecretKind::Binary { .. } | SecretKind::Explicit { .. } => {
            matches!(f, Default | Hex | Base64 | Der)
        }
        SecretKind::PrivateKey { .. } => {
            matches!(f, Default | Hex | Base64 | Pem | Der | PrivateKey)
        }
        SecretKind::X509Ca { .. } | SecretKind::X509 { .. } => true,
        // Checked when resolved, against the exporting session.
        SecretKind::Imported => true,
    }
}

/// The kind placeholders of `sec` are checked against: its own, or the kind
/// an import declares.
fn effective_kind(sec: &Secret) -> std::borrow::Cow<'_, SecretKind> {
    match (&sec.kind, sec.import.as_ref().and_then(|i| i.kind)) {
        (SecretKind::Imported, Some(k)) => std::borrow::Cow::Owned(k.representative()),
        (kind, _) => std::borrow::Cow::Borrowed(kind),
    }
}

struct V<'a> {
    cx: &'a mut Cx,
    s: &'a Session,
    /// Name indexes (first definition wins), so hostile documents with
    /// thousands of items and references stay linear.
    secrets: HashMap<&'a str, &'a Secret>,
    images: HashSet<&'a str>,
    volumes: HashSet<&'a str>,
}

impl V<'_> {
    /// Records an error at `path`, placed at the nearest known position.
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        let pos = self.pos(path);
        self.cx.err(path, pos, msg);
    }

    fn pos(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.cx.positions.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.cx.positions.get("").copied().unwrap_or_default(),
            }
        }
    }

    fn names<'n>(&mut self, what: &str, list: &str, names: impl Iterator<Item = &'n str>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, n) in names.enumerate() {
            let p = format!("{list}[{i}].name");
            if let Some(e) = name_error(n) {
                self.err(&p, format!("invalid {what} name {:?}: {e}", truncate(n)));
                continue;
            }
            if let Some(first) = seen.insert(n, i) {
                self.err(
                    &p,
                    format!("duplicate {what} name {n:?} (also {list}[{first}])"),
                );
            }
        }
    }

    fn placeholders(&mut self, path: &str, text: &str) {
        match placeholder::find(text) {
            Err(e) => self.err(
                path,
                format!("malformed placeholder at byte {}: {}", e.offset, e.kind),
            ),
            Ok(found) => {
                for (_, ph) in found {
                    match self.secrets.get(ph.secret.as_str()).copied() {
                        None => self.err(
                            path,
                            format!("placeholder refers to unknown secret {:?}", ph.secret),
                        ),
                        Some(sec) if self.cx.poisoned_secrets.contains(&sec.name) => {}
                        Some(sec) if !format_fits(&effective_kind(sec), ph.format) => self.err(
                            path,
                            format!(
                                "format `{}` does not fit secret {:?} of kind {}",
                                ph.format.as_str(),
                                ph.secret,
                                effective_kind(sec).as_str()
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }

    fn principals(&mut self, path: &str, list: &[Principal]) {
        if list.is_empty() {
            self.err(path, "list is empty; write [NONE] to allow nobody");
            return;
        }
        let mut seen = HashSet::new();
        for (i, p) in list.iter().enumerate() {
            if !seen.insert(p) {
                self.err(&format!("{path}[{i}]"), format!("duplicate principal {p}"));
            }
        }
        if list.len() > 1 {
            if list.contains(&Principal::Nobody) {
                self.err(path, "NONE cannot be combined with other principals");
            } else if list.contains(&Principal::Any) {
                self.err(path, "ANY already includes every other principal");
            }
        }
    }

    fn rule(&mut self, path: &str, r: &AttestationRule) {
        if r.is_empty() {
            self.err(
                path,
                "attestation rule is empty (it would match nothing useful)",
            );
            return;
        }
        let sgx = r.mrenclave.is_some()
            || r.mrsigner.is_some()
            || r.isvprodid.is_some()
            || r.isvsvn_min.is_some();
        let tdx = r.mrtd.is_some() || r.rtmr.iter().any(Option::is_some);
        let snp = r.snp_measurement.is_some();
        let sim = r.simulation_measurement.is_some();
        if [sgx, tdx, snp, sim].into_iter().filter(|b| *b).count() > 1 {
            self.err(
                path,
                "a rule mixes fields of different TEEs (SGX, TDX, SEV-SNP, simulation); write one rule per TEE",
            );
        }
        if r.mrsigner.is_some() && r.isvprodid.is_none() {
            self.err(&format!("{path}.mrsigner"), "`mrsigner` needs `isvprodid`");
        }
        if r.mrsigner.is_none() && (r.isvprodid.is_some() || r.isvsvn_min.is_some()) {
            self.err(path, "`isvprodid` and `isvsvn_min` need `mrsigner`");
        }
        if r.mrtd.is_none() && r.rtmr.iter().any(Option::is_some) {
            self.err(path, "`rtmr0`..`rtmr3` need `mrtd`");
        }
    }

    fn run(&mut self) {
        let s = self.s;
        if let Some(v) = &s.version {
            if v.len() > MAX_VERSION || v.chars().any(char::is_control) {
                self.err("version", "version must be at most 64 printable characters");
            }
        }
        if s.predecessor.is_some_and(|p| p.0 == [0u8; 32]) {
            self.err(
                "predecessor",
                "predecessor is all zeros (omit it for a new session)",
            );
        }

        self.names(
            "service",
            "services",
            s.services.iter().map(|x| x.name.as_str()),
        );
        self.names(
            "secret",
            "secrets",
            s.secrets.iter().map(|x| x.name.as_str()),
        );
        self.names(
            "volume",
            "volumes",
            s.volumes.iter().map(|x| x.name.as_str()),
        );
        self.names("image", "images", s.images.iter().map(|x| x.name.as_str()));

        for (i, sv) in s.services.iter().enumerate() {
            let p = format!("services[{i}]");
            if sv.command.len() > MAX_ARGS {
                self.err(
                    &format!("{p}.command"),
                    format!("more than {MAX_ARGS} arguments"),
                );
            }
            for (j, a) in sv.command.iter().enumerate() {
                let ap = format!("{p}.command[{j}]");
                if a.len() > MAX_ARG || a.contains('\0') {
                    self.err(&ap, "argument longer than 32 KiB or contains NUL");
                }
                self.placeholders(&ap, a);
            }
            if sv.environment.len() > MAX_ENV_VARS {
                self.err(
                    &format!("{p}.environment"),
                    format!("more than {MAX_ENV_VARS} variables"),
                );
            }
            for (k, v) in &sv.environment {
                let ep = key_path(&format!("{p}.environment"), k);
                if k.is_empty() || k.len() > 256 || k.contains(['=', '\0']) {
                    let kp = format!("{ep}#key");
                    let pos = self.pos(&kp);
                    self.cx.err(
                        &ep,
                        pos,
                        "environment variable names must be 1-256 characters without '=' or NUL",
                    );
                }
                if v.len() > MAX_ENV_VALUE || v.contains('\0') {
                    self.err(&ep, "value longer than 64 KiB or contains NUL");
                }
                self.placeholders(&ep, v);
            }
            if let Some(pwd) = &sv.pwd {
                if let Some(e) = path_error(pwd) {
                    self.err(&format!("{p}.pwd"), e);
                }
                // The CAS substitutes placeholders here too.
                self.placeholders(&format!("{p}.pwd"), pwd);
            }
            if let Some(img) = &sv.image_name {
                if !self.images.contains(img.as_str()) {
                    self.err(
                        &format!("{p}.image_name"),
                        format!("no image named {:?} in `images`", truncate(img)),
                    );
                }
            }
            if sv.attestation.len() > MAX_RULES {
                self.err(
                    &format!("{p}.attestation"),
                    format!("more than {MAX_RULES} rules"),
                );
            }
            for (j, r) in sv.attestation.iter().enumerate() {
                self.rule(&format!("{p}.attestation[{j}]"), r);
            }
        }

        for (i, sec) in s.secrets.iter().enumerate() {
            let p = format!("secrets[{i}]");
            if self.cx.poisoned_secrets.contains(&sec.name) {
                continue;
            }
            match &sec.kind {
                SecretKind::Ascii { size } | SecretKind::Binary { size } => {
                    if *size == 0 || *size > MAX_RANDOM_SIZE {
                        self.err(
                            &format!("{p}.size"),
                            format!("size must be 1..={MAX_RANDOM_SIZE}"),
                        );
                    }
                }
                SecretKind::Explicit { value } => {
                    let n = value.expose().len();
                    if n == 0 || n > MAX_EXPLICIT_VALUE {
                        self.err(&format!("{p}.value"), "value must be 1 byte to 64 KiB");
                    }
                }
                SecretKind::PrivateKey {
                    algorithm,
                    value: Some(v),
                } => {
                    let n = v.expose().len();
                    if n == 0 || n > MAX_EXPLICIT_VALUE {
                        self.err(&format!("{p}.value"), "value must be 1 byte to 64 KiB");
                    } else {
                        match v.private_key_algorithm() {
                            Err(e) => self.err(&format!("{p}.value"), e.to_string()),
                            Ok(found) if found != *algorithm => self.err(
                                &format!("{p}.algorithm"),
                                format!(
                                    "the key in `value` is {}, not {} (set `algorithm: {}` or omit it)",
                                    found.as_str(),
                                    algorithm.as_str(),
                                    found.as_str()
                                ),
                            ),
                            Ok(_) => {}
                        }
                    }
                }
                SecretKind::PrivateKey { value: None, .. } => {}
                SecretKind::X509Ca {
                    common_name,
                    valid_for,
                    ..
                } => {
                    if let Some(cn) = common_name {
                        if cn.is_empty() || cn.len() > MAX_CN || cn.chars().any(char::is_control) {
                            self.err(
                                &format!("{p}.common_name"),
                                "common name must be 1-64 printable characters",
                            );
                        }
                    }
                    if valid_for
                        .is_some_and(|d| d.as_secs() == 0 || d.as_secs() > MAX_VALID_FOR_SECS)
                    {
                        self.err(
                            &format!("{p}.valid_for"),
                            "validity must be 1 second to 100 years",
                        );
                    }
                }
                SecretKind::X509 {
                    issuer,
                    common_name,
                    dns,
                    valid_for,
                    ..
                } => {
                    let ip = format!("{p}.issuer");
                    if issuer == &sec.name {
                        self.err(
                            &ip,
                            "a certificate cannot be its own issuer (use kind x509-ca)",
                        );
                    } else {
                        match self.secrets.get(issuer.as_str()).copied() {
                            None => {
                                self.err(&ip, format!("no secret named {:?}", truncate(issuer)))
                            }
                            Some(is) if self.cx.poisoned_secrets.contains(&is.name) => {}
                            Some(is)
                                if matches!(
                                    effective_kind(is).as_ref(),
                                    SecretKind::X509Ca { .. } | SecretKind::Imported
                                ) => {}
                            Some(is) => self.err(
                                &ip,
                                format!(
                                    "issuer {:?} is of kind {}, not x509-ca",
                                    truncate(issuer),
                                    effective_kind(is).as_str()
                                ),
                            ),
                        }
                    }
                    if common_name.is_empty()
                        || common_name.len() > MAX_CN
                        || common_name.chars().any(char::is_control)
                    {
                        self.err(
                            &format!("{p}.common_name"),
                            "common name must be 1-64 printable characters",
                        );
                    }
                    if dns.len() > MAX_DNS {
                        self.err(
                            &format!("{p}.dns"),
                            format!("more than {MAX_DNS} DNS names"),
                        );
                    }
                    for (j, d) in dns.iter().enumerate() {
                        if let Some(e) = dns_error(d) {
                            self.err(&format!("{p}.dns[{j}]"), format!("{:?}: {e}", truncate(d)));
                        }
                    }
                    if valid_for.as_secs() == 0 || valid_for.as_secs() > MAX_VALID_FOR_SECS {
                        self.err(
                            &format!("{p}.valid_for"),
                            "validity must be 1 second to 100 years",
                        );
                    }
                }
                SecretKind::Imported => {}
            }
            match (&sec.kind, &sec.import) {
                (SecretKind::Imported, None) => {
                    self.err(&p, "an imported secret needs `import: {session, secret}`")
                }
                (SecretKind::Imported, Some(imp)) => {
                    let ip = format!("{p}.import");
                    if let Err(e) = imp.session.parse::<SessionName>() {
                        self.err(&format!("{ip}.session"), e.to_string());
                    } else if imp.session == s.name.as_str() {
                        self.err(
                            &format!("{ip}.session"),
                            "a session cannot import from itself",
                        );
                    }
                    if let Some(e) = name_error(&imp.secret) {
                        self.err(&format!("{ip}.secret"), format!("invalid secret name: {e}"));
                    }
                    if !sec.export.is_empty() {
                        self.err(
                            &format!("{p}.export"),
                            "an imported secret cannot be exported again",
                        );
                    }
                }
                (_, Some(_)) => self.err(
                    &format!("{p}.import"),
                    "only imported secrets have `import`",
                ),
                (_, None) => {}
            }
            let mut seen = HashSet::new();
            for (j, e) in sec.export.iter().enumerate() {
                let ep = format!("{p}.export[{j}]");
                if let Err(err) = e.session.parse::<SessionName>() {
                    self.err(&ep, err.to_string());
                } else if !seen.insert(&e.session) {
                    self.err(&ep, format!("duplicate export to {:?}", e.session));
                }
            }
        }

        for (i, img) in s.images.iter().enumerate() {
            let p = format!("images[{i}]");
            let mut paths: HashMap<&str, String> = HashMap::new();
            for (j, v) in img.volumes.iter().enumerate() {
                let vp = format!("{p}.volumes[{j}]");
                if !v.name.is_empty() && !self.volumes.contains(v.name.as_str()) {
                    self.err(
                        &format!("{vp}.name"),
                        format!("no volume named {:?} in `volumes`", truncate(&v.name)),
                    );
                }
                if let Some(e) = path_error(&v.path) {
                    self.err(&format!("{vp}.path"), e);
                } else if let Some(first) = paths.insert(&v.path, vp.clone()) {
                    self.err(&format!("{vp}.path"), format!("path also used by {first}"));
                }
            }
            for (j, f) in img.injection_files.iter().enumerate() {
                let fp = format!("{p}.injection_files[{j}]");
                if let Some(e) = path_error(&f.path) {
                    self.err(&format!("{fp}.path"), e);
                } else if let Some(first) = paths.insert(&f.path, fp.clone()) {
                    self.err(&format!("{fp}.path"), format!("path also used by {first}"));
                }
                if f.mode > 0o7777 {
                    self.err(&format!("{fp}.mode"), "mode must be at most 07777");
                }
                if f.content.len() > MAX_INJECTION_CONTENT {
                    self.err(&format!("{fp}.content"), "content is larger than 512 KiB");
                }
                self.placeholders(&format!("{fp}.content"), &f.content);
            }
        }

        let ap = &s.access_policy;
        self.principals("access_policy.read", &ap.read);
        self.principals("access_policy.update", &ap.update);
        self.principals("access_policy.create_sessions", &ap.create_sessions);

        for a in &s.security.ignore_advisories {
            if !advisory_ok(a) {
                self.err(
                    "security.attestation.ignore_advisories",
                    format!(
                        "{:?} is not an advisory id such as INTEL-SA-00615 or AMD-SB-3019 (no wildcards)",
                        truncate(a)
                    ),
                );
            }
        }
    }
}

/// Runs every value and cross-reference check, adding errors to `cx`.
pub(crate) fn validate(cx: &mut Cx, s: &Session) {
    let mut secrets = HashMap::new();
    for sec in &s.secrets {
        secrets.entry(sec.name.as_str()).or_insert(sec);
    }
    V {
        cx,
        s,
        secrets,
        images: s.images.iter().map(|i| i.name.as_str()).collect(),
        volumes: s.volumes.iter().map(|v| v.name.as_str()).collect(),
    }
    .run();
}
