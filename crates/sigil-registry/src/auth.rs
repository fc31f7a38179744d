//! Registry credentials: the docker `config.json` / containers `auth.json`
//! format, looked up in the usual places.
//!
//! Format (only the parts used here; everything else is ignored):
//! ```json
//! { "auths": { "HOST[:PORT]": { "auth": "base64(user:password)" } },
//!   "credHelpers": { "HOST": "helper" }, "credsStore": "helper" }
//! ```
//! An entry may instead give `username` and `password`, or `registrytoken`
//! (a bearer token sent as is). `identitytoken` (an OAuth2 refresh token) and
//! credential helpers are refused with a clear error: oci-client has no
//! refresh-token flow and running helper programs is out of scope.
//!
//! Secrets are held in [`zeroize::Zeroizing`] strings and never formatted:
//! [`Auth`]'s `Debug` prints `<redacted>`, and no error message includes a
//! value from a credentials file (only the file name and the registry key).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest credentials file read (they hold a few entries of a few hundred bytes).
pub const MAX_AUTH_FILE_BYTES: u64 = 1024 * 1024;

/// How to authenticate to a registry.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials (anonymous bearer tokens are still fetched when offered).
    #[default]
    Anonymous,
    /// User name and password: HTTP basic auth, or exchanged for a bearer
    /// token when the registry asks for one.
    Basic {
        /// User name (not secret; may appear in messages).
        username: String,
        /// Password (secret).
        password: Zeroizing<String>,
    },
    /// A registry bearer token, sent as is.
    Bearer(Zeroizing<String>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Bearer(_) => f.debug_tuple("Bearer").field(&"<redacted>").finish(),
        }
    }
}

impl Auth {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Auth {
        Auth::Basic {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// Words for messages: "as user NAME", "with a token" or "without credentials".
    pub fn describe(&self) -> String {
        match self {
            Auth::Anonymous => "without credentials".into(),
            Auth::Basic { username, .. } => format!("as user {username:?}"),
            Auth::Bearer(_) => "with a bearer token".into(),
        }
    }

    pub(crate) fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        use oci_client::secrets::RegistryAuth;
        match self {
            Auth::Anonymous => RegistryAuth::Anonymous,
            Auth::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.to_string())
            }
            Auth::Bearer(t) => RegistryAuth::Bearer(t.to_string()),
        }
    }
}

/// The credentials files consulted, in order; the first file that has an
/// entry for the registry decides.
#[derive(Debug, Clone, Default)]
pub struct AuthFiles {
    /// Files in lookup order. Missing files are skipped.
    pub paths: Vec<PathBuf>,
}

impl AuthFiles {
    /// The usual places, from the environment:
    /// 1. `$REGISTRY_AUTH_FILE`,
    /// 2. `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// 3. `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn from_env() -> AuthFiles {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let mut paths = Vec::new();
        if let Some(p) = var("REGISTRY_AUTH_FILE") {
            paths.push(PathBuf::from(p));
        }
        if let Some(d) = var("XDG_RUNTIME_DIR") {
            paths.push(Path::new(&d).join("containers/auth.json"));
        }
        if let Some(d) = var("DOCKER_CONFIG") {
            paths.push(Path::new(&d).join("config.json"));
        } else if let Some(h) = var("HOME") {
            paths.push(Path::new(&h).join(".docker/config.json"));
        }
        AuthFiles { paths }
    }

    /// Credentials for `registry` (`host[:port]` as in the image reference).
    /// Anonymous when no file has an entry for it.
    pub fn lookup(&self, registry: &str) -> Result<Auth> {
        for p in &self.paths {
            let bytes = match read_limited(p)? {
                Some(b) => b,
                None => continue,
            };
            if let Some(a) = parse_auth_config(&bytes, registry, &p.display().to_string())? {
                return Ok(a);
            }
        }
        Ok(Auth::Anonymous)
    }
}

fn read_limited(p: &Path) -> Result<Option<Vec<u8>>> {
    let f = match std::fs::File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(p, e)),
    };
    let mut buf = Vec::new();
    f.take(MAX_AUTH_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(p, e))?;
    if buf.len() as u64 > MAX_AUTH_FILE_BYTES {
        return Err(Error::Credentials(format!(
            "{}: larger than {MAX_AUTH_FILE_BYTES} bytes",
            p.display()
        )));
    }
    Ok(Some(buf))
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, Entry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

// No Debug: holds secrets.
#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for s in [
            &mut self.auth,
            &mut self.password,
            &mut self.identitytoken,
            &mut self.registrytoken,
        ]
        .into_iter()
        .flatten()
        {
            s.zeroize();
        }
    }
}

/// The host part of an `auths` key: keys may be `host`, `host:port`,
/// `https://host/v1/` (docker's key for Docker Hub) or `host/namespace`.
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    normalize_host(host)
}

fn normalize_host(h: &str) -> String {
    let h = h.to_ascii_lowercase();
    match h.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => h,
    }
}

/// Parses one credentials file (`source` names it in messages) and returns
/// the credentials for `registry`, or `None` when it has no entry for it.
pub fn parse_auth_config(bytes: &[u8], registry: &str, source: &str) -> Result<Option<Auth>> {
    if bytes.len() as u64 > MAX_AUTH_FILE_BYTES {
        return Err(Error::Credentials(format!(
            "{source}: larger than {MAX_AUTH_FILE_BYTES} bytes"
        )));
    }
    // serde_json's message names a line and column, never the value.
    let cfg: ConfigFile = serde_json::from_slice(bytes).map_err(|e| {
        Error::Credentials(format!(
            "{source}: not a valid credentials file: {}",
            crate::error::one_line(&e.to_string(), 200)
        ))
    })?;
    let want = normalize_host(registry);
    if let Some((_, helper)) = cfg.cred_helpers.iter().find(|(k, _)| key_host(k) == want) {
        return Err(Error::Credentials(format!(
            "{source}: credential helper {:?} is configured for {registry}; credential helpers are not supported, put the credentials in the file (e.g. `podman login --authfile FILE`)",
            crate::error::one_line(helper, 64)
        )));
    }
    let Some((key, entry)) = cfg.auths.iter().find(|(k, _)| key_host(k) == want) else {
        return Ok(None);
    };
    let key = crate::error::one_line(key, 128);
    if let Some(a) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|_| {
                    Error::Credentials(format!("{source}: auths.{key:?}.auth is not valid base64"))
                })?,
        );
        let text = std::str::from_utf8(&raw).map_err(|_| {
            Error::Credentials(format!("{source}: auths.{key:?}.auth is not UTF-8"))
        })?;
        let (user, pass) = text.split_once(':').ok_or_else(|| {
            Error::Credentials(format!(
                "{source}: auths.{key:?}.auth is not base64 of \"user:password\""
            ))
        })?;
        return Ok(Some(Auth::basic(user, pass)));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        if !u.is_empty() {
            return Ok(Some(Auth::basic(u.clone(), p.clone())));
        }
    }
    if let Some(t) = entry.registrytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Auth::Bearer(Zeroizing::new(t.clone()))));
    }
    if entry.identitytoken.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(Error::Credentials(format!(
            "{source}: auths.{key:?} has an identitytoken (OAuth2 refresh token); identity tokens are not supported, log in with a user name and password"
        )));
    }
    if let Some(store) = &cfg.creds_store {
        return Err(Error::Credentials(format!(
            "{source}: the credentials for {registry} are in the credential store {:?}; credential stores are not supported, put the credentials in the file",
            crate::error::one_line(store, 64)
        )));
    }
    Err(Error::Credentials(format!(
        "{source}: auths.{key:?} has no auth, username/password or registrytoken"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn auth_field_and_host_forms() {
        let cfg = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"reg.example:5000":{{"auth":"{}"}}}}}}"#,
            b64("hub:pw:with:colons"),
            b64("me:s3cret")
        );
        match parse_auth_config(cfg.as_bytes(), "docker.io", "f").unwrap() {
            Some(Auth::Basic { username, password }) => {
                assert_eq!(username, "hub");
                assert_eq!(password.as_str(), "pw:with:colons");
            }
            other => panic!("{other:?}"),
        }
        match parse_auth_config(cfg.as_bytes(), "REG.example:5000", "f").unwrap() {
            Some(Auth::Basic { username, .. }) => assert_eq!(username, "me"),
            other => panic!("{other:?}"),
        }
        // Port matters.
        assert!(parse_auth_config(cfg.as_bytes(), "reg.example", "f")
            .unwrap()
            .is_none());
    }

    #[test]
    fn username_password_and_tokens() {
        let cfg = br#"{"auths":{"a":{"username":"u","password":"p"},"b":{"registrytoken":"T"},"c":{"identitytoken":"I"}}}"#;
        assert!(matches!(
            parse_auth_config(cfg, "a", "f").unwrap(),
            Some(Auth::Basic { .. })
        ));
        assert!(matches!(
            parse_auth_config(cfg, "b", "f").unwrap(),
            Some(Auth::Bearer(_))
        ));
        let e = parse_auth_config(cfg, "c", "f").unwrap_err().to_string();
        assert!(e.contains("identitytoken") && !e.contains("\"I\""), "{e}");
    }

    #[test]
    fn helpers_are_refused_clearly() {
        let cfg = br#"{"auths":{"x":{}},"credHelpers":{"gcr.io":"gcloud"},"credsStore":"desktop"}"#;
        let e = parse_auth_config(cfg, "gcr.io", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("credential helper \"gcloud\""), "{e}");
        let e = parse_auth_config(cfg, "x", "f").unwrap_err().to_string();
        assert!(e.contains("credential store \"desktop\""), "{e}");
        // No entry at all: anonymous, even with a store.
        assert!(parse_auth_config(cfg, "quay.io", "f").unwrap().is_none());
    }

    #[test]
    fn hostile_files_give_one_line_errors_without_secrets() {
        let secret = "hunter2-very-secret";
        let cases: Vec<Vec<u8>> = vec![
            format!(r#"{{"auths":{{"h":{{"auth":"{secret}!!"}}}}}}"#).into_bytes(),
            format!(r#"{{"auths":{{"h":{{"auth":"{}"}}}}}}"#, b64(secret)).into_bytes(),
            format!(r#"{{"auths":{{"h":{{"auth":"{}"}}}}}}"#, {
                base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b':', b'x'])
            })
            .into_bytes(),
            format!(r#"{{"auths":{{"h":{{"password":"{secret}"}}}}}}"#).into_bytes(),
            format!(r#"{{"auths":{{"h":{{"auth":{{"nested":"{secret}"}}}}}}}}"#).into_bytes(),
            format!(r#"{{"auths":["{secret}"]}}"#).into_bytes(),
            b"\xff\xfe not json".to_vec(),
            vec![b' '; (MAX_AUTH_FILE_BYTES + 1) as usize],
        ];
        for c in cases {
            let e = parse_auth_config(&c, "h", "f").unwrap_err().to_string();
            assert!(!e.contains(secret), "{e}");
            assert!(!e.contains('\n'), "{e}");
            assert!(e.starts_with("f: "), "{e}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let a = Auth::basic("alice", "pa55word");
        let d = format!("{a:?} {:?}", Auth::Bearer(Zeroizing::new("tok3n".into())));
        assert!(d.contains("alice") && !d.contains("pa55word") && !d.contains("tok3n"));
        assert!(!format!("{:?}", a.to_oci()).contains("pa55word"));
    }

    #[test]
    fn lookup_order_first_file_with_entry_wins() {
        let d = tempfile::tempdir().unwrap();
        let f1 = d.path().join("1.json");
        let f2 = d.path().join("2.json");
        std::fs::write(
            &f1,
            format!(r#"{{"auths":{{"a":{{"auth":"{}"}}}}}}"#, b64("one:1")),
        )
        .unwrap();
        std::fs::write(
            &f2,
            format!(
                r#"{{"auths":{{"a":{{"auth":"{}"}},"b":{{"auth":"{}"}}}}}}"#,
                b64("two:2"),
                b64("two:2")
            ),
        )
        .unwrap();
        let files = AuthFiles {
            paths: vec![d.path().join("missing.json"), f1, f2],
        };
        let user = |r| match files.lookup(r).unwrap() {
            Auth::Basic { username, .. } => username,
            other => format!("{other:?}"),
        };
        assert_eq!(user("a"), "one");
        assert_eq!(user("b"), "two");
        assert_eq!(user("c"), "Anonymous");
    }
}
