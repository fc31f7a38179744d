//! The master key and what it protects: AES-256-GCM sealing of secrets,
//! session documents and the CAS identity key, and HMAC-SHA256 integrity
//! tags of store records and of the audit head.
//!
//! Sub-keys are derived with HKDF-SHA256 (salt `sigil-cas-master-v1`, info
//! `seal-v1` / `mac-v1`). Sealed blob: `b"S1" || nonce(12) || ciphertext || tag(16)`.
//! AAD: `sigil-cas-seal-v1` followed by each context part as
//! `u32 BE length || bytes` (purpose, session, secret...), so a blob cannot be
//! moved to another session or secret. See `docs/cas-store.md`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::CasError;

/// Environment variable holding the master key as 64 hex digits.
pub const MASTER_KEY_ENV: &str = "SIGIL_CAS_MASTER_KEY";
const BLOB_MAGIC: &[u8; 2] = b"S1";
const AAD_DOMAIN: &[u8] = b"sigil-cas-seal-v1";

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKeySource {
    /// A file holding 64 hex digits; created (mode 0600) if missing; refused
    /// if group or others may access it.
    File(PathBuf),
    /// The key itself, hex (e.g. from `SIGIL_CAS_MASTER_KEY`).
    Hex(Zeroizing<String>),
}

impl fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterKeySource::File(p) => write!(f, "File({})", p.display()),
            MasterKeySource::Hex(_) => f.write_str("Hex(<redacted>)"),
        }
    }
}

impl MasterKeySource {
    /// `--master-key-file` if given, else `SIGIL_CAS_MASTER_KEY` if set,
    /// else `DATA_DIR/master.key`. The environment variable is taken out of
    /// the process in every case ([`take_master_key_env`]).
    pub fn resolve(file: Option<PathBuf>, data_dir: &Path) -> MasterKeySource {
        let from_env = take_master_key_env();
        if let Some(f) = file {
            return MasterKeySource::File(f);
        }
        match from_env {
            Some(h) => MasterKeySource::Hex(h),
            None => MasterKeySource::File(data_dir.join("master.key")),
        }
    }
}

/// Takes the master key out of `SIGIL_CAS_MASTER_KEY`, if set: returns the
/// value and removes it from the process (logged at info level).
///
/// The environment a process was started with stays readable in
/// `/proc/PID/environ` (by the same user and root) for the process's whole
/// life, and child processes inherit the variable. So the bytes of the value
/// in the environment block are overwritten with NULs (what
/// `/proc/PID/environ` shows) and the variable is unset (what children
/// inherit). What this cannot reach: wherever the environment was defined
/// (a shell's history, a container or pod spec with a literal value) and
/// copies taken before this call. A key file (`--master-key-file`, mode
/// 0600, checked at load) has none of these exposures and is preferred.
///
/// Call it early, before threads that read the environment start (it
/// writes to the environment block, like `setenv` does).
pub fn take_master_key_env() -> Option<Zeroizing<String>> {
    let value = Zeroizing::new(std::env::var(MASTER_KEY_ENV).ok()?);
    scrub_env_values(MASTER_KEY_ENV);
    std::env::remove_var(MASTER_KEY_ENV);
    if value.is_empty() {
        return None;
    }
    // Info, not a warning: with the value scrubbed, the environment is the
    // intended way in Kubernetes (a Secret by secretKeyRef; a mounted Secret
    // file is group-readable there whenever fsGroup is set, and the key-file
    // check refuses that).
    tracing::info!(
        "master key taken from the environment variable {MASTER_KEY_ENV} and removed from this \
         process (/proc/{}/environ, child processes); it remains wherever that environment was \
         defined (keep it in a Secret, not a literal)",
        std::process::id()
    );
    Some(value)
}

/// Removes a secret-bearing variable (e.g. a database URL with a password)
/// from the process as [`take_master_key_env`] does: value bytes in the
/// environment block overwritten (`/proc/PID/environ`), variable unset
/// (children). Same contract: call it at start-up, before other threads.
pub fn scrub_env(name: &str) {
    scrub_env_values(name);
    std::env::remove_var(name);
}

/// Overwrites with NULs the value of every `NAME=value` entry of the
/// process's environment block (a variable may appear more than once).
fn scrub_env_values(name: &str) {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: `environ` is the NULL-terminated array of NUL-terminated
    // strings the C library keeps; nothing in this process changes the
    // environment concurrently at start-up (see the caller's contract).
    // Bytes are written only inside an entry's own value (before its NUL).
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let s = *entry;
            let len = libc::strlen(s);
            let bytes = std::slice::from_raw_parts(s as *const u8, len);
            if bytes.starts_with(prefix.as_bytes()) {
                std::ptr::write_bytes(s.add(prefix.len()), 0, len - prefix.len());
            }
            entry = entry.add(1);
        }
    }
}

/// The master key's derived keys. Never leaves memory unsealed.
pub struct MasterKey {
    aead: LessSafeKey,
    mac: hmac::Key,
    rng: SystemRandom,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn parse_hex_key(h: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, CasError> {
    let h = h.trim();
    let mut k = Zeroizing::new([0u8; 32]);
    if h.len() != 64 || hex::decode_to_slice(h, &mut k[..]).is_err() {
        return Err(CasError::Config(format!(
            "{what} must be 64 hex digits (32 bytes)"
        )));
    }
    Ok(k)
}

/// Largest master key file read (hex key, newline, some slack).
const MAX_KEY_FILE: u64 = 1024;

/// Reads a master key file of at most [`MAX_KEY_FILE`] bytes into memory
/// that is zeroed when dropped: bounded even if the file grew or was
/// replaced after it was checked, and read into one allocation so no
/// resized copy of the key is left behind.
fn read_key_file(p: &std::path::Path) -> Result<Zeroizing<String>, CasError> {
    use std::io::Read;
    let mut text = Zeroizing::new(String::with_capacity(MAX_KEY_FILE as usize + 1));
    let file = fs::File::open(p)
        .map_err(|e| CasError::Config(format!("cannot read {}: {e}", p.display())))?;
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| CasError::Config(format!("cannot read {}: {e}", p.display())))?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(CasError::Config(format!(
            "master key file {} is too large",
            p.display()
        )));
    }
    Ok(text)
}

impl MasterKey {
    /// Loads (or, for a missing file, creates) the master key.
    pub fn load(src: &MasterKeySource, create: bool) -> Result<MasterKey, CasError> {
        match src {
            MasterKeySource::Hex(h) => {
                Ok(MasterKey::from_bytes(&*parse_hex_key(h, MASTER_KEY_ENV)?))
            }
            MasterKeySource::File(p) => {
                use std::os::unix::fs::PermissionsExt;
                match fs::metadata(p) {
                    Ok(m) => {
                        let mode = m.permissions().mode() & 0o777;
                        if mode & 0o077 != 0 {
                            return Err(CasError::Config(format!(
                                "master key file {} has mode {mode:o}; run `chmod 600 {}`",
                                p.display(),
                                p.display()
                            )));
                        }
                        // A FIFO or device would be read without end.
                        if !m.is_file() {
                            return Err(CasError::Config(format!(
                                "master key file {} is not a regular file",
                                p.display()
                            )));
                        }
                        let text = read_key_file(p)?;
                        let what = format!("master key file {}", p.display());
                        Ok(MasterKey::from_bytes(&*parse_hex_key(&text, &what)?))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                        let mut k = Zeroizing::new([0u8; 32]);
                        SystemRandom::new()
                            .fill(&mut k[..])
                            .map_err(|_| CasError::Internal("random generator failed".into()))?;
                        let mut text = Zeroizing::new(hex::encode(&k[..]));
                        text.push('\n');
                        // Temporary file, fsync, link: a failed write never
                        // leaves a partial key file (which would fail to parse
                        // on the next start) and never replaces a key.
                        sigil_client::atomic::create_new(p, text.as_bytes(), 0o600).map_err(
                            |e| CasError::Config(format!("cannot create {}: {e}", p.display())),
                        )?;
                        Ok(MasterKey::from_bytes(&k))
                    }
                    Err(e) => Err(CasError::Config(format!(
                        "cannot read master key {}: {e} (give --master-key-file or {MASTER_KEY_ENV})",
                        p.display()
                    ))),
                }
            }
        }
    }

    /// Derives the working keys from 32 master key bytes.
    pub fn from_bytes(k: &[u8; 32]) -> MasterKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"sigil-cas-master-v1").extract(k);
        // Expanding 32 bytes from SHA-256 HKDF cannot fail (limit is 255*32).
        let aead_key: UnboundKey = prk
            .expand(&[b"seal-v1"], &AES_256_GCM)
            .map(UnboundKey::from)
            .unwrap_or_else(|_| unreachable!("HKDF length is valid"));
        let mac: hmac::Key = prk
            .expand(&[b"mac-v1"], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            .unwrap_or_else(|_| unreachable!("HKDF length is valid"));
        MasterKey {
            aead: LessSafeKey::new(aead_key),
            mac,
            rng: SystemRandom::new(),
        }
    }

    fn aad(context: &[&[u8]]) -> Vec<u8> {
        let mut a = AAD_DOMAIN.to_vec();
        for part in context {
            a.extend_from_slice(&(part.len() as u32).to_be_bytes());
            a.extend_from_slice(part);
        }
        a
    }

    /// Encrypts `plaintext` bound to `context`.
    pub fn seal(&self, context: &[&[u8]], plaintext: &[u8]) -> Result<Vec<u8>, CasError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| CasError::Internal("random generator failed".into()))?;
        let mut buf = Vec::with_capacity(2 + NONCE_LEN + plaintext.len() + 16);
        buf.extend_from_slice(BLOB_MAGIC);
        buf.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(context)),
                &mut body,
            )
            .map_err(|_| CasError::Internal("sealing failed".into()))?;
        buf.extend_from_slice(&body);
        Ok(buf)
    }

    /// Decrypts a blob made by [`MasterKey::seal`] with the same context.
    pub fn open(&self, context: &[&[u8]], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CasError> {
        let bad = || {
            CasError::Integrity(
                "a sealed value does not open: wrong master key, or the store was tampered with"
                    .into(),
            )
        };
        if blob.len() < 2 + NONCE_LEN + aead::MAX_TAG_LEN || &blob[..2] != BLOB_MAGIC {
            return Err(bad());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[2..2 + NONCE_LEN]);
        let mut body = Zeroizing::new(blob[2 + NONCE_LEN..].to_vec());
        let n = self
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(context)),
                &mut body,
            )
            .map_err(|_| bad())?
            .len();
        body.truncate(n);
        Ok(body)
    }

    /// HMAC-SHA256 tag of `data` bound to `context`.
    pub fn mac(&self, context: &[&[u8]], data: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(&Self::aad(context));
        ctx.update(&(data.len() as u64).to_be_bytes());
        ctx.update(data);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Constant-time check of a tag made by [`MasterKey::mac`].
    pub fn verify_mac(&self, context: &[&[u8]], data: &[u8], tag: &[u8]) -> bool {
        let expected = self.mac(context, data);
        use subtle::ConstantTimeEq;
        expected.len() == tag.len() && bool::from(expected[..].ct_eq(tag))
    }

    /// Fills a buffer with random bytes.
    pub fn random(&self, buf: &mut [u8]) -> Result<(), CasError> {
        self.rng
            .fill(buf)
            .map_err(|_| CasError::Internal("random generator failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_key_file_that_is_not_a_regular_file_is_refused_without_reading() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        // A FIFO with no writer: reading it would block forever.
        let fifo = d.path().join("key.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = MasterKey::load(&MasterKeySource::File(fifo.clone()), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        // Oversized: refused; a good file loads.
        let big = d.path().join("big");
        fs::write(&big, "a".repeat(2000)).unwrap();
        fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).unwrap();
        let e = MasterKey::load(&MasterKeySource::File(big), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        let good = d.path().join("good");
        fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
        fs::set_permissions(&good, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKey::load(&MasterKeySource::File(good), false).is_ok());
    }

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let k = MasterKey::from_bytes(&[1; 32]);
        let blob = k.seal(&[b"secret", b"s1", b"db"], b"hunter2").unwrap();
        assert!(!blob.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            &*k.open(&[b"secret", b"s1", b"db"], &blob).unwrap(),
            b"hunter2"
        );
        // Moved to another secret or session: refused.
        assert!(k.open(&[b"secret", b"s1", b"db2"], &blob).is_err());
        assert!(k.open(&[b"secret", b"s2", b"db"], &blob).is_err());
        // Length prefixes keep ("ab","c") apart from ("a","bc").
        let b2 = k.seal(&[b"ab", b"c"], b"x").unwrap();
        assert!(k.open(&[b"a", b"bc"], &b2).is_err());
        // Another key: refused.
        assert!(MasterKey::from_bytes(&[2; 32])
            .open(&[b"secret", b"s1", b"db"], &blob)
            .is_err());
        // Flipped bit, truncation: refused.
        let mut t = blob.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(k.open(&[b"secret", b"s1", b"db"], &t).is_err());
        assert!(k.open(&[b"secret", b"s1", b"db"], &blob[..10]).is_err());
        assert!(k.open(&[b"secret", b"s1", b"db"], &[]).is_err());
    }

    #[test]
    fn mac_verifies_and_binds() {
        let k = MasterKey::from_bytes(&[1; 32]);
        let t = k.mac(&[b"rec", b"a"], b"data");
        assert!(k.verify_mac(&[b"rec", b"a"], b"data", &t));
        assert!(!k.verify_mac(&[b"rec", b"b"], b"data", &t));
        assert!(!k.verify_mac(&[b"rec", b"a"], b"datb", &t));
    }

    #[test]
    fn key_file_created_0600_and_wide_mode_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("master.key");
        let src = MasterKeySource::File(p.clone());
        assert!(MasterKey::load(&src, false).is_err());
        let k1 = MasterKey::load(&src, true).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let k2 = MasterKey::load(&src, false).unwrap();
        let blob = k1.seal(&[b"x"], b"v").unwrap();
        assert_eq!(&*k2.open(&[b"x"], &blob).unwrap(), b"v");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load(&src, false).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&p, "nothex").unwrap();
        assert!(MasterKey::load(&src, false).is_err());
    }

    #[test]
    fn hex_source_and_debug_redaction() {
        let h = "ab".repeat(32);
        let src = MasterKeySource::Hex(Zeroizing::new(h.clone()));
        assert!(!format!("{src:?}").contains(&h));
        assert!(MasterKey::load(&src, false).is_ok());
        assert!(
            MasterKey::load(&MasterKeySource::Hex(Zeroizing::new("ab".into())), false).is_err()
        );
    }

    /// Runs this test binary's `name` test again in a child whose file-size
    /// limit is 0 (SIGXFSZ ignored), so every write to a regular file fails
    /// with EFBIG; the child's assertions decide the outcome.
    fn in_child_with_no_file_size(name: &str, dir: &Path) {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 0 && exec \"$0\" --exact \"$1\" --nocapture --test-threads=1")
            .arg(exe)
            .arg(name)
            .env("SIGIL_TEST_CHILD_DIR", dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
    }

    #[test]
    fn failed_key_write_leaves_no_file() {
        match std::env::var_os("SIGIL_TEST_CHILD_DIR") {
            Some(d) => {
                let d = PathBuf::from(d);
                let p = d.join("master.key");
                let e = MasterKey::load(&MasterKeySource::File(p.clone()), true).unwrap_err();
                assert!(e.to_string().contains("cannot create"), "{e}");
                assert!(!p.exists(), "a partial key file was left behind");
                let names: Vec<_> = fs::read_dir(&d).unwrap().collect();
                assert!(names.is_empty(), "{names:?}");
            }
            None => {
                let d = tempfile::tempdir().unwrap();
                in_child_with_no_file_size(
                    "seal::tests::failed_key_write_leaves_no_file",
                    d.path(),
                );
                assert!(fs::read_dir(d.path()).unwrap().next().is_none());
                // Without the limit it works, and the key is kept.
                let p = d.path().join("master.key");
                let k1 = MasterKey::load(&MasterKeySource::File(p.clone()), true).unwrap();
                let k2 = MasterKey::load(&MasterKeySource::File(p.clone()), true).unwrap();
                let blob = k1.seal(&[b"a"], b"x").unwrap();
                assert_eq!(&*k2.open(&[b"a"], &blob).unwrap(), b"x");
            }
        }
    }
}
