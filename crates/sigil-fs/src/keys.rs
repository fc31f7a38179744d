//! Volume keys and volume tags.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::FsError;

/// Length of a volume key in bytes.
pub const KEY_LEN: usize = 32;

/// The 32-byte secret from which every file key and the manifest key are
/// derived. Zeroised on drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct VolumeKey([u8; KEY_LEN]);

impl VolumeKey {
    /// A fresh key from the system's secure random generator.
    pub fn generate() -> Result<Self, FsError> {
        let mut k = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| FsError::Crypto("system random generator failed"))?;
        Ok(VolumeKey(k))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        VolumeKey(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses 64 hex digits (surrounding whitespace allowed). The error
    /// never echoes the input.
    pub fn from_hex(s: &str) -> Result<Self, FsError> {
        let s = s.trim();
        if s.len() != KEY_LEN * 2 {
            return Err(FsError::InvalidKey("expected 64 hex digits"));
        }
        let mut k = [0u8; KEY_LEN];
        if hex::decode_to_slice(s, &mut k).is_err() {
            k.zeroize();
            return Err(FsError::InvalidKey("not hexadecimal"));
        }
        Ok(VolumeKey(k))
    }

    /// The key as 64 lowercase hex digits. The caller owns the secret now:
    /// the returned string zeroises itself on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }
}

impl fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VolumeKey(<redacted>)")
    }
}

/// The volume tag: SHA-256 of the sealed manifest file. Not secret; it is
/// what the CAS hands to the launcher so that only this exact volume opens.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VolumeTag(pub [u8; 32]);

impl VolumeTag {
    /// Constant-time equality (the tag is public, but comparing in constant
    /// time costs nothing and keeps the habit).
    pub fn ct_eq(&self, other: &VolumeTag) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]))
    }
}

impl fmt::Display for VolumeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for VolumeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VolumeTag({self})")
    }
}

impl FromStr for VolumeTag {
    type Err = FsError;
    fn from_str(s: &str) -> Result<Self, FsError> {
        let s = s.trim();
        if s.len() != 64 {
            return Err(FsError::InvalidTag("expected 64 hex digits"));
        }
        let mut t = [0u8; 32];
        hex::decode_to_slice(s, &mut t).map_err(|_| FsError::InvalidTag("not hexadecimal"))?;
        Ok(VolumeTag(t))
    }
}
