//! Regions: which files are encrypted, authenticated or left plain, by
//! longest path prefix.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::str::FromStr;

use crate::FsError;

/// How a file is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    /// Confidential and integrity-protected (AES-256-GCM per chunk).
    Encrypted,
    /// Stored in clear, integrity-protected (an AES-GCM tag per chunk).
    Authenticated,
    /// Stored in clear, not protected: the host may read and change its
    /// content (its path, type and mode are still in the sealed manifest).
    Plain,
}

impl Region {
    /// Higher is stronger; a hard-linked file gets the strongest region of
    /// any of its paths.
    pub(crate) fn strength(self) -> u8 {
        match self {
            Region::Encrypted => 2,
            Region::Authenticated => 1,
            Region::Plain => 0,
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Encrypted => "encrypted",
            Region::Authenticated => "authenticated",
            Region::Plain => "plain",
        })
    }
}

impl FromStr for Region {
    type Err = FsError;
    fn from_str(s: &str) -> Result<Self, FsError> {
        match s {
            "encrypted" | "encrypt" => Ok(Region::Encrypted),
            "authenticated" | "authenticate" => Ok(Region::Authenticated),
            "plain" => Ok(Region::Plain),
            _ => Err(FsError::InvalidOptions(format!(
                "unknown region {s:?} (expected encrypted, authenticated or plain)"
            ))),
        }
    }
}

/// Region rules by path prefix, relative to the volume root. The longest
/// matching prefix (whole components) wins; for equal prefixes the rule
/// added last wins; paths no rule covers get the default (`Plain` unless
/// built with [`Regions::with_default`]). A leading `/` is ignored, so
/// `/app` and `app` are the same rule.
#[derive(Clone, Debug)]
pub struct Regions {
    default: Region,
    rules: Vec<(Vec<u8>, Region)>,
    invalid: Option<(String, &'static str)>,
}

impl Default for Regions {
    fn default() -> Self {
        Self::new()
    }
}

impl Regions {
    /// No rules; everything is `Plain`.
    pub fn new() -> Self {
        Self::with_default(Region::Plain)
    }

    /// No rules; everything gets `default`.
    pub fn with_default(default: Region) -> Self {
        Regions {
            default,
            rules: Vec::new(),
            invalid: None,
        }
    }

    /// Adds an `Encrypted` rule.
    pub fn encrypt(self, path: impl AsRef<Path>) -> Self {
        self.rule(path, Region::Encrypted)
    }

    /// Adds an `Authenticated` rule.
    pub fn authenticate(self, path: impl AsRef<Path>) -> Self {
        self.rule(path, Region::Authenticated)
    }

    /// Adds a `Plain` rule.
    pub fn plain(self, path: impl AsRef<Path>) -> Self {
        self.rule(path, Region::Plain)
    }

    /// Adds a rule. An invalid path (one with `..`) is remembered and
    /// reported by `seal`, so the builder stays infallible.
    pub fn rule(mut self, path: impl AsRef<Path>, region: Region) -> Self {
        let raw = path.as_ref().as_os_str().as_bytes();
        let mut norm: Vec<u8> = Vec::with_capacity(raw.len());
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    if self.invalid.is_none() {
                        self.invalid = Some((
                            String::from_utf8_lossy(raw).into_owned(),
                            "'..' is not allowed",
                        ));
                    }
                    return self;
                }
                c => {
                    if !norm.is_empty() {
                        norm.push(b'/');
                    }
                    norm.extend_from_slice(c);
                }
            }
        }
        self.rules.push((norm, region));
        self
    }

    /// Checks that every rule was usable.
    pub fn validate(&self) -> Result<(), FsError> {
        match &self.invalid {
            Some((path, reason)) => Err(FsError::InvalidRegion {
                path: path.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// The region of a normalised relative path (as stored in a volume).
    pub fn region_of(&self, rel: &Path) -> Region {
        self.region_of_bytes(rel.as_os_str().as_bytes())
    }

    pub(crate) fn region_of_bytes(&self, rel: &[u8]) -> Region {
        let mut best: Option<(usize, Region)> = None;
        for (prefix, region) in &self.rules {
            let matches = prefix.is_empty()
                || rel == prefix.as_slice()
                || (rel.len() > prefix.len()
                    && rel.starts_with(prefix)
                    && rel[prefix.len()] == b'/');
            if matches && best.is_none_or(|(l, _)| prefix.len() >= l) {
                best = Some((prefix.len(), *region));
            }
        }
        best.map_or(self.default, |(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let r = Regions::new()
            .encrypt("app")
            .authenticate("app/bin")
            .plain("/app/bin/config/");
        assert_eq!(r.region_of(Path::new("app")), Region::Encrypted);
        assert_eq!(r.region_of(Path::new("app/x.py")), Region::Encrypted);
        assert_eq!(
            r.region_of(Path::new("app/bin/python")),
            Region::Authenticated
        );
        assert_eq!(r.region_of(Path::new("app/bin/config/a")), Region::Plain);
        assert_eq!(r.region_of(Path::new("appendix")), Region::Plain);
        assert_eq!(r.region_of(Path::new("etc/hosts")), Region::Plain);
    }

    #[test]
    fn default_and_override() {
        let r = Regions::with_default(Region::Encrypted).plain("etc/hosts");
        assert_eq!(r.region_of(Path::new("etc/hosts")), Region::Plain);
        assert_eq!(r.region_of(Path::new("etc/hostsx")), Region::Encrypted);
        assert_eq!(r.region_of(Path::new("etc")), Region::Encrypted);
        let r = Regions::new().encrypt("a").authenticate("./a");
        assert_eq!(r.region_of(Path::new("a/b")), Region::Authenticated);
        let r = Regions::new().encrypt("/");
        assert_eq!(r.region_of(Path::new("x/y")), Region::Encrypted);
    }

    #[test]
    fn dotdot_rule_is_reported() {
        let r = Regions::new().encrypt("../etc");
        let e = r.validate().unwrap_err();
        assert!(e.to_string().contains("../etc"), "{e}");
        assert!(Regions::new().encrypt("a").validate().is_ok());
    }
}
