//! Where the CLI keeps its identity and which CAS it trusts.
//!
//! Config dir: `$SIGIL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sigil`, else
//! `~/.config/sigil`. Inside: `identity/{key,cert}.pem` and `cas.toml`
//! (`address = "HOST:PORT"`, `fingerprint = "sha256:…"`), written by
//! `sigil cas trust`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ClientError, Fingerprint};

/// The CLI's config directory.
pub fn config_dir() -> Result<PathBuf, ClientError> {
    if let Some(d) = std::env::var_os("SIGIL_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("sigil"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("sigil")),
        None => Err(ClientError::Io(
            "no config directory: set SIGIL_CONFIG_DIR or HOME".into(),
        )),
    }
}

/// Default identity directory (`CONFIG/identity`).
pub fn default_identity_dir() -> Result<PathBuf, ClientError> {
    Ok(config_dir()?.join("identity"))
}

/// A trusted CAS: where it is and its pinned fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CasTrust {
    /// `HOST:PORT`.
    pub address: String,
    /// Pinned SPKI SHA-256 fingerprint.
    pub fingerprint: Fingerprint,
}

impl CasTrust {
    /// Reads `cas.toml` from `dir`; `Ok(None)` if there is none.
    pub fn load(dir: &Path) -> Result<Option<CasTrust>, ClientError> {
        let p = dir.join("cas.toml");
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ClientError::Io(format!("cannot read {}: {e}", p.display()))),
        };
        if text.len() > 64 * 1024 {
            return Err(ClientError::Io(format!("{} is too large", p.display())));
        }
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| ClientError::Io(format!("{} is malformed: {e}", p.display())))
    }

    /// Writes `cas.toml` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), ClientError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ClientError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let p = dir.join("cas.toml");
        let text = toml::to_string(self)
            .map_err(|e| ClientError::Io(format!("cannot encode cas.toml: {e}")))?;
        std::fs::write(&p, text)
            .map_err(|e| ClientError::Io(format!("cannot write {}: {e}", p.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_round_trip_and_missing() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(CasTrust::load(d.path()).unwrap(), None);
        let t = CasTrust {
            address: "127.0.0.1:1".into(),
            fingerprint: Fingerprint([7; 32]),
        };
        t.save(d.path()).unwrap();
        assert_eq!(CasTrust::load(d.path()).unwrap(), Some(t));
        std::fs::write(d.path().join("cas.toml"), "address = 3").unwrap();
        assert!(CasTrust::load(d.path()).is_err());
    }
}
