//! The canonical form of a session and its hash. The exact encoding is
//! specified in `docs/session-language.md` ("Canonical form and hash"); any
//! change here is a format change and must bump [`HASH_DOMAIN`].
//!
//! The canonical form is a JSON text with: object keys sorted by bytes, no
//! whitespace, only strings, integers, `null`, arrays and objects; every
//! field present (defaults made explicit, absent optionals as `null`); byte
//! strings as lowercase hex; durations in seconds; lists whose order carries
//! no meaning sorted.

use std::collections::BTreeMap;

use crate::model::*;

/// Domain-separation prefix and format version, hashed before the canonical JSON.
pub const HASH_DOMAIN: &[u8] = b"sigil-session-canonical-v1\n";

/// A canonical JSON value. Objects are `BTreeMap`s so keys come out sorted.
enum Value {
    Null,
    Int(u64),
    Str(String),
    Arr(Vec<Value>),
    Obj(BTreeMap<&'static str, Value>),
    /// An object with arbitrary (user) keys, e.g. the environment.
    Map(BTreeMap<String, Value>),
}

impl Value {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Value::Str(s) => write_str(s, out),
            Value::Arr(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out);
                }
                out.push(b']');
            }
            Value::Obj(m) => write_obj(m.iter().map(|(k, v)| (*k, v)), out),
            Value::Map(m) => write_obj(m.iter().map(|(k, v)| (k.as_str(), v)), out),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

fn write_obj<'a>(items: impl Iterator<Item = (&'a str, &'a Value)>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, out);
        out.push(b':');
        v.write(out);
    }
    out.push(b'}');
}

/// JSON string: `"` and `\` escaped, control characters U+0000..U+001F as
/// `\b \t \n \f \r` or `\u00xx` (lowercase hex), everything else as UTF-8.
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn opt_s(v: &Option<String>) -> Value {
    v.as_deref().map_or(Value::Null, s)
}

fn hexv(b: &[u8]) -> Value {
    Value::Str(hex::encode(b))
}

fn opt_hex<const N: usize>(b: &Option<[u8; N]>) -> Value {
    b.as_ref().map_or(Value::Null, |b| hexv(b))
}

fn obj<const N: usize>(fields: [(&'static str, Value); N]) -> Value {
    Value::Obj(fields.into_iter().collect())
}

/// Sorts values by their canonical encoding (for lists with set semantics).
fn sorted(mut items: Vec<Value>) -> Value {
    items.sort_by_cached_key(|v| v.encode());
    Value::Arr(items)
}

fn principals(p: &[Principal]) -> Value {
    sorted(p.iter().map(|p| Value::Str(p.to_string())).collect())
}

fn rule(r: &AttestationRule) -> Value {
    obj([
        ("mrenclave", opt_hex(&r.mrenclave)),
        ("mrsigner", opt_hex(&r.mrsigner)),
        (
            "isvprodid",
            r.isvprodid.map_or(Value::Null, |v| Value::Int(v.into())),
        ),
        // No minimum and a minimum of 0 mean the same.
        ("isvsvn_min", Value::Int(r.isvsvn_min.unwrap_or(0).into())),
        ("mrtd", opt_hex(&r.mrtd)),
        ("rtmr0", opt_hex(&r.rtmr[0])),
        ("rtmr1", opt_hex(&r.rtmr[1])),
        ("rtmr2", opt_hex(&r.rtmr[2])),
        ("rtmr3", opt_hex(&r.rtmr[3])),
        ("snp_measurement", opt_hex(&r.snp_measurement)),
        ("simulation_measurement", opt_hex(&r.simulation_measurement)),
    ])
}

fn service(sv: &Service) -> Value {
    obj([
        ("name", s(&sv.name)),
        (
            "command",
            Value::Arr(sv.command.iter().map(|a| s(a)).collect()),
        ),
        (
            "environment",
            Value::Map(
                sv.environment
                    .iter()
                    .map(|(k, v)| (k.clone(), s(v)))
                    .collect(),
            ),
        ),
        ("pwd", opt_s(&sv.pwd)),
        ("image_name", opt_s(&sv.image_name)),
        (
            "attestation",
            sorted(sv.attestation.iter().map(rule).collect()),
        ),
    ])
}

fn secret(sec: &Secret) -> Value {
    let mut m: BTreeMap<&'static str, Value> = BTreeMap::new();
    m.insert("name", s(&sec.name));
    m.insert("kind", s(sec.kind.as_str()));
    m.insert(
        "export",
        sorted(sec.export.iter().map(|e| s(&e.session)).collect()),
    );
    m.insert(
        "import",
        sec.import.as_ref().map_or(Value::Null, |i| {
            obj([
                ("session", s(&i.session)),
                ("secret", s(&i.secret)),
                ("kind", i.kind.map_or(Value::Null, |k| s(k.as_str()))),
            ])
        }),
    );
    match &sec.kind {
        SecretKind::Ascii { size } | SecretKind::Binary { size } => {
            m.insert("size", Value::Int(*size as u64));
        }
        SecretKind::Explicit { value } => {
            m.insert("value", hexv(value.expose()));
        }
        SecretKind::PrivateKey { algorithm, value } => {
            m.insert("algorithm", s(algorithm.as_str()));
            // Only when given, so hashes of sessions without one are unchanged.
            if let Some(v) = value {
                m.insert("value", hexv(v.expose()));
            }
        }
        SecretKind::X509Ca {
            common_name,
            valid_for,
            algorithm,
        } => {
            m.insert("algorithm", s(algorithm.as_str()));
            m.insert("common_name", opt_s(common_name));
            m.insert(
                "valid_for",
                valid_for.map_or(Value::Null, |d| Value::Int(d.as_secs())),
            );
        }
        SecretKind::X509 {
            issuer,
            common_name,
            dns,
            valid_for,
            algorithm,
        } => {
            m.insert("algorithm", s(algorithm.as_str()));
            m.insert("issuer", s(issuer));
            m.insert("common_name", s(common_name));
            // Order kept: it is the order of the subjectAltName entries.
            m.insert("dns", Value::Arr(dns.iter().map(|d| s(d)).collect()));
            m.insert("valid_for", Value::Int(valid_for.as_secs()));
        }
        SecretKind::Imported => {}
    }
    Value::Obj(m)
}

fn volume(v: &Volume) -> Value {
    obj([
        ("name", s(&v.name)),
        (
            "key",
            v.key.as_ref().map_or(Value::Null, |k| hexv(k.expose())),
        ),
        ("tag", opt_hex(&v.tag)),
    ])
}

fn image(i: &Image) -> Value {
    obj([
        ("name", s(&i.name)),
        (
            "volumes",
            sorted(
                i.volumes
                    .iter()
                    .map(|v| obj([("name", s(&v.name)), ("path", s(&v.path))]))
                    .collect(),
            ),
        ),
        (
            "injection_files",
            sorted(
                i.injection_files
                    .iter()
                    .map(|f| {
                        obj([
                            ("path", s(&f.path)),
                            ("content", s(&f.content)),
                            ("mode", Value::Int(f.mode.into())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

fn security(sec: &Security) -> Value {
    let mut v = obj([
        ("attestation_mode", s(sec.attestation_mode.as_str())),
        (
            "tolerate",
            sorted(sec.tolerate.iter().map(|t| s(t.as_str())).collect()),
        ),
        (
            "ignore_advisories",
            sorted(sec.ignore_advisories.iter().map(|a| s(a)).collect()),
        ),
    ]);
    // Only when set (and `fmc` only when given), so the hashes of sessions
    // without a minimum did not change when it was added.
    if let (Value::Obj(m), Some(t)) = (&mut v, &sec.snp_min_tcb) {
        let mut tcb = obj([
            ("bootloader", Value::Int(t.bootloader.into())),
            ("tee", Value::Int(t.tee.into())),
            ("snp", Value::Int(t.snp.into())),
            ("microcode", Value::Int(t.microcode.into())),
        ]);
        if let (Value::Obj(tm), Some(f)) = (&mut tcb, t.fmc) {
            tm.insert("fmc", Value::Int(f.into()));
        }
        m.insert("snp_min_tcb", tcb);
    }
    v
}

/// The canonical JSON of `session` (without the domain prefix).
pub fn canonical_json(session: &Session) -> Vec<u8> {
    let sec = &session.security;
    let root = obj([
        ("name", s(session.name.as_str())),
        ("version", opt_s(&session.version)),
        (
            "predecessor",
            session
                .predecessor
                .map_or(Value::Null, |h| Value::Str(h.to_string())),
        ),
        (
            "services",
            sorted(session.services.iter().map(service).collect()),
        ),
        (
            "secrets",
            sorted(session.secrets.iter().map(secret).collect()),
        ),
        (
            "volumes",
            sorted(session.volumes.iter().map(volume).collect()),
        ),
        ("images", sorted(session.images.iter().map(image).collect())),
        (
            "access_policy",
            obj([
                ("read", principals(&session.access_policy.read)),
                ("update", principals(&session.access_policy.update)),
                (
                    "create_sessions",
                    principals(&session.access_policy.create_sessions),
                ),
            ]),
        ),
        ("security", security(sec)),
    ]);
    root.encode()
}

/// SHA-256 over [`HASH_DOMAIN`] followed by the canonical JSON.
pub fn hash(session: &Session) -> SessionHash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(HASH_DOMAIN);
    ctx.update(&canonical_json(session));
    let digest = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    SessionHash(out)
}
