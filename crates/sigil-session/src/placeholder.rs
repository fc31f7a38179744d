//! Secret placeholders: `$$SIGIL::name$$` or `$$SIGIL::name:format$$`
//! (`$$SCONE::...$$` is accepted as an alias) in commands, environment values
//! and injected files.
//!
//! SCONE's `$$SCONE::name.crt$$`, `.chain` and `.key` are read as the
//! formats `crt`, `chain` and `privatekey`.
//!
//! Anything that starts with `$$SIGIL` or `$$SCONE` must be a well-formed
//! placeholder: a typo such as `$$SIGIL:name$$` is an error rather than text
//! silently passed through to the service.

use std::fmt;
use std::ops::Range;

/// Longest secret name in a placeholder.
const MAX_NAME: usize = crate::model::MAX_NAME_LEN;

/// One placeholder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Placeholder {
    /// Name of the secret (own or imported).
    pub secret: String,
    /// How to render it.
    pub format: Format,
}

/// Rendering of a secret in a placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// No format given: the value as is (keys and certificates: PEM).
    Default,
    /// Lowercase hex of the value (of the DER for keys/certificates).
    Hex,
    /// Standard base64 of the value (of the DER for keys/certificates).
    Base64,
    /// PEM (keys and certificates).
    Pem,
    /// Raw bytes / DER (`der`, alias `bin`).
    Der,
    /// The certificate in PEM (x509 kinds).
    Crt,
    /// The certificate chain in PEM, leaf first (x509 kinds).
    Chain,
    /// The private key in PEM (key kinds).
    PrivateKey,
}

impl Format {
    /// Parses a format name; `bin` is an alias of `der`.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "hex" => Format::Hex,
            "base64" => Format::Base64,
            "pem" => Format::Pem,
            "der" | "bin" => Format::Der,
            "crt" => Format::Crt,
            "chain" => Format::Chain,
            "privatekey" => Format::PrivateKey,
            _ => return None,
        })
    }

    /// The format's name (`""` for [`Format::Default`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Default => "",
            Format::Hex => "hex",
            Format::Base64 => "base64",
            Format::Pem => "pem",
            Format::Der => "der",
            Format::Crt => "crt",
            Format::Chain => "chain",
            Format::PrivateKey => "privatekey",
        }
    }
}

impl fmt::Display for Placeholder {
    /// Writes the placeholder in its `$$SIGIL::...$$` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            Format::Default => write!(f, "$$SIGIL::{}$$", self.secret),
            other => write!(f, "$$SIGIL::{}:{}$$", self.secret, other.as_str()),
        }
    }
}

/// A malformed placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct PlaceholderError {
    /// Byte offset of the `$$` that starts the bad placeholder.
    pub offset: usize,
    /// What is wrong.
    pub kind: PlaceholderErrorKind,
}

/// What is wrong with a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderErrorKind {
    /// `$$SIGIL` / `$$SCONE` not followed by `::`.
    #[error("placeholder prefix must be followed by '::' (e.g. $$SIGIL::name$$)")]
    MissingSeparator,
    /// No closing `$$`.
    #[error("placeholder is not closed by '$$'")]
    Unterminated,
    /// Empty, too long or with characters outside `[A-Za-z0-9_.-]`.
    #[error("placeholder secret name must be 1-128 characters of A-Z a-z 0-9 _ . -")]
    InvalidName,
    /// A format that does not exist (the name is not repeated: it may be a typo'd secret).
    #[error("unknown placeholder format (expected hex, base64, pem, der, bin, crt, chain or privatekey)")]
    UnknownFormat,
}

/// Failure of [`substitute`] / [`substitute_bytes`].
#[derive(Debug)]
pub enum SubstituteError<E> {
    /// The text contains a malformed placeholder.
    Placeholder(PlaceholderError),
    /// The resolver refused a placeholder.
    Resolve(E),
}

impl<E: fmt::Display> fmt::Display for SubstituteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubstituteError::Placeholder(e) => write!(f, "malformed placeholder: {e}"),
            SubstituteError::Resolve(e) => write!(f, "cannot resolve placeholder: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for SubstituteError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SubstituteError::Placeholder(e) => Some(e),
            SubstituteError::Resolve(e) => Some(e),
        }
    }
}

const PREFIXES: [&[u8]; 2] = [b"$$SIGIL", b"$$SCONE"];

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Finds every placeholder in `text` (byte ranges, each covering `$$...$$`).
pub fn find(text: &str) -> Result<Vec<(Range<usize>, Placeholder)>, PlaceholderError> {
    find_bytes(text.as_bytes())
}

/// Like [`find`], on bytes (binary files may contain placeholders too).
pub fn find_bytes(text: &[u8]) -> Result<Vec<(Range<usize>, Placeholder)>, PlaceholderError> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(rel) = memfind(&text[i..], b"$$") {
        let start = i + rel;
        let rest = &text[start..];
        let Some(prefix) = PREFIXES.iter().find(|p| rest.starts_with(p)) else {
            // A lone "$$" is ordinary text (e.g. shell PIDs). Skip one byte so
            // "$$$SIGIL::x$$" still finds the placeholder at offset 1.
            i = start + 1;
            continue;
        };
        let err = |kind| PlaceholderError {
            offset: start,
            kind,
        };
        let after = &rest[prefix.len()..];
        let Some(body) = after.strip_prefix(b"::") else {
            return Err(err(PlaceholderErrorKind::MissingSeparator));
        };
        let body_start = start + prefix.len() + 2;
        let Some(end_rel) = memfind(body, b"$$") else {
            return Err(err(PlaceholderErrorKind::Unterminated));
        };
        let inner = &body[..end_rel];
        let (mut name, format) = match inner.iter().position(|&b| b == b':') {
            Some(c) => (&inner[..c], Some(&inner[c + 1..])),
            None => (inner, None),
        };
        // SCONE's spelling for certificates and keys: `$$SCONE::name.crt$$`,
        // `.chain`, `.key` (only with the SCONE prefix and no `:format`).
        let mut dotted = None;
        if *prefix == b"$$SCONE" && format.is_none() {
            for (suffix, f) in [
                (&b".crt"[..], Format::Crt),
                (b".chain", Format::Chain),
                (b".key", Format::PrivateKey),
            ] {
                if name.len() > suffix.len() && name.ends_with(suffix) {
                    name = &name[..name.len() - suffix.len()];
                    dotted = Some(f);
                    break;
                }
            }
        }
        if name.is_empty() || name.len() > MAX_NAME || !name.iter().all(|&b| is_name_byte(b)) {
            return Err(err(PlaceholderErrorKind::InvalidName));
        }
        let format = match format {
            None => dotted.unwrap_or(Format::Default),
            Some(f) => std::str::from_utf8(f)
                .ok()
                .and_then(Format::parse)
                .ok_or_else(|| err(PlaceholderErrorKind::UnknownFormat))?,
        };
        let end = body_start + end_rel + 2;
        out.push((
            start..end,
            Placeholder {
                // Checked above: ASCII only.
                secret: String::from_utf8_lossy(name).into_owned(),
                format,
            },
        ));
        i = end;
    }
    Ok(out)
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replaces every placeholder in `text` by `f(placeholder)`.
pub fn substitute<E>(
    text: &str,
    mut f: impl FnMut(&Placeholder) -> Result<String, E>,
) -> Result<String, SubstituteError<E>> {
    let found = find(text).map_err(SubstituteError::Placeholder)?;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, ph) in found {
        out.push_str(&text[last..range.start]);
        out.push_str(&f(&ph).map_err(SubstituteError::Resolve)?);
        last = range.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// Replaces every placeholder in `text` (bytes) by `f(placeholder)`.
pub fn substitute_bytes<E>(
    text: &[u8],
    mut f: impl FnMut(&Placeholder) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, SubstituteError<E>> {
    let found = find_bytes(text).map_err(SubstituteError::Placeholder)?;
    let mut out = Vec::with_capacity(text.len());
    let mut last = 0;
    for (range, ph) in found {
        out.extend_from_slice(&text[last..range.start]);
        out.extend_from_slice(&f(&ph).map_err(SubstituteError::Resolve)?);
        last = range.end;
    }
    out.extend_from_slice(&text[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ph(secret: &str, format: Format) -> Placeholder {
        Placeholder {
            secret: secret.into(),
            format,
        }
    }

    #[test]
    fn finds_placeholders_with_formats_and_alias() {
        let text = "a $$SIGIL::db$$ b $$SCONE::key:pem$$ c $$SIGIL::x.y-z_1:bin$$";
        let found = find(text).unwrap();
        let got: Vec<(&str, Placeholder)> = found
            .iter()
            .map(|(r, p)| (&text[r.clone()], p.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("$$SIGIL::db$$", ph("db", Format::Default)),
                ("$$SCONE::key:pem$$", ph("key", Format::Pem)),
                ("$$SIGIL::x.y-z_1:bin$$", ph("x.y-z_1", Format::Der)),
            ]
        );
    }

    #[test]
    fn every_format_name_parses_and_displays() {
        for (name, f) in [
            ("hex", Format::Hex),
            ("base64", Format::Base64),
            ("pem", Format::Pem),
            ("der", Format::Der),
            ("bin", Format::Der),
            ("crt", Format::Crt),
            ("chain", Format::Chain),
            ("privatekey", Format::PrivateKey),
        ] {
            let text = format!("$$SIGIL::s:{name}$$");
            let found = find(&text).unwrap();
            assert_eq!(found[0].1, ph("s", f));
            // Display writes a placeholder that finds the same thing.
            let again = found[0].1.to_string();
            assert_eq!(find(&again).unwrap()[0].1, found[0].1);
        }
    }

    #[test]
    fn scone_dotted_certificate_spellings() {
        let found = find("$$SCONE::flask.crt$$ $$SCONE::flask.key$$ $$SCONE::ca.chain$$ $$SIGIL::a.crt$$ $$SCONE::b.crt:hex$$ $$SCONE::.key$$").unwrap();
        let got: Vec<Placeholder> = found.into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            got,
            [
                ph("flask", Format::Crt),
                ph("flask", Format::PrivateKey),
                ph("ca", Format::Chain),
                // Only the SCONE prefix, and only without `:format`.
                ph("a.crt", Format::Default),
                ph("b.crt", Format::Hex),
                ph(".key", Format::Default),
            ]
        );
    }

    #[test]
    fn plain_dollars_are_text() {
        assert!(find("echo $$ $$$ $$x$$ $").unwrap().is_empty());
        // A placeholder right after a lone '$'.
        let found = find("$$$SIGIL::a$$").unwrap();
        assert_eq!(found[0].0, 1..13);
    }

    #[test]
    fn malformed_placeholders_are_errors() {
        for (text, kind, offset) in [
            ("x $$SIGIL:a$$", PlaceholderErrorKind::MissingSeparator, 2),
            ("$$SCONE a$$", PlaceholderErrorKind::MissingSeparator, 0),
            ("$$SIGIL::a", PlaceholderErrorKind::Unterminated, 0),
            ("$$SIGIL::$$", PlaceholderErrorKind::InvalidName, 0),
            ("$$SIGIL::a b$$", PlaceholderErrorKind::InvalidName, 0),
            ("$$SIGIL::ä$$", PlaceholderErrorKind::InvalidName, 0),
            ("$$SIGIL::a:$$", PlaceholderErrorKind::UnknownFormat, 0),
            ("$$SIGIL::a:PEM$$", PlaceholderErrorKind::UnknownFormat, 0),
            ("$$SIGIL::a:pem:x$$", PlaceholderErrorKind::UnknownFormat, 0),
        ] {
            assert_eq!(
                find(text).unwrap_err(),
                PlaceholderError { offset, kind },
                "{text}"
            );
        }
        let long = format!("$$SIGIL::{}$$", "a".repeat(129));
        assert_eq!(
            find(&long).unwrap_err().kind,
            PlaceholderErrorKind::InvalidName
        );
        let max = format!("$$SIGIL::{}$$", "a".repeat(128));
        assert_eq!(find(&max).unwrap().len(), 1);
    }

    #[test]
    fn substitute_replaces_in_order() {
        let mut seen = Vec::new();
        let out = substitute("u=$$SIGIL::user$$ p=$$SCONE::pw:hex$$!", |p| {
            seen.push(p.clone());
            Ok::<_, String>(format!("<{}>", p.secret))
        })
        .unwrap();
        assert_eq!(out, "u=<user> p=<pw>!");
        assert_eq!(seen, [ph("user", Format::Default), ph("pw", Format::Hex)]);
        // No placeholder: unchanged, resolver never called.
        let out = substitute("plain $$ text", |_| Err::<String, _>("called")).unwrap();
        assert_eq!(out, "plain $$ text");
    }

    #[test]
    fn substitute_reports_resolver_and_syntax_errors() {
        let err = substitute("$$SIGIL::x$$", |_| Err::<String, _>("no such secret")).unwrap_err();
        assert!(matches!(err, SubstituteError::Resolve("no such secret")));
        assert_eq!(
            err.to_string(),
            "cannot resolve placeholder: no such secret"
        );
        let err = substitute("$$SIGIL::x", |_| Ok::<_, String>(String::new())).unwrap_err();
        assert!(matches!(err, SubstituteError::Placeholder(_)));
    }

    #[test]
    fn substitute_bytes_handles_binary_text_and_values() {
        let text = b"\x00\xff$$SIGIL::k:der$$\x80";
        let out = substitute_bytes(text, |p| {
            assert_eq!(p, &ph("k", Format::Der));
            Ok::<_, ()>(vec![0xde, 0xad, 0x00])
        })
        .unwrap();
        assert_eq!(out, b"\x00\xff\xde\xad\x00\x80");
        // A substituted value is not scanned again.
        let out =
            substitute_bytes(b"$$SIGIL::a$$", |_| Ok::<_, ()>(b"$$SIGIL::a$$".to_vec())).unwrap();
        assert_eq!(out, b"$$SIGIL::a$$");
    }
}
