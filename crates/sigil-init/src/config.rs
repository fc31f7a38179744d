//! `/sigil/init.toml`: what `sigil convert` tells the launcher about the image.
//!
//! The file is part of the simulation measurement (see [`crate::measurement`]),
//! so everything in it is as trustworthy as the measurement itself. The host
//! may override only what is safe to override (see `docs/protocol.md`): the
//! CAS address, the config id and the mode. The CAS key pin is never taken
//! from the environment.
//!
//! ```toml
//! version = 1
//! cas_addr = "cas.sigil.svc:8443"
//! cas_fingerprint = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! config_id = "shop/web"
//! binary = "/usr/bin/python3.11"
//! memory_dir = "/run/sigil"
//! allow_env_passthrough = ["TZ"]
//! mode = "auto"
//!
//! [[volumes]]
//! name = "app"
//! sealed_dir = "/sigil/volumes/app"
//! paths = ["/app", "/usr/lib/python3.11"]
//! tag = "0123...ef"
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where `sigil convert` puts the file and where the launcher reads it.
pub const INIT_TOML_PATH: &str = "/sigil/init.toml";
/// Largest init.toml the launcher accepts (it is written by `sigil convert`;
/// anything bigger is not ours).
pub const MAX_INIT_TOML_BYTES: usize = 64 * 1024;
/// Most volumes one image may have.
pub const MAX_VOLUMES: usize = 64;
/// Most restored paths per volume.
pub const MAX_PATHS_PER_VOLUME: usize = 256;
/// Most pass-through environment variable names.
pub const MAX_PASSTHROUGH: usize = 256;
/// Longest path accepted anywhere in the file.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest volume name (the session language's limit for names).
pub const MAX_NAME_LEN: usize = 128;
/// Default memory-only directory for injected files and opened volumes.
pub const DEFAULT_MEMORY_DIR: &str = "/run/sigil";

/// Environment variable that may override [`InitConfig::cas_addr`].
pub const ENV_CAS_ADDR: &str = "SIGIL_CAS_ADDR";
/// Environment variable that may override [`InitConfig::config_id`].
pub const ENV_CONFIG_ID: &str = "SIGIL_CONFIG_ID";
/// Environment variable that may override [`InitConfig::mode`].
pub const ENV_MODE: &str = "SIGIL_MODE";

/// Why init.toml (or an override from the environment) was refused. Each
/// message names the field and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file is larger than [`MAX_INIT_TOML_BYTES`].
    #[error("init.toml is too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8.
    #[error("init.toml is not valid UTF-8")]
    NotUtf8,
    /// TOML syntax error, unknown or missing field, wrong type.
    #[error("init.toml: {0}")]
    Syntax(String),
    /// A field has a value that is not allowed.
    #[error("init.toml: {field}: {reason}")]
    Invalid {
        /// The field (e.g. `volumes[1].tag`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An environment override has a value that is not allowed.
    #[error("environment variable {var}: {reason}")]
    BadEnv {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// How the launcher obtains evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Hardware evidence only (SGX via Gramine's `/dev/attestation`, TDX or
    /// SEV-SNP via configfs-tsm); refuse to start without a TEE.
    Hw,
    /// Simulation evidence (no TEE). The CAS accepts it only for sessions
    /// that say `attestation.mode: simulation`.
    Sim,
    /// Hardware if a TEE interface is present, else simulation.
    #[default]
    Auto,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hw" => Ok(Mode::Hw),
            "sim" => Ok(Mode::Sim),
            "auto" => Ok(Mode::Auto),
            other => Err(format!(
                "unknown mode {:?} (expected hw, sim or auto)",
                truncate(other)
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Hw => "hw",
            Mode::Sim => "sim",
            Mode::Auto => "auto",
        })
    }
}

/// A pin of the CAS's TLS key: SHA-256 of its DER SubjectPublicKeyInfo,
/// written `sha256:` followed by 64 lowercase or uppercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin(pub [u8; 32]);

impl SpkiPin {
    /// The SHA-256 digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for SpkiPin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex_part = s
            .strip_prefix("sha256:")
            .ok_or_else(|| "expected sha256:<64 hex digits>".to_string())?;
        if hex_part.len() != 64 {
            return Err(format!(
                "expected 64 hex digits after sha256:, found {}",
                hex_part.len()
            ));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out)
            .map_err(|_| "not hexadecimal after sha256:".to_string())?;
        Ok(SpkiPin(out))
    }
}

impl Serialize for SpkiPin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpkiPin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `session/service`: which service of which session this image runs.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ConfigId {
    /// Session name.
    pub session: String,
    /// Service name within the session.
    pub service: String,
}

impl FromStr for ConfigId {
    type Err = String;
    /// As the CAS reads config ids: [`sigil_client::config_id::split_config_id`].
    fn from_str(s: &str) -> Result<Self, String> {
        let (session, service) =
            sigil_client::config_id::split_config_id(s).map_err(|e| e.to_string())?;
        Ok(ConfigId {
            session: session.to_string(),
            service: service.to_string(),
        })
    }
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.session, self.service)
    }
}

impl Serialize for ConfigId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One sealed volume of the image.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// Volume name; the session's volume key and tag are looked up by it.
    pub name: String,
    /// Directory in the image holding the sealed (encrypted) volume,
    /// e.g. `/sigil/volumes/app`.
    pub sealed_dir: String,
    /// Original absolute paths the volume restores, e.g.
    /// `["/app", "/usr/lib/python3.11"]`. `sigil convert` removed them from
    /// the root file system; the launcher opens the volume into the memory
    /// directory and makes each path a symlink into the opened copy.
    pub paths: Vec<String>,
    /// Expected volume tag (hex) as sealed by `sigil convert`. The CAS sends
    /// the current tag too; a mismatch is a rollback and is refused.
    pub tag: String,
}

/// The parsed and validated `/sigil/init.toml`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// Schema version; must be 1.
    pub version: u32,
    /// Default CAS address `host:port` (env `SIGIL_CAS_ADDR` may override).
    pub cas_addr: String,
    /// Pin of the CAS's TLS key. Never from the environment.
    pub cas_fingerprint: SpkiPin,
    /// Default `session/service` (env `SIGIL_CONFIG_ID` may override).
    pub config_id: ConfigId,
    /// Absolute path in the image of the program to exec. It is measured,
    /// so it must not lie inside a volume (volumes are opened only after
    /// attestation).
    pub binary: String,
    /// Sealed volumes.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// Memory-only directory (tmpfs) for injected files and opened volumes.
    #[serde(default = "default_memory_dir")]
    pub memory_dir: String,
    /// Names of host environment variables passed through to the
    /// application in addition to what the session sets.
    #[serde(default)]
    pub allow_env_passthrough: Vec<String>,
    /// Default mode (env `SIGIL_MODE` may override).
    #[serde(default)]
    pub mode: Mode,
}

fn default_memory_dir() -> String {
    DEFAULT_MEMORY_DIR.to_string()
}

/// "line N (`key`): message" — names the line and key without echoing
/// whole (possibly huge) input lines.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return ConfigError::Syntax(msg);
    };
    let start = span.start.min(text.len());
    let line_no = text.as_bytes()[..start]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line.split_once('=').map(|(k, _)| k.trim()).unwrap_or("");
    if key.is_empty() || key.starts_with('[') {
        ConfigError::Syntax(format!("line {line_no}: {msg}"))
    } else {
        ConfigError::Syntax(format!("line {line_no} ({}): {msg}", truncate(key)))
    }
}

fn truncate(s: &str) -> String {
    // Keep error messages short when the input is hostile.
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Absolute, normalised (no `.`/`..`/empty components, no trailing `/`
/// except for `/` itself), no NUL, bounded length.
fn check_abs_path(field: &str, p: &str, allow_root: bool) -> Result<(), ConfigError> {
    if p.len() > MAX_PATH_LEN {
        return Err(invalid(field, format!("longer than {MAX_PATH_LEN} bytes")));
    }
    if !p.starts_with('/') {
        return Err(invalid(
            field,
            format!("{:?} is not an absolute path", truncate(p)),
        ));
    }
    if p.contains('\0') {
        return Err(invalid(field, "contains a NUL byte"));
    }
    if p == "/" {
        if allow_root {
            return Ok(());
        }
        return Err(invalid(field, "must not be the root directory"));
    }
    for comp in p[1..].split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(invalid(
                field,
                format!(
                    "{:?} is not normalised (empty, '.' or '..' component)",
                    truncate(p)
                ),
            ));
        }
    }
    Ok(())
}

/// `a` is `b` or below it.
fn path_within(a: &str, b: &str) -> bool {
    a == b || (a.starts_with(b) && a.as_bytes().get(b.len()) == Some(&b'/'))
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl InitConfig {
    /// Parses and validates init.toml bytes (at most [`MAX_INIT_TOML_BYTES`]).
    pub fn parse(bytes: &[u8]) -> Result<InitConfig, ConfigError> {
        if bytes.len() > MAX_INIT_TOML_BYTES {
            return Err(ConfigError::TooLarge {
                size: bytes.len(),
                limit: MAX_INIT_TOML_BYTES,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8)?;
        let cfg: InitConfig = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Serialises to TOML (what `sigil convert` writes), after validating.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        self.validate()?;
        toml::to_string(self).map_err(|e| ConfigError::Syntax(e.to_string()))
    }

    /// Checks every field; the error names the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != 1 {
            return Err(invalid(
                "version",
                format!(
                    "unsupported version {} (this launcher reads 1)",
                    self.version
                ),
            ));
        }
        check_cas_addr(&self.cas_addr).map_err(|r| invalid("cas_addr", r))?;
        check_abs_path("binary", &self.binary, false)?;
        check_abs_path("memory_dir", &self.memory_dir, false)?;
        if self.volumes.len() > MAX_VOLUMES {
            return Err(invalid(
                "volumes",
                format!("more than {MAX_VOLUMES} volumes"),
            ));
        }
        let mut all_paths: Vec<(&str, usize)> = Vec::new();
        for (i, v) in self.volumes.iter().enumerate() {
            let f = |s: &str| format!("volumes[{i}].{s}");
            if v.name.is_empty()
                || v.name.len() > MAX_NAME_LEN
                || !v
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    f("name"),
                    format!(
                        "{:?} is not a volume name (1-{MAX_NAME_LEN} letters, digits, '-', '_')",
                        truncate(&v.name)
                    ),
                ));
            }
            if self.volumes[..i].iter().any(|o| o.name == v.name) {
                return Err(invalid(f("name"), format!("duplicate volume {:?}", v.name)));
            }
            check_abs_path(&f("sealed_dir"), &v.sealed_dir, false)?;
            if v.paths.is_empty() {
                return Err(invalid(f("paths"), "no paths"));
            }
            if v.paths.len() > MAX_PATHS_PER_VOLUME {
                return Err(invalid(
                    f("paths"),
                    format!("more than {MAX_PATHS_PER_VOLUME} paths"),
                ));
            }
            for (j, p) in v.paths.iter().enumerate() {
                check_abs_path(&format!("volumes[{i}].paths[{j}]"), p, false)?;
                all_paths.push((p, i));
            }
            if v.tag.is_empty() || v.tag.len() > 256 || v.tag.len() % 2 != 0 {
                return Err(invalid(
                    f("tag"),
                    "expected an even number (2-256) of hex digits",
                ));
            }
            if !v.tag.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(f("tag"), "not hexadecimal"));
            }
        }
        // Restored paths must not nest or repeat: each becomes one symlink.
        for (a, (pa, _)) in all_paths.iter().enumerate() {
            for (pb, _) in all_paths.iter().skip(a + 1) {
                if path_within(pa, pb) || path_within(pb, pa) {
                    return Err(invalid(
                        "volumes",
                        format!("restored paths {pa:?} and {pb:?} overlap"),
                    ));
                }
            }
            if path_within(&self.binary, pa) {
                return Err(invalid(
                    "binary",
                    format!(
                        "{:?} lies inside volume path {pa:?}; the binary is measured before volumes are opened",
                        self.binary
                    ),
                ));
            }
            if path_within(&self.memory_dir, pa) || path_within(pa, &self.memory_dir) {
                return Err(invalid(
                    "memory_dir",
                    format!("overlaps volume path {pa:?}"),
                ));
            }
        }
        if self.allow_env_passthrough.len() > MAX_PASSTHROUGH {
            return Err(invalid(
                "allow_env_passthrough",
                format!("more than {MAX_PASSTHROUGH} names"),
            ));
        }
        for (i, n) in self.allow_env_passthrough.iter().enumerate() {
            if !is_env_name(n) {
                return Err(invalid(
                    format!("allow_env_passthrough[{i}]"),
                    format!("{:?} is not an environment variable name", truncate(n)),
                ));
            }
            if n.starts_with("SIGIL_") {
                return Err(invalid(
                    format!("allow_env_passthrough[{i}]"),
                    "SIGIL_* variables are the launcher's and never passed through",
                ));
            }
        }
        Ok(())
    }

    /// The settings in force once the environment's permitted overrides
    /// (`SIGIL_CAS_ADDR`, `SIGIL_CONFIG_ID`, `SIGIL_MODE`) are applied.
    /// `env` looks a variable up (e.g. `|k| std::env::var(k).ok()`).
    pub fn effective(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Effective, ConfigError> {
        let cas_addr = match env(ENV_CAS_ADDR) {
            Some(a) if !a.is_empty() => {
                check_cas_addr(&a).map_err(|reason| ConfigError::BadEnv {
                    var: ENV_CAS_ADDR,
                    reason,
                })?;
                a
            }
            _ => self.cas_addr.clone(),
        };
        let config_id = match env(ENV_CONFIG_ID) {
            Some(c) if !c.is_empty() => c.parse().map_err(|reason| ConfigError::BadEnv {
                var: ENV_CONFIG_ID,
                reason,
            })?,
            _ => self.config_id.clone(),
        };
        let mode = match env(ENV_MODE) {
            Some(m) if !m.is_empty() => m.parse().map_err(|reason| ConfigError::BadEnv {
                var: ENV_MODE,
                reason,
            })?,
            _ => self.mode,
        };
        Ok(Effective {
            cas_addr,
            config_id,
            mode,
            cas_fingerprint: self.cas_fingerprint,
        })
    }
}

/// Settings after environment overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    /// CAS `host:port`.
    pub cas_addr: String,
    /// `session/service`.
    pub config_id: ConfigId,
    /// Evidence mode.
    pub mode: Mode,
    /// CAS key pin (always from init.toml).
    pub cas_fingerprint: SpkiPin,
}

/// `host:port` with a non-empty host of sane characters and a port 1-65535.
/// IPv6 literals are written `[::1]:8443`.
pub fn check_cas_addr(a: &str) -> Result<(), String> {
    if a.len() > 300 {
        return Err("longer than 300 characters".into());
    }
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| format!("{:?} is not host:port", truncate(a)))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{:?} has no valid port", truncate(a)))?;
    if port == 0 {
        return Err(format!("{:?} has port 0", truncate(a)));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() {
        return Err(format!("{:?} has an empty host", truncate(a)));
    }
    if !bare
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return Err(format!("{:?} has an invalid host", truncate(a)));
    }
    if bare.contains(':') && bare.len() == host.len() {
        return Err(format!(
            "{:?}: write IPv6 addresses in brackets, e.g. [::1]:8443",
            truncate(a)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn good() -> String {
        format!(
            r#"
version = 1
cas_addr = "cas.example:8443"
cas_fingerprint = "{PIN}"
config_id = "shop/web"
binary = "/usr/bin/python3.11"
allow_env_passthrough = ["TZ"]

[[volumes]]
name = "app"
sealed_dir = "/sigil/volumes/app"
paths = ["/app", "/usr/lib/python3.11"]
tag = "00ff"
"#
        )
    }

    #[test]
    fn parses_good_file_with_defaults() {
        let c = InitConfig::parse(good().as_bytes()).unwrap();
        assert_eq!(c.cas_addr, "cas.example:8443");
        assert_eq!(c.config_id.session, "shop");
        assert_eq!(c.config_id.service, "web");
        assert_eq!(c.memory_dir, "/run/sigil");
        assert_eq!(c.mode, Mode::Auto);
        assert_eq!(c.cas_fingerprint.to_string(), PIN);
        assert_eq!(c.volumes[0].paths.len(), 2);
    }

    #[test]
    fn roundtrips_through_to_toml() {
        let c = InitConfig::parse(good().as_bytes()).unwrap();
        let t = c.to_toml().unwrap();
        assert_eq!(InitConfig::parse(t.as_bytes()).unwrap(), c);
    }

    fn err_of(text: &str) -> String {
        InitConfig::parse(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn config_ids_of_namespaced_sessions() {
        // The session language allows `ns/app` sessions and `~`; the
        // service is what follows the last '/'.
        let c: ConfigId = "team/shop~1/web".parse().unwrap();
        assert_eq!(
            (c.session.as_str(), c.service.as_str()),
            ("team/shop~1", "web")
        );
        assert_eq!(c.to_string(), "team/shop~1/web");
        let c: ConfigId = "shop/web".parse().unwrap();
        assert_eq!((c.session.as_str(), c.service.as_str()), ("shop", "web"));
        for bad in [
            "web", "/web", "shop/", "a//b", "./b", "a/../b", "a b/c", "a/b~",
        ] {
            assert!(bad.parse::<ConfigId>().is_err(), "{bad}");
        }
        // The same rule as the CAS and the session language: a service
        // name may start with '.'.
        let c: ConfigId = "shop/.web".parse().unwrap();
        assert_eq!(c.service, ".web");
    }

    #[test]
    fn hostile_inputs_are_refused_with_the_field_named() {
        let g = good();
        let cases: Vec<(String, &str)> = vec![
            (g.replace("version = 1", "version = 2"), "version"),
            (g.replace("cas.example:8443", "cas.example"), "cas_addr"),
            (g.replace("cas.example:8443", "cas:0"), "cas_addr"),
            (g.replace("sha256:9f", "sha1:9f"), "cas_fingerprint"),
            (g.replace("b0f00a08", "b0f00a0"), "cas_fingerprint"),
            (g.replace("b0f00a08", "b0f00azz"), "cas_fingerprint"),
            (g.replace("shop/web", "shopweb"), "config_id"),
            (g.replace("shop/web", "shop/we b"), "config_id"),
            (g.replace("shop/web", "/web"), "config_id"),
            (g.replace("shop/web", "shop//web"), "config_id"),
            (g.replace("shop/web", "shop/../web"), "config_id"),
            (g.replace("shop/web", "shop/web/"), "config_id"),
            (g.replace("/usr/bin/python3.11", "python3"), "binary"),
            (g.replace("/usr/bin/python3.11", "/usr/../bin/sh"), "binary"),
            (g.replace("/usr/bin/python3.11", "/app/run"), "binary"),
            (
                g.replace("tag = \"00ff\"", "tag = \"0g\""),
                "volumes[0].tag",
            ),
            (g.replace("tag = \"00ff\"", "tag = \"0\""), "volumes[0].tag"),
            (
                g.replace("name = \"app\"", "name = \"a/b\""),
                "volumes[0].name",
            ),
            (g.replace("\"/app\", ", "\"/usr\", "), "volumes"),
            (
                g.replace("[\"TZ\"]", "[\"A=B\"]"),
                "allow_env_passthrough[0]",
            ),
            (
                g.replace("[\"TZ\"]", "[\"SIGIL_CAS_ADDR\"]"),
                "allow_env_passthrough[0]",
            ),
            (
                g.replace("version = 1", "version = 1\nsurprise = true"),
                "surprise",
            ),
            (
                g.replace("version = 1", "version = 1\nmode = \"turbo\""),
                "mode",
            ),
            (g.replace("version = 1\n", ""), "version"),
            (
                g.replace("version = 1", "version = 1\nmemory_dir = \"/app/x\""),
                "memory_dir",
            ),
            ("[[[".to_string(), "init.toml"),
        ];
        for (text, field) in cases {
            let e = err_of(&text);
            assert!(e.contains(field), "expected {field:?} in {e:?}");
        }
        // the duplicate volume case
        let dup = format!(
            "{g}\n[[volumes]]\nname = \"app\"\nsealed_dir = \"/sigil/volumes/b\"\npaths = [\"/b\"]\ntag = \"00\"\n"
        );
        assert!(err_of(&dup).contains("duplicate volume"));
    }

    #[test]
    fn size_and_encoding_limits() {
        let big = vec![b'#'; MAX_INIT_TOML_BYTES + 1];
        assert!(matches!(
            InitConfig::parse(&big),
            Err(ConfigError::TooLarge { .. })
        ));
        assert_eq!(InitConfig::parse(&[0xff, 0xfe]), Err(ConfigError::NotUtf8));
    }

    #[test]
    fn environment_overrides_only_what_is_allowed() {
        let c = InitConfig::parse(good().as_bytes()).unwrap();
        let e = c.effective(|_| None).unwrap();
        assert_eq!(e.cas_addr, "cas.example:8443");
        assert_eq!(e.mode, Mode::Auto);
        let e = c
            .effective(|k| match k {
                "SIGIL_CAS_ADDR" => Some("127.0.0.1:9".into()),
                "SIGIL_CONFIG_ID" => Some("other/svc".into()),
                "SIGIL_MODE" => Some("sim".into()),
                "SIGIL_CAS_FINGERPRINT" => Some("sha256:00".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(e.cas_addr, "127.0.0.1:9");
        assert_eq!(e.config_id.to_string(), "other/svc");
        assert_eq!(e.mode, Mode::Sim);
        assert_eq!(e.cas_fingerprint, c.cas_fingerprint);
        let bad = c.effective(|k| (k == "SIGIL_MODE").then(|| "fast".into()));
        assert!(bad.unwrap_err().to_string().contains("SIGIL_MODE"));
        let bad = c.effective(|k| (k == "SIGIL_CONFIG_ID").then(|| "x".into()));
        assert!(bad.unwrap_err().to_string().contains("SIGIL_CONFIG_ID"));
        let bad = c.effective(|k| (k == "SIGIL_CAS_ADDR").then(|| "nohost".into()));
        assert!(bad.unwrap_err().to_string().contains("SIGIL_CAS_ADDR"));
    }

    #[test]
    fn cas_addr_forms() {
        assert!(check_cas_addr("[::1]:8443").is_ok());
        assert!(check_cas_addr("127.0.0.1:1").is_ok());
        assert!(check_cas_addr("::1:8443").is_err());
        assert!(check_cas_addr(":8443").is_err());
        assert!(check_cas_addr("h o:1").is_err());
    }
}
