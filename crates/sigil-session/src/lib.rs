//! Sigil's session (policy) language: parsing, validation, canonical hashing
//! and secret placeholders.
//!
//! The language is specified in `docs/session-language.md`. [`Session::parse`]
//! reports every problem of a document at once, each with its field path and
//! line:column; [`Session::hash`] is the SHA-256 of the documented canonical
//! form, so formatting and key order never change it.
//!
//! ```
//! use sigil_session::*;
//!
//! let yaml = r#"
//! name: demo/web
//! services:
//!   - name: web
//!     command: nginx -g "daemon off;"
//!     environment: {TOKEN: "$$SIGIL::token:hex$$"}
//!     attestation:
//!       - mrenclave: 0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a
//! secrets:
//!   - {name: token, kind: binary, size: 16}
//! "#;
//! let session = Session::parse(yaml).expect("valid session");
//! assert_eq!(session.services[0].command, ["nginx", "-g", "daemon off;"]);
//!
//! // Sessions can be built in code, checked, written and read back.
//! let mut generated = Session::new("demo/generated".parse().unwrap());
//! generated.services.push(Service {
//!     name: "app".into(),
//!     command: vec!["/app".into()],
//!     attestation: vec![AttestationRule {
//!         simulation_measurement: Some([7; 32]),
//!         ..Default::default()
//!     }],
//!     ..Default::default()
//! });
//! generated.security.attestation_mode = AttestationMode::Simulation;
//! generated.validate().expect("valid");
//! let back = Session::parse(&generated.to_yaml()).expect("round trip");
//! assert_eq!(back.hash(), generated.hash());
//!
//! // Every error, with its path and position.
//! let errors = Session::parse("name: x\nservices: [{name: a, pwd: rel}]\n").unwrap_err();
//! assert_eq!(errors.to_string(), "2:27: services[0].pwd: path must be absolute");
//! ```

mod canonical;
mod emit;
mod error;
pub mod keys;
mod model;
mod parse;
pub mod placeholder;
#[cfg(test)]
mod proptests;
mod validate;
mod yaml;

pub use validate::{name_error, MAX_EXPLICIT_VALUE, MAX_INJECTION_CONTENT, MAX_RANDOM_SIZE};
pub use yaml::{MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_NODES};

pub use canonical::HASH_DOMAIN;
pub use emit::REDACTED;
pub use error::{ParseError, ParseErrors};
pub use model::*;

impl Session {
    /// Parses and validates a session document: YAML syntax, schema (types,
    /// required and unknown keys) and semantic checks. On failure returns
    /// every error found (up to 200), in document order, each with its field
    /// path and line:column.
    pub fn parse(yaml: &str) -> Result<Session, ParseErrors> {
        let (root, yaml_errors) = yaml::load(yaml);
        let mut cx = parse::Cx::new();
        for e in yaml_errors {
            cx.err(&e.path, e.pos, e.message);
        }
        let Some(root) = root else {
            if cx.errors.is_empty() {
                cx.err("", yaml::Pos { line: 1, column: 1 }, "document is empty");
            }
            return Err(finish(cx.errors));
        };
        let session = parse::session(&mut cx, &root);
        let conversion_errors = cx.errors.len();
        if let Some(s) = &session {
            validate::validate(&mut cx, s);
        }
        // A value that could not be read is reported once: drop validation
        // errors about the same field (or a field around or inside it).
        let (conv, val) = cx.errors.split_at(conversion_errors);
        let related = RelatedPaths::new(conv.iter().map(|e| e.path.as_str()));
        let mut errors = conv.to_vec();
        errors.extend(val.iter().filter(|v| !related.covers(&v.path)).cloned());
        match session {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(finish(errors)),
        }
    }

    /// Runs the semantic checks of [`Session::parse`] on a session built in
    /// code. Errors carry field paths; line and column are 0.
    pub fn validate(&self) -> Result<(), ParseErrors> {
        let mut cx = parse::Cx::new();
        validate::validate(&mut cx, self);
        if cx.errors.is_empty() {
            Ok(())
        } else {
            Err(finish(cx.errors))
        }
    }

    /// SHA-256 over the canonical form (see `docs/session-language.md`).
    pub fn hash(&self) -> SessionHash {
        canonical::hash(self)
    }

    /// The canonical JSON that [`Session::hash`] hashes (after [`HASH_DOMAIN`]).
    /// Contains secret values: do not log it.
    pub fn canonical_form(&self) -> Vec<u8> {
        canonical::canonical_json(self)
    }

    /// YAML that parses back to an equal session.
    pub fn to_yaml(&self) -> String {
        emit::to_yaml(self, false)
    }

    /// Like [`Session::to_yaml`] with explicit secret values and volume keys
    /// replaced by `"<redacted>"` (for display; does not parse back equal).
    pub fn to_yaml_redacted(&self) -> String {
        emit::to_yaml(self, true)
    }
}

/// Paths of errors found while reading values, to recognise validation
/// errors about the same field (or one around or inside it). The document
/// path "" (YAML-level errors) relates to nothing. Hash sets keep this linear
/// in the number of errors.
struct RelatedPaths<'a> {
    exact: std::collections::HashSet<&'a str>,
    prefixes: std::collections::HashSet<&'a str>,
}

/// `path` and every shorter path at a field boundary (`a.b[0].c` -> `a.b[0]`, `a.b`, `a`).
fn path_prefixes(path: &str) -> impl Iterator<Item = &str> {
    let mut cut = Some(path.len()).filter(|&n| n > 0);
    std::iter::from_fn(move || {
        let end = cut?;
        let p = &path[..end];
        cut = p.rfind(['.', '[']).filter(|&i| i > 0);
        Some(p)
    })
}

impl<'a> RelatedPaths<'a> {
    fn new(paths: impl Iterator<Item = &'a str>) -> Self {
        let mut exact = std::collections::HashSet::new();
        let mut prefixes = std::collections::HashSet::new();
        for p in paths.filter(|p| !p.is_empty()) {
            exact.insert(p);
            prefixes.extend(path_prefixes(p));
        }
        RelatedPaths { exact, prefixes }
    }

    fn covers(&self, path: &str) -> bool {
        self.prefixes.contains(path) || path_prefixes(path).any(|p| self.exact.contains(p))
    }
}

/// Sorts errors into document order and caps their number.
fn finish(mut errors: Vec<ParseError>) -> ParseErrors {
    // Errors without a position (line 0) go last; stable keeps their order.
    errors.sort_by_key(|e| (e.line == 0, e.line, e.column));
    if errors.len() > parse::MAX_ERRORS {
        let more = errors.len() - parse::MAX_ERRORS;
        errors.truncate(parse::MAX_ERRORS);
        errors.push(ParseError {
            path: String::new(),
            line: 0,
            column: 0,
            message: format!("... and {more} more errors"),
        });
    }
    ParseErrors(errors)
}

#[cfg(test)]
mod related_paths_tests {
    use super::*;

    #[test]
    fn relates_fields_around_and_inside_but_not_siblings() {
        let r = RelatedPaths::new(["services[0].attestation[1].mrenclave", "", "name"].into_iter());
        for yes in [
            "services[0].attestation[1].mrenclave",
            "services[0].attestation[1]",
            "services[0]",
            "services",
            "name",
            "name.x",
        ] {
            assert!(r.covers(yes), "{yes}");
        }
        for no in [
            "",
            "services[0].attestation[10]",
            "services[0].attestation[0]",
            "services[1]",
            "services[0].name",
            "names",
            "secrets[0]",
        ] {
            assert!(!r.covers(no), "{no}");
        }
    }
}
