//! YAML tree -> [`Session`]: types, required keys, unknown keys and value
//! syntax. Cross-references and value rules live in `validate.rs` so that
//! sessions built in code get the same checks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::error::ParseError;
use crate::model::*;
use crate::yaml::{truncate, Kind, Node, Pos};

/// Path -> position of every value read, for placing validation errors.
pub(crate) type Positions = HashMap<String, Pos>;

/// At most this many errors are reported (the rest are summarised).
pub(crate) const MAX_ERRORS: usize = 200;

pub(crate) struct Cx {
    pub errors: Vec<ParseError>,
    pub positions: Positions,
    /// Secrets whose definition had errors: their kind is unknown, so checks
    /// that depend on it are skipped instead of cascading.
    pub poisoned_secrets: HashSet<String>,
}

impl Cx {
    pub fn new() -> Cx {
        Cx {
            errors: Vec::new(),
            positions: HashMap::new(),
            poisoned_secrets: HashSet::new(),
        }
    }

    pub fn err(&mut self, path: &str, pos: Pos, message: impl Into<String>) {
        self.errors.push(ParseError {
            path: path.to_owned(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        });
    }

    fn at(&mut self, path: &str, node: &Node) {
        self.positions.insert(path.to_owned(), node.pos);
    }
}

/// Path of a mapping entry whose key is user text (environment variables).
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    let mut p = parent.to_owned();
    crate::yaml::push_key(&mut p, key);
    p
}

fn idx(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

fn field(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Keys that SCONE sessions use but Sigil does not, with a hint.
fn scone_hint(key: &str) -> Option<&'static str> {
    match key {
        "fspf_path" | "fspf_key" | "fspf_tag" => {
            Some("SCONE file-system protection files are replaced by `volumes` and image `volumes`")
        }
        "mrenclave" => {
            Some("put measurements in `attestation: [{mrenclave: ...}]` or use `mrenclaves`")
        }
        "platforms" => Some("platform pinning is not supported; use `attestation` rules"),
        _ => None,
    }
}

/// A mapping whose keys were checked against the allowed set.
struct Fields<'n> {
    path: String,
    pos: Pos,
    entries: Vec<(&'n str, Pos, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }

    /// Position of `key` itself (or of the mapping if absent).
    fn key_pos(&self, key: &str) -> Pos {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(self.pos, |(_, p, _)| *p)
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn key_path(&self, key: &str) -> String {
        field(&self.path, key)
    }

    fn require(&self, cx: &mut Cx, key: &str) -> Option<&'n Node> {
        let v = self.get(key);
        if v.is_none() {
            cx.err(
                &self.key_path(key),
                self.pos,
                format!("missing required key `{key}`"),
            );
        }
        v
    }
}

/// The entries of a mapping with their (scalar) keys; anything else is an
/// error at `path`. Non-scalar keys and invalid nodes were refused by the
/// YAML reader already.
fn mapping<'n>(
    cx: &mut Cx,
    node: &'n Node,
    path: &str,
) -> Option<impl Iterator<Item = (&'n String, &'n Node, &'n Node)>> {
    cx.at(path, node);
    let Kind::Map(entries) = &node.kind else {
        if !matches!(node.kind, Kind::Invalid) {
            cx.err(
                path,
                node.pos,
                format!("expected a mapping, found {}", node.type_name()),
            );
        }
        return None;
    };
    Some(entries.iter().filter_map(|(k, v)| match &k.kind {
        Kind::Scalar { value, .. } => Some((value, k, v)),
        _ => None,
    }))
}

fn fields<'n>(cx: &mut Cx, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
    let entries = mapping(cx, node, path)?;
    let mut out = Vec::new();
    for (key, k, v) in entries {
        if allowed.contains(&key.as_str()) {
            out.push((key.as_str(), k.pos, v));
        } else {
            let kp = field(path, key);
            let mut msg = format!(
                "unknown key `{}` (expected one of: {})",
                truncate(key),
                allowed.join(", ")
            );
            if let Some(h) = scone_hint(key) {
                msg.push_str("; ");
                msg.push_str(h);
            }
            cx.err(&kp, k.pos, msg);
        }
    }
    Some(Fields {
        path: path.to_owned(),
        pos: node.pos,
        entries: out,
    })
}

fn seq<'n>(cx: &mut Cx, node: &'n Node, path: &str) -> Option<&'n [Node]> {
    cx.at(path, node);
    match &node.kind {
        Kind::Seq(items) => Some(items),
        Kind::Invalid => None,
        _ => {
            cx.err(
                path,
                node.pos,
                format!("expected a list, found {}", node.type_name()),
            );
            None
        }
    }
}

/// Any non-null scalar, as written (so `8080` and `"8080"` are the same string).
fn string(cx: &mut Cx, node: &Node, path: &str) -> Option<String> {
    cx.at(path, node);
    match &node.kind {
        Kind::Scalar { value, .. } if !node.is_null() => Some(value.clone()),
        Kind::Invalid => None,
        _ => {
            cx.err(
                path,
                node.pos,
                format!("expected a string, found {}", node.type_name()),
            );
            None
        }
    }
}

/// A list of strings; a single string is accepted as a one-element list.
fn string_list(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<String>> {
    if let Kind::Scalar { .. } = node.kind {
        if !node.is_null() {
            return string(cx, node, path).map(|s| vec![s]);
        }
    }
    let items = seq(cx, node, path)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, it) in items.iter().enumerate() {
        match string(cx, it, &idx(path, i)) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn uint(cx: &mut Cx, node: &Node, path: &str, max: u64) -> Option<u64> {
    let s = string(cx, node, path)?;
    let parsed = if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().ok()
    } else {
        None
    };
    match parsed {
        Some(v) if v <= max => Some(v),
        Some(_) => {
            cx.err(path, node.pos, format!("must be at most {max}"));
            None
        }
        None => {
            cx.err(
                path,
                node.pos,
                format!("expected a non-negative integer, found {:?}", truncate(&s)),
            );
            None
        }
    }
}

fn hex_array<const N: usize>(cx: &mut Cx, node: &Node, path: &str) -> Option<[u8; N]> {
    let s = string(cx, node, path)?;
    let mut out = [0u8; N];
    if s.len() != 2 * N {
        cx.err(
            path,
            node.pos,
            format!(
                "expected {} hexadecimal digits ({N} bytes), found {} characters",
                2 * N,
                s.chars().count()
            ),
        );
        return None;
    }
    if hex::decode_to_slice(&s, &mut out).is_err() {
        cx.err(path, node.pos, "expected hexadecimal digits (0-9, a-f)");
        return None;
    }
    Some(out)
}

/// Parses `3600`, `"90d"`, `"1y 2d"`, `"12 hours"`: integers with units
/// s, m, h, d, w, y (365 days) and their long forms.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, &'static str> {
    const MAX: u64 = 100 * 365 * 86_400;
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration");
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let v: u64 = t.parse().map_err(|_| "duration too large")?;
        return if v > MAX {
            Err("duration longer than 100 years")
        } else {
            Ok(Duration::from_secs(v))
        };
    }
    let mut total: u64 = 0;
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err("expected a number");
        }
        let n: u64 = t[start..i].parse().map_err(|_| "duration too large")?;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &t[ustart..i] {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "y" | "year" | "years" => 365 * 86_400,
            "" => return Err("a number needs a unit (s, m, h, d, w, y)"),
            _ => return Err("unknown unit (expected s, m, h, d, w or y)"),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or("duration too large")?;
        if total > MAX {
            return Err("duration longer than 100 years");
        }
    }
    Ok(Duration::from_secs(total))
}

fn duration(cx: &mut Cx, node: &Node, path: &str) -> Option<Duration> {
    let s = string(cx, node, path)?;
    match parse_duration(&s) {
        Ok(d) => Some(d),
        Err(m) => {
            cx.err(
                path,
                node.pos,
                format!("invalid duration {:?}: {m}", truncate(&s)),
            );
            None
        }
    }
}

/// File mode: always octal digits (`600`, `0600`, `0o600`), as users write
/// modes, whatever YAML would make of a leading zero.
fn mode(cx: &mut Cx, node: &Node, path: &str) -> Option<u32> {
    let s = string(cx, node, path)?;
    let digits = s.strip_prefix("0o").unwrap_or(&s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) => {
            if m > 0o7777 {
                cx.err(path, node.pos, "mode must be at most 07777");
                None
            } else {
                Some(m)
            }
        }
        _ => {
            cx.err(
                path,
                node.pos,
                format!(
                    "expected an octal file mode such as 0600, found {:?}",
                    truncate(&s)
                ),
            );
            None
        }
    }
}

/// Converts the YAML root into a session. Returns `None` if the document is
/// too broken to build one (the errors say why).
pub(crate) fn session(cx: &mut Cx, root: &Node) -> Option<Session> {
    const KEYS: &[&str] = &[
        "name",
        "version",
        "predecessor",
        "services",
        "secrets",
        "volumes",
        "images",
        "access_policy",
        "security",
    ];
    let f = fields(cx, root, "", KEYS)?;
    let name = match f.require(cx, "name") {
        Some(n) => string(cx, n, "name").and_then(|s| match s.parse::<SessionName>() {
            Ok(n) => Some(n),
            Err(e) => {
                cx.err("name", n.pos, e.0);
                None
            }
        }),
        None => None,
    };
    let version = f.get("version").and_then(|n| string(cx, n, "version"));
    let predecessor = f.get("predecessor").and_then(|n| {
        if n.is_null() {
            cx.at("predecessor", n);
            return None;
        }
        hex_array::<32>(cx, n, "predecessor").map(SessionHash)
    });

    let mut s = Session::new(name.unwrap_or_else(SessionName::placeholder));
    s.version = version;
    s.predecessor = predecessor;

    if let Some(n) = f.get("services") {
        s.services = list_of(cx, n, "services", service, |_| Service::default());
    }
    if let Some(n) = f.get("secrets") {
        s.secrets = list_of(cx, n, "secrets", secret, |cx| {
            // Unknown kind: checks that depend on it are skipped.
            cx.poisoned_secrets.insert(String::new());
            Secret {
                name: String::new(),
                kind: SecretKind::Imported,
                export: Vec::new(),
                import: None,
            }
        });
    }
    if let Some(n) = f.get("volumes") {
        s.volumes = list_of(cx, n, "volumes", volume, |_| Volume::default());
    }
    if let Some(n) = f.get("images") {
        s.images = list_of(cx, n, "images", image, |_| Image::default());
    }
    if let Some(n) = f.get("access_policy") {
        s.access_policy = access_policy(cx, n, "access_policy");
    }
    if let Some(n) = f.get("security") {
        s.security = security(cx, n, "security");
    }
    Some(s)
}

impl SessionName {
    /// Stand-in for a missing or invalid name (an error was reported).
    fn placeholder() -> SessionName {
        SessionName("invalid".to_owned())
    }
}

/// A list of items. An item that is not even a mapping (an error was
/// reported) is replaced by `fallback`, so that model indices stay equal to
/// document indices: validation paths must point at the right item.
fn list_of<T>(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    item: fn(&mut Cx, &Node, &str) -> Option<T>,
    fallback: fn(&mut Cx) -> T,
) -> Vec<T> {
    if node.is_null() {
        cx.at(path, node);
        return Vec::new();
    }
    let Some(items) = seq(cx, node, path) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(i, n)| item(cx, n, &idx(path, i)).unwrap_or_else(|| fallback(cx)))
        .collect()
}

fn name_field(cx: &mut Cx, f: &Fields<'_>) -> String {
    f.require(cx, "name")
        .and_then(|n| string(cx, n, &f.key_path("name")))
        .unwrap_or_default()
}

fn service(cx: &mut Cx, node: &Node, path: &str) -> Option<Service> {
    const KEYS: &[&str] = &[
        "name",
        "command",
        "environment",
        "pwd",
        "image_name",
        "attestation",
        "mrenclaves",
    ];
    let f = fields(cx, node, path, KEYS)?;
    let mut sv = Service {
        name: name_field(cx, &f),
        ..Service::default()
    };
    if let Some(n) = f.get("command") {
        sv.command = command(cx, n, &f.key_path("command")).unwrap_or_default();
    }
    if let Some(n) = f.get("environment") {
        sv.environment = environment(cx, n, &f.key_path("environment"));
    }
    sv.pwd = f.get("pwd").and_then(|n| string(cx, n, &f.key_path("pwd")));
    sv.image_name = f
        .get("image_name")
        .and_then(|n| string(cx, n, &f.key_path("image_name")));
    if let Some(n) = f.get("attestation") {
        sv.attestation = list_of(cx, n, &f.key_path("attestation"), rule, |_| {
            AttestationRule::default()
        });
    }
    if let Some(n) = f.get("mrenclaves") {
        // SCONE alias: each MRENCLAVE is a rule of its own.
        let p = f.key_path("mrenclaves");
        if let Some(items) = seq(cx, n, &p) {
            for (i, it) in items.iter().enumerate() {
                if let Some(m) = hex_array::<32>(cx, it, &idx(&p, i)) {
                    sv.attestation.push(AttestationRule {
                        mrenclave: Some(m),
                        ..AttestationRule::default()
                    });
                }
            }
        }
    }
    Some(sv)
}

/// `command` as a list, or a string split like a POSIX shell would (quotes
/// and backslashes; no expansion).
fn command(cx: &mut Cx, node: &Node, path: &str) -> Option<Vec<String>> {
    if let Kind::Scalar { .. } = node.kind {
        let s = string(cx, node, path)?;
        return match shell_words::split(&s) {
            Ok(v) => Some(v),
            Err(_) => {
                cx.err(path, node.pos, "command has an unclosed quote");
                None
            }
        };
    }
    let items = seq(cx, node, path)?;
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        out.push(string(cx, it, &idx(path, i))?);
    }
    Some(out)
}

fn environment(cx: &mut Cx, node: &Node, path: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if node.is_null() {
        cx.at(path, node);
        return out;
    }
    let Some(entries) = mapping(cx, node, path) else {
        return out;
    };
    for (key, k, v) in entries {
        let p = key_path(path, key);
        cx.at(&format!("{p}#key"), k);
        if let Some(val) = string(cx, v, &p) {
            out.insert(key.clone(), val);
        }
    }
    out
}

fn rule(cx: &mut Cx, node: &Node, path: &str) -> Option<AttestationRule> {
    const KEYS: &[&str] = &[
        "mrenclave",
        "mrsigner",
        "isvprodid",
        "isvsvn_min",
        "isvsvn",
        "mrtd",
        "rtmr0",
        "rtmr1",
        "rtmr2",
        "rtmr3",
        "measurement",
        "snp_measurement",
        "simulation_measurement",
    ];
    let f = fields(cx, node, path, KEYS)?;
    for (a, b) in [("isvsvn_min", "isvsvn"), ("measurement", "snp_measurement")] {
        if f.has(a) && f.has(b) {
            cx.err(
                &f.key_path(b),
                f.key_pos(b),
                format!("`{b}` is an alias of `{a}`; give only one"),
            );
        }
    }
    let mut r = AttestationRule::default();
    let h32 = |cx: &mut Cx, k: &str| {
        f.get(k)
            .and_then(|n| hex_array::<32>(cx, n, &f.key_path(k)))
    };
    let h48 = |cx: &mut Cx, k: &str| {
        f.get(k)
            .and_then(|n| hex_array::<48>(cx, n, &f.key_path(k)))
    };
    let u16f = |cx: &mut Cx, k: &str| {
        f.get(k)
            .and_then(|n| uint(cx, n, &f.key_path(k), u16::MAX.into()))
            .map(|v| v as u16)
    };
    r.mrenclave = h32(cx, "mrenclave");
    r.mrsigner = h32(cx, "mrsigner");
    r.isvprodid = u16f(cx, "isvprodid");
    r.isvsvn_min = u16f(cx, "isvsvn_min").or_else(|| u16f(cx, "isvsvn"));
    r.mrtd = h48(cx, "mrtd");
    for i in 0..4 {
        r.rtmr[i] = h48(cx, &format!("rtmr{i}"));
    }
    r.snp_measurement = h48(cx, "measurement").or_else(|| h48(cx, "snp_measurement"));
    r.simulation_measurement = h32(cx, "simulation_measurement");
    Some(r)
}

fn secret(cx: &mut Cx, node: &Node, path: &str) -> Option<Secret> {
    const KEYS: &[&str] = &[
        "name",
        "kind",
        "size",
        "value",
        "encoding",
        "algorithm",
        "common_name",
        "issuer",
        "dns",
        "valid_for",
        "export",
        "import",
    ];
    let f = fields(cx, node, path, KEYS)?;
    let name = name_field(cx, &f);
    let kind_name = f
        .get("kind")
        .and_then(|n| string(cx, n, &f.key_path("kind")));

    let import = f.get("import").and_then(|n| {
        let p = f.key_path("import");
        let g = fields(cx, n, &p, &["session", "secret"])?;
        let session = g
            .require(cx, "session")
            .and_then(|n| string(cx, n, &g.key_path("session")));
        let secret = g
            .require(cx, "secret")
            .and_then(|n| string(cx, n, &g.key_path("secret")));
        Some(SecretImport {
            session: session?,
            secret: secret?,
            // `kind` next to `import` (SCONE) declares the expected kind.
            kind: kind_name.as_deref().and_then(ImportKind::parse),
        })
    });
    let export = f
        .get("export")
        .map(|n| export_list(cx, n, &f.key_path("export")))
        .unwrap_or_default();

    const KINDS: &[&str] = &[
        "ascii",
        "binary",
        "explicit",
        "private-key",
        "x509-ca",
        "x509",
    ];
    if let Some(k) = kind_name.as_deref() {
        if !KINDS.contains(&k) {
            let pos = f.get("kind").map_or(f.pos, |n| n.pos);
            cx.err(
                &f.key_path("kind"),
                pos,
                format!(
                    "unknown secret kind {:?} (expected ascii, binary, explicit, private-key, x509-ca or x509)",
                    truncate(k)
                ),
            );
            // Unknown kind: which keys apply is unknown too; report nothing more.
            cx.poisoned_secrets.insert(name.clone());
            return Some(Secret {
                name,
                kind: SecretKind::Imported,
                export,
                import,
            });
        }
    }

    // Which keys each kind takes (besides name, kind, export, import).
    let kind_keys: &[&str] = match (kind_name.as_deref(), f.has("value"), f.has("import")) {
        (_, _, true) => &[],
        (Some("ascii") | Some("binary") | Some("explicit") | None, true, _) => {
            &["value", "encoding"]
        }
        (Some("ascii") | Some("binary"), false, _) => &["size"],
        (Some("private-key"), ..) => &["algorithm", "value", "encoding"],
        (Some("x509-ca"), ..) => &["algorithm", "common_name", "valid_for"],
        (Some("x509"), ..) => &["algorithm", "common_name", "issuer", "dns", "valid_for"],
        _ => KEYS,
    };
    let kind_specific = KEYS
        .iter()
        .copied()
        .filter(|k| !matches!(*k, "name" | "kind" | "export" | "import"));
    for key in kind_specific {
        if f.has(key) && !kind_keys.contains(&key) {
            let what = if f.has("import") {
                "an imported secret".to_owned()
            } else {
                format!("kind `{}`", kind_name.as_deref().unwrap_or("?"))
            };
            cx.err(
                &f.key_path(key),
                f.key_pos(key),
                format!("`{key}` does not apply to {what}"),
            );
        }
    }

    let algorithm = |cx: &mut Cx| -> KeyAlgorithm {
        let Some(n) = f.get("algorithm") else {
            return KeyAlgorithm::default();
        };
        let p = f.key_path("algorithm");
        let s = string(cx, n, &p).unwrap_or_default();
        KeyAlgorithm::parse(&s).unwrap_or_else(|| {
            cx.err(
                &p,
                n.pos,
                format!(
                    "unknown key algorithm {:?} (expected ecdsa-p256, ecdsa-p384, ed25519, rsa-2048 or rsa-3072)",
                    truncate(&s)
                ),
            );
            KeyAlgorithm::default()
        })
    };
    let size = |cx: &mut Cx| -> usize {
        f.get("size")
            .and_then(|n| uint(cx, n, &f.key_path("size"), u32::MAX.into()))
            .map_or(DEFAULT_RANDOM_SECRET_SIZE, |v| v as usize)
    };

    let kind = if f.has("import") {
        Some(SecretKind::Imported)
    } else if let (Some(vnode), None | Some("ascii" | "binary" | "explicit")) =
        (f.get("value"), kind_name.as_deref())
    {
        explicit_value(cx, &f, vnode, kind_name.as_deref())
    } else {
        match kind_name.as_deref() {
            Some("ascii") => Some(SecretKind::Ascii { size: size(cx) }),
            Some("binary") => Some(SecretKind::Binary { size: size(cx) }),
            Some("explicit") => {
                cx.err(&f.path, f.pos, "kind `explicit` needs a `value`");
                None
            }
            Some("private-key") => match f.get("value") {
                None => Some(SecretKind::PrivateKey {
                    algorithm: algorithm(cx),
                    value: None,
                }),
                Some(vnode) => given_private_key(cx, &f, vnode).map(|(der, found)| {
                    // An explicit `algorithm` must match the key (checked in
                    // validate.rs); without one, the key's own applies.
                    let algorithm = if f.has("algorithm") {
                        algorithm(cx)
                    } else {
                        found
                    };
                    SecretKind::PrivateKey {
                        algorithm,
                        // Ring's verdict travels with the value: validation
                        // and the CAS do not parse the key again.
                        value: Some(SecretValue::checked_private_key(der.to_vec(), found)),
                    }
                }),
            },
            Some("x509-ca") => Some(SecretKind::X509Ca {
                common_name: f
                    .get("common_name")
                    .and_then(|n| string(cx, n, &f.key_path("common_name"))),
                valid_for: f
                    .get("valid_for")
                    .and_then(|n| duration(cx, n, &f.key_path("valid_for"))),
                algorithm: algorithm(cx),
            }),
            Some("x509") => {
                let issuer = f
                    .require(cx, "issuer")
                    .and_then(|n| string(cx, n, &f.key_path("issuer")));
                let common_name = f
                    .get("common_name")
                    .and_then(|n| string(cx, n, &f.key_path("common_name")))
                    .unwrap_or_else(|| name.clone());
                let dns = f
                    .get("dns")
                    .and_then(|n| string_list(cx, n, &f.key_path("dns")))
                    .unwrap_or_default();
                let valid_for = f
                    .get("valid_for")
                    .map_or(Some(DEFAULT_X509_VALID_FOR), |n| {
                        duration(cx, n, &f.key_path("valid_for"))
                    })
                    .unwrap_or(DEFAULT_X509_VALID_FOR);
                issuer.map(|issuer| SecretKind::X509 {
                    issuer,
                    common_name,
                    dns,
                    valid_for,
                    algorithm: algorithm(cx),
                })
            }
            // Unknown kinds were refused above.
            Some(_) => None,
            None => {
                if f.get("kind").is_none() {
                    cx.err(
                        &f.key_path("kind"),
                        f.pos,
                        "missing required key `kind` (or `value` for an explicit secret, `import` for an imported one)",
                    );
                }
                None
            }
        }
    };
    if kind.is_none() {
        cx.poisoned_secrets.insert(name.clone());
    }
    Some(Secret {
        name,
        kind: kind.unwrap_or(SecretKind::Imported),
        export,
        import,
    })
}

fn explicit_value(
    cx: &mut Cx,
    f: &Fields<'_>,
    vnode: &Node,
    kind: Option<&str>,
) -> Option<SecretKind> {
    value_bytes(cx, f, vnode, kind).map(|b| SecretKind::Explicit {
        value: SecretValue::new(b),
    })
}

/// `value` of a `private-key` secret: PEM text (`encoding: utf8`, the
/// default) or DER (`base64`, `hex`), normalised to PKCS#8 and parsed by ring.
fn given_private_key(
    cx: &mut Cx,
    f: &Fields<'_>,
    vnode: &Node,
) -> Option<(zeroize::Zeroizing<Vec<u8>>, KeyAlgorithm)> {
    let b = zeroize::Zeroizing::new(value_bytes(cx, f, vnode, Some("private-key"))?);
    let p = f.key_path("value");
    if b.is_empty() || b.len() > crate::validate::MAX_EXPLICIT_VALUE {
        cx.err(&p, vnode.pos, "value must be 1 byte to 64 KiB");
        return None;
    }
    match crate::keys::normalize_private_key(&b) {
        Ok(k) => Some(k),
        Err(e) => {
            cx.err(&p, vnode.pos, e.to_string());
            None
        }
    }
}

/// Decodes `value` with `encoding`. Never echoes the value in errors.
fn value_bytes(cx: &mut Cx, f: &Fields<'_>, vnode: &Node, kind: Option<&str>) -> Option<Vec<u8>> {
    use base64::Engine;
    let p = f.key_path("value");
    // Read without recording the value anywhere but the model.
    let text = string(cx, vnode, &p)?;
    let encoding = match f.get("encoding") {
        Some(n) => string(cx, n, &f.key_path("encoding"))?,
        // SCONE: explicit binary values are written in base64.
        None if kind == Some("binary") => "base64".to_owned(),
        None => "utf8".to_owned(),
    };
    let bytes = match encoding.as_str() {
        "utf8" | "utf-8" | "text" => Some(text.into_bytes()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(text.trim().as_bytes())
            .ok(),
        "hex" => hex::decode(text.trim()).ok(),
        other => {
            let n = f.get("encoding").map_or(f.pos, |n| n.pos);
            cx.err(
                &f.key_path("encoding"),
                n,
                format!(
                    "unknown encoding {:?} (expected utf8, base64 or hex)",
                    truncate(other)
                ),
            );
            return None;
        }
    };
    match bytes {
        Some(b) => Some(b),
        None => {
            // Never echo the value: it is secret.
            cx.err(&p, vnode.pos, format!("value is not valid {encoding}"));
            None
        }
    }
}

fn export_list(cx: &mut Cx, node: &Node, path: &str) -> Vec<SecretExport> {
    let Some(items) = seq(cx, node, path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let p = idx(path, i);
        // `- session: name` (SCONE) or the shorthand `- name`.
        let session = if let Kind::Map(_) = it.kind {
            fields(cx, it, &p, &["session"]).and_then(|g| {
                g.require(cx, "session")
                    .and_then(|n| string(cx, n, &g.key_path("session")))
            })
        } else {
            string(cx, it, &p)
        };
        // Keep indices aligned with the document (see `list_of`).
        out.push(SecretExport {
            session: session.unwrap_or_default(),
        });
    }
    out
}

fn volume(cx: &mut Cx, node: &Node, path: &str) -> Option<Volume> {
    let f = fields(cx, node, path, &["name", "key", "tag"])?;
    let name = name_field(cx, &f);
    let key = f.get("key").and_then(|n| {
        let p = f.key_path("key");
        cx.at(&p, n);
        // Hand-rolled so the key text is never put in an error.
        let s = string(cx, n, &p)?;
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        if s.len() != 64 || hex::decode_to_slice(&s, &mut k[..]).is_err() {
            cx.err(&p, n.pos, "expected 64 hexadecimal digits (32 bytes)");
            return None;
        }
        Some(VolumeKeyHex::new(*k))
    });
    let tag = f
        .get("tag")
        .and_then(|n| hex_array::<32>(cx, n, &f.key_path("tag")));
    Some(Volume { name, key, tag })
}

fn image(cx: &mut Cx, node: &Node, path: &str) -> Option<Image> {
    let f = fields(cx, node, path, &["name", "volumes", "injection_files"])?;
    let name = name_field(cx, &f);
    let volumes = f
        .get("volumes")
        .map(|n| {
            list_of(
                cx,
                n,
                &f.key_path("volumes"),
                |cx, n, p| {
                    let g = fields(cx, n, p, &["name", "path"])?;
                    let name = name_field(cx, &g);
                    let path = g
                        .require(cx, "path")
                        .and_then(|n| string(cx, n, &g.key_path("path")))
                        .unwrap_or_default();
                    Some(ImageVolume { name, path })
                },
                |_| ImageVolume::default(),
            )
        })
        .unwrap_or_default();
    let injection_files = f
        .get("injection_files")
        .map(|n| {
            list_of(
                cx,
                n,
                &f.key_path("injection_files"),
                |cx, n, p| {
                    let g = fields(cx, n, p, &["path", "content", "mode"])?;
                    let path = g
                        .require(cx, "path")
                        .and_then(|n| string(cx, n, &g.key_path("path")))
                        .unwrap_or_default();
                    let content = match g.require(cx, "content") {
                        Some(n) if n.is_null() => {
                            cx.at(&g.key_path("content"), n);
                            String::new()
                        }
                        Some(n) => string(cx, n, &g.key_path("content")).unwrap_or_default(),
                        None => String::new(),
                    };
                    let mode = g
                        .get("mode")
                        .and_then(|n| mode(cx, n, &g.key_path("mode")))
                        .unwrap_or(DEFAULT_INJECTION_MODE);
                    Some(InjectionFile {
                        path,
                        content,
                        mode,
                    })
                },
                |_| InjectionFile {
                    path: String::new(),
                    content: String::new(),
                    mode: DEFAULT_INJECTION_MODE,
                },
            )
        })
        .unwrap_or_default();
    Some(Image {
        name,
        volumes,
        injection_files,
    })
}

/// Parses `CREATOR`, `ANY`, `NONE` (any case) or a SHA-256 fingerprint
/// (64 hex digits, optionally with `:` between bytes).
pub(crate) fn parse_principal(s: &str) -> Option<Principal> {
    match s.to_ascii_uppercase().as_str() {
        "CREATOR" => return Some(Principal::Creator),
        "ANY" => return Some(Principal::Any),
        "NONE" => return Some(Principal::Nobody),
        _ => {}
    }
    let compact: String = if s.len() == 95 && s.bytes().skip(2).step_by(3).all(|b| b == b':') {
        s.split(':').collect()
    } else {
        s.to_owned()
    };
    let mut fp = [0u8; 32];
    (compact.len() == 64 && hex::decode_to_slice(&compact, &mut fp).is_ok())
        .then_some(Principal::Fingerprint(fp))
}

fn access_policy(cx: &mut Cx, node: &Node, path: &str) -> AccessPolicy {
    let mut ap = AccessPolicy::default();
    let Some(f) = fields(cx, node, path, &["read", "update", "create_sessions"]) else {
        return ap;
    };
    for (key, slot) in [
        ("read", &mut ap.read),
        ("update", &mut ap.update),
        ("create_sessions", &mut ap.create_sessions),
    ] {
        let Some(n) = f.get(key) else { continue };
        let p = f.key_path(key);
        let Some(list) = string_list(cx, n, &p) else {
            continue;
        };
        let items: Vec<&Node> = match &n.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
        let mut out = Vec::new();
        for (i, (s, node)) in list.iter().zip(items).enumerate() {
            match parse_principal(s) {
                Some(pr) => out.push(pr),
                None => cx.err(
                    &idx(&p, i),
                    node.pos,
                    format!(
                        "expected CREATOR, ANY, NONE or a 64-hex-digit SPKI SHA-256 fingerprint, found {:?}",
                        truncate(s)
                    ),
                ),
            }
        }
        *slot = out;
    }
    ap
}

/// `security.attestation.snp`: `{min_tcb: {bootloader, tee, snp, microcode[, fmc]}}`.
/// The four SPLs every SEV-SNP generation has are required, so a forgotten
/// one is an error rather than a silent minimum of 0.
fn snp_policy(cx: &mut Cx, node: &Node, path: &str) -> Option<SnpMinTcb> {
    let f = fields(cx, node, path, &["min_tcb"])?;
    let n = f.get("min_tcb")?;
    let mp = f.key_path("min_tcb");
    let m = fields(
        cx,
        n,
        &mp,
        &["bootloader", "tee", "snp", "microcode", "fmc"],
    )?;
    let spl = |cx: &mut Cx, n: &Node, k: &str| {
        uint(cx, n, &m.key_path(k), u8::MAX.into()).map(|v| v as u8)
    };
    let req = |cx: &mut Cx, k: &str| m.require(cx, k).and_then(|n| spl(cx, n, k));
    let (bootloader, tee, snp, microcode) = (
        req(cx, "bootloader"),
        req(cx, "tee"),
        req(cx, "snp"),
        req(cx, "microcode"),
    );
    let fmc = m.get("fmc").map(|n| spl(cx, n, "fmc"));
    Some(SnpMinTcb {
        bootloader: bootloader?,
        tee: tee?,
        snp: snp?,
        microcode: microcode?,
        fmc: match fmc {
            Some(v) => Some(v?),
            None => None,
        },
    })
}

fn security(cx: &mut Cx, node: &Node, path: &str) -> Security {
    let mut sec = Security::default();
    let Some(f) = fields(cx, node, path, &["attestation"]) else {
        return sec;
    };
    let Some(att) = f.get("attestation") else {
        return sec;
    };
    let p = f.key_path("attestation");
    let Some(g) = fields(
        cx,
        att,
        &p,
        &["mode", "tolerate", "ignore_advisories", "snp"],
    ) else {
        return sec;
    };
    if let Some(n) = g.get("snp") {
        sec.snp_min_tcb = snp_policy(cx, n, &g.key_path("snp"));
    }
    if let Some(n) = g.get("mode") {
        let mp = g.key_path("mode");
        match string(cx, n, &mp).as_deref() {
            Some("hardware") => sec.attestation_mode = AttestationMode::Hardware,
            Some("simulation") => sec.attestation_mode = AttestationMode::Simulation,
            Some(other) => cx.err(
                &mp,
                n.pos,
                format!(
                    "unknown attestation mode {:?} (expected hardware or simulation)",
                    truncate(other)
                ),
            ),
            None => {}
        }
    }
    if let Some(n) = g.get("tolerate") {
        let tp = g.key_path("tolerate");
        // A list, or (SCONE) one string of comma/space separated items.
        let items: Vec<(String, Pos, String)> = match &n.kind {
            Kind::Scalar { .. } => string(cx, n, &tp)
                .map(|s| {
                    s.split([',', ' '])
                        .filter(|t| !t.is_empty())
                        .map(|t| (t.to_owned(), n.pos, tp.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            _ => {
                let list = seq(cx, n, &tp).unwrap_or_default();
                list.iter()
                    .enumerate()
                    .filter_map(|(i, it)| {
                        let ip = idx(&tp, i);
                        string(cx, it, &ip).map(|s| (s, it.pos, ip))
                    })
                    .collect()
            }
        };
        for (t, pos, ip) in items {
            match Tolerance::parse(&t) {
                Some(t) => {
                    sec.tolerate.insert(t);
                }
                None => cx.err(
                    &ip,
                    pos,
                    format!(
                        "unknown tolerance {:?} (expected one of: {})",
                        truncate(&t),
                        Tolerance::ALL.map(|t| t.as_str()).join(", ")
                    ),
                ),
            }
        }
    }
    if let Some(n) = g.get("ignore_advisories") {
        let ap = g.key_path("ignore_advisories");
        if let Some(list) = string_list(cx, n, &ap) {
            // Format is checked in validation (sessions built in code too).
            sec.ignore_advisories
                .extend(list.into_iter().map(|a| a.to_ascii_uppercase()));
        }
    }
    sec
}
