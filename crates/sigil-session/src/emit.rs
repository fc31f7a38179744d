//! Writing a session as YAML. Every string is double-quoted (with escapes) or,
//! for readable multi-line text, a literal block, so no value can be
//! misread as another type or break the structure.

use std::fmt::Write;

use crate::model::*;

/// Marker written instead of secret material by [`Session::to_yaml_redacted`].
pub const REDACTED: &str = "<redacted>";

struct Out {
    buf: String,
    redact: bool,
}

/// A YAML double-quoted string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Control characters, DEL, C1 controls, line/paragraph
            // separators and BOM are escaped: YAML treats several of them
            // specially and they are invisible anyway.
            c if (c as u32) < 0x20
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || c == '\u{2028}'
                || c == '\u{2029}'
                || c == '\u{feff}' =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Can `s` be written as a literal block scalar and read back unchanged?
pub(crate) fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && s.chars().all(|c| {
            c == '\n'
                || c == '\t'
                || !((c as u32) < 0x20
                    || ('\u{7f}'..='\u{9f}').contains(&c)
                    || c == '\u{2028}'
                    || c == '\u{2029}'
                    || c == '\u{feff}')
        })
        // Whitespace-only lines could be read as (empty) indentation.
        && s.split('\n').all(|l| l.is_empty() || !l.trim_matches([' ', '\t']).is_empty())
        // Tabs right after the indentation are fine in YAML 1.2 but trip
        // some parsers; play safe.
        && s.split('\n').all(|l| !l.starts_with('\t'))
}

impl Out {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.buf.push(' ');
        }
        self.buf.push_str(text);
        self.buf.push('\n');
    }

    fn kv(&mut self, indent: usize, key: &str, value: &str) {
        self.line(indent, &format!("{key}: {}", quote(value)));
    }

    fn kv_raw(&mut self, indent: usize, key: &str, raw: &str) {
        self.line(indent, &format!("{key}: {raw}"));
    }

    /// A possibly multi-line text value.
    fn text(&mut self, indent: usize, key: &str, value: &str) {
        if !literal_ok(value) {
            return self.kv(indent, key, value);
        }
        let trailing = value.len() - value.trim_end_matches('\n').len();
        let chomp = match trailing {
            0 => "-",
            1 => "",
            _ => "+",
        };
        self.line(indent, &format!("{key}: |{chomp}"));
        let body = value.trim_end_matches('\n');
        for l in body.split('\n') {
            if l.is_empty() {
                self.buf.push('\n');
            } else {
                self.line(indent + 2, l);
            }
        }
        for _ in 1..trailing {
            self.buf.push('\n');
        }
    }

    fn list(&mut self, indent: usize, key: &str, items: &[String]) {
        let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
        self.kv_raw(indent, key, &format!("[{}]", inner.join(", ")));
    }

    fn secret_hex(&self, b: &[u8]) -> String {
        if self.redact {
            quote(REDACTED)
        } else {
            quote(&hex::encode(b))
        }
    }
}

fn principals(p: &[Principal]) -> Vec<String> {
    p.iter().map(|p| p.to_string()).collect()
}

/// The largest unit that divides the duration exactly, e.g. `90d`, `5y`.
fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    for (unit, n) in [("y", 365 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

pub(crate) fn to_yaml(session: &Session, redact: bool) -> String {
    let mut o = Out {
        buf: String::new(),
        redact,
    };
    o.kv(0, "name", session.name.as_str());
    if let Some(v) = &session.version {
        o.kv(0, "version", v);
    }
    if let Some(p) = &session.predecessor {
        o.kv(0, "predecessor", &p.to_string());
    }

    if !session.services.is_empty() {
        o.line(0, "services:");
        for sv in &session.services {
            o.kv(2, "- name", &sv.name);
            if !sv.command.is_empty() {
                o.list(4, "command", &sv.command);
            }
            if let Some(img) = &sv.image_name {
                o.kv(4, "image_name", img);
            }
            if let Some(pwd) = &sv.pwd {
                o.kv(4, "pwd", pwd);
            }
            if !sv.environment.is_empty() {
                o.line(4, "environment:");
                for (k, v) in &sv.environment {
                    o.text(6, &quote(k), v);
                }
            }
            if !sv.attestation.is_empty() {
                o.line(4, "attestation:");
                for r in &sv.attestation {
                    let mut first = true;
                    let mut field = |o: &mut Out, key: &str, val: String| {
                        if first {
                            o.kv_raw(6, &format!("- {key}"), &val);
                            first = false;
                        } else {
                            o.kv_raw(8, key, &val);
                        }
                    };
                    let hq = |b: &[u8]| quote(&hex::encode(b));
                    if let Some(v) = &r.mrenclave {
                        field(&mut o, "mrenclave", hq(v));
                    }
                    if let Some(v) = &r.mrsigner {
                        field(&mut o, "mrsigner", hq(v));
                    }
                    if let Some(v) = r.isvprodid {
                        field(&mut o, "isvprodid", v.to_string());
                    }
                    if let Some(v) = r.isvsvn_min {
                        field(&mut o, "isvsvn_min", v.to_string());
                    }
                    if let Some(v) = &r.mrtd {
                        field(&mut o, "mrtd", hq(v));
                    }
                    for (i, rt) in r.rtmr.iter().enumerate() {
                        if let Some(v) = rt {
                            field(&mut o, &format!("rtmr{i}"), hq(v));
                        }
                    }
                    if let Some(v) = &r.snp_measurement {
                        field(&mut o, "measurement", hq(v));
                    }
                    if let Some(v) = &r.simulation_measurement {
                        field(&mut o, "simulation_measurement", hq(v));
                    }
                    if first {
                        // An empty rule (refused by validation, but keep the
                        // output well-formed).
                        o.line(6, "- {}");
                    }
                }
            }
        }
    }

    if !session.secrets.is_empty() {
        o.line(0, "secrets:");
        for sec in &session.secrets {
            o.kv(2, "- name", &sec.name);
            match &sec.kind {
                SecretKind::Ascii { size } => {
                    o.kv(4, "kind", "ascii");
                    o.kv_raw(4, "size", &size.to_string());
                }
                SecretKind::Binary { size } => {
                    o.kv(4, "kind", "binary");
                    o.kv_raw(4, "size", &size.to_string());
                }
                SecretKind::Explicit { value } => {
                    o.kv(4, "kind", "explicit");
                    if o.redact {
                        o.kv(4, "value", REDACTED);
                    } else {
                        let b = value.expose();
                        match std::str::from_utf8(b) {
                            Ok(text) if !text.contains('\0') => o.text(4, "value", text),
                            _ => {
                                use base64::Engine;
                                o.kv(4, "encoding", "base64");
                                o.kv(
                                    4,
                                    "value",
                                    &base64::engine::general_purpose::STANDARD.encode(b),
                                );
                            }
                        }
                    }
                }
                SecretKind::PrivateKey { algorithm, value } => {
                    o.kv(4, "kind", "private-key");
                    o.kv(4, "algorithm", algorithm.as_str());
                    if let Some(v) = value {
                        if o.redact {
                            o.kv(4, "value", REDACTED);
                        } else {
                            // PKCS#8 DER; parses back to the same bytes.
                            o.kv(4, "encoding", "hex");
                            o.kv(4, "value", &hex::encode(v.expose()));
                        }
                    }
                }
                SecretKind::X509Ca {
                    common_name,
                    valid_for,
                    algorithm,
                } => {
                    o.kv(4, "kind", "x509-ca");
                    o.kv(4, "algorithm", algorithm.as_str());
                    if let Some(cn) = common_name {
                        o.kv(4, "common_name", cn);
                    }
                    if let Some(d) = valid_for {
                        o.kv(4, "valid_for", &duration(*d));
                    }
                }
                SecretKind::X509 {
                    issuer,
                    common_name,
                    dns,
                    valid_for,
                    algorithm,
                } => {
                    o.kv(4, "kind", "x509");
                    o.kv(4, "algorithm", algorithm.as_str());
                    o.kv(4, "issuer", issuer);
                    o.kv(4, "common_name", common_name);
                    if !dns.is_empty() {
                        o.list(4, "dns", dns);
                    }
                    o.kv(4, "valid_for", &duration(*valid_for));
                }
                SecretKind::Imported => {}
            }
            if let Some(imp) = &sec.import {
                if let Some(k) = imp.kind {
                    o.kv(4, "kind", k.as_str());
                }
                o.line(4, "import:");
                o.kv(6, "session", &imp.session);
                o.kv(6, "secret", &imp.secret);
            }
            if !sec.export.is_empty() {
                o.line(4, "export:");
                for e in &sec.export {
                    o.kv(6, "- session", &e.session);
                }
            }
        }
    }

    if !session.volumes.is_empty() {
        o.line(0, "volumes:");
        for v in &session.volumes {
            o.kv(2, "- name", &v.name);
            if let Some(k) = &v.key {
                let val = o.secret_hex(k.expose());
                o.kv_raw(4, "key", &val);
            }
            if let Some(t) = &v.tag {
                o.kv(4, "tag", &hex::encode(t));
            }
        }
    }

    if !session.images.is_empty() {
        o.line(0, "images:");
        for img in &session.images {
            o.kv(2, "- name", &img.name);
            if !img.volumes.is_empty() {
                o.line(4, "volumes:");
                for v in &img.volumes {
                    o.kv(6, "- name", &v.name);
                    o.kv(8, "path", &v.path);
                }
            }
            if !img.injection_files.is_empty() {
                o.line(4, "injection_files:");
                for f in &img.injection_files {
                    o.kv(6, "- path", &f.path);
                    o.kv_raw(8, "mode", &format!("\"0{:o}\"", f.mode));
                    o.text(8, "content", &f.content);
                }
            }
        }
    }

    let ap = &session.access_policy;
    o.line(0, "access_policy:");
    o.list(2, "read", &principals(&ap.read));
    o.list(2, "update", &principals(&ap.update));
    o.list(2, "create_sessions", &principals(&ap.create_sessions));

    let sec = &session.security;
    o.line(0, "security:");
    o.line(2, "attestation:");
    o.kv(4, "mode", sec.attestation_mode.as_str());
    let tol: Vec<String> = sec.tolerate.iter().map(|t| t.as_str().to_owned()).collect();
    o.list(4, "tolerate", &tol);
    let adv: Vec<String> = sec.ignore_advisories.iter().cloned().collect();
    o.list(4, "ignore_advisories", &adv);
    if let Some(t) = &sec.snp_min_tcb {
        o.line(4, "snp:");
        o.line(6, "min_tcb:");
        o.kv_raw(8, "bootloader", &t.bootloader.to_string());
        o.kv_raw(8, "tee", &t.tee.to_string());
        o.kv_raw(8, "snp", &t.snp.to_string());
        o.kv_raw(8, "microcode", &t.microcode.to_string());
        if let Some(f) = t.fmc {
            o.kv_raw(8, "fmc", &f.to_string());
        }
    }
    o.buf
}
