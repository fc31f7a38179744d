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
        use crate::identity::{read_capped, ReadCapped};
        let p = dir.join("cas.toml");
        let text = match read_capped(&p, 64 * 1024) {
            Ok(t) => t,
            Err(ReadCapped::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(ReadCapped::Io(e)) => {
                return Err(ClientError::Io(format!("cannot read {}: {e}", p.display())))
            }
            Err(ReadCapped::TooLarge) => {
                return Err(ClientError::Io(format!("{} is too large", p.display())))
            }
        };
        toml::from_str(&text).map(Some).map_err(|e| {
            // toml's Display is a multi-line snippet of the file: say where
            // and what on one line instead.
            let at = e
                .span()
                .map(|s| {
                    let before = &text.as_bytes()[..s.start.min(text.len())];
                    format!(
                        " at line {}",
                        before.iter().filter(|b| **b == b'\n').count() + 1
                    )
                })
                .unwrap_or_default();
            let what: String = e
                .message()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            ClientError::Io(format!("{} is malformed{at}: {}", p.display(), what.trim()))
        })
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

    /// A FIFO (or a device) reports length 0: the size limit must hold
    /// while reading. The writer keeps the pipe open after 80 KiB, so a
    /// reader without a limit would wait for EOF forever.
    #[test]
    fn endless_files_are_refused_at_the_limit() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        // key.pem is the first file Identity::load reads.
        for (file, load) in [("cas.toml", 0), ("identity/key.pem", 1)] {
            let p = d.path().join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&p);
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o600) }, 0);
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let writer_path = p.clone();
            let writer = std::thread::spawn(move || {
                let mut w = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&writer_path)
                    .unwrap();
                let _ = w.write_all(&[b'#'; 80 * 1024]);
                // Keep the pipe open until the reader has answered.
                let _ = done_rx.recv_timeout(std::time::Duration::from_secs(60));
            });
            let dir = d.path().to_path_buf();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let r = if load == 0 {
                    CasTrust::load(&dir).map(|_| ()).map_err(|e| e.to_string())
                } else {
                    crate::Identity::load(&dir.join("identity"))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                };
                let _ = tx.send(r);
            });
            let r = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("{file}: read without a limit (blocked on the FIFO)"));
            let e = r.expect_err(file);
            assert!(e.contains("large"), "{file}: {e}");
            drop(done_tx);
            let _ = writer.join();
            std::fs::remove_file(&p).unwrap();
        }
    }

    extern "C" {
        #[link_name = "mkfifo"]
        fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
    }
}
