//! Sealed volumes: encrypted, authenticated and rollback-protected file
//! trees (the file-system shield).
//!
//! A volume is a directory with a sealed manifest (`manifest.sigil`) and one
//! sealed file per regular file (`data/<file id>`). Files are protected by
//! region (longest path prefix): [`Region::Encrypted`] (AES-256-GCM STREAM),
//! [`Region::Authenticated`] (clear, an AES-GCM tag per chunk) or [`Region::Plain`]
//! (clear, unprotected content). The manifest is encrypted and
//! authenticated; its SHA-256 is the [`VolumeTag`] that the CAS hands to the
//! launcher, so a tampered, swapped or older volume does not open.
//! `FORMAT.md` in this crate specifies the bytes.
//!
//! ```no_run
//! use sigil_fs::{seal, open, Regions, SealOptions};
//! use std::path::Path;
//! let regions = Regions::new().encrypt("app").authenticate("usr/bin/python3");
//! let sealed = seal(Path::new("rootfs"), Path::new("vol"), &regions, &SealOptions::default())?;
//! open(Path::new("vol"), Path::new("/run/app"), &sealed.key, &sealed.tag)?;
//! # Ok::<(), sigil_fs::FsError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[doc(hidden)]
pub mod bench_support;
mod crypto;
mod error;
pub mod format;
mod keys;
mod open;
mod regions;
mod seal;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};

pub use error::FsError;
pub use keys::{VolumeKey, VolumeTag, KEY_LEN};
pub use open::{open, verify, Entry, EntryKind, FileReader, VerifyReport, Volume};
pub use regions::{Region, Regions};
pub use seal::{seal, seal_with_key};

/// Name of the sealed manifest inside a volume.
pub const MANIFEST_FILE: &str = "manifest.sigil";
/// Directory of sealed files inside a volume.
pub const DATA_DIR: &str = "data";

/// How to seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealOptions {
    /// Plaintext bytes per chunk (default 65536; 16 ..= 16 MiB).
    pub chunk_size: u32,
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            chunk_size: format::DEFAULT_CHUNK_SIZE,
            threads: None,
        }
    }
}

/// The result of [`seal`]: the fresh volume key (secret) and the volume tag.
#[derive(Debug)]
pub struct Sealed {
    /// The volume key; give it only to the CAS.
    pub key: VolumeKey,
    /// The volume tag; goes into the session.
    pub tag: VolumeTag,
}

pub(crate) fn manifest_path(volume: &Path) -> PathBuf {
    volume.join(MANIFEST_FILE)
}

pub(crate) fn blob_path(volume: &Path, file_id: &[u8; 16]) -> PathBuf {
    volume.join(DATA_DIR).join(hex::encode(file_id))
}

/// Makes sure `dst` is an empty directory; returns whether it was created.
pub(crate) fn prepare_empty_dir(dst: &Path) -> Result<bool, FsError> {
    match fs::symlink_metadata(dst) {
        Ok(m) => {
            if !m.is_dir() {
                return Err(FsError::DestinationNotEmpty {
                    path: dst.to_path_buf(),
                });
            }
            let mut rd = fs::read_dir(dst).map_err(|e| FsError::io("read directory", dst, e))?;
            if rd.next().is_some() {
                return Err(FsError::DestinationNotEmpty {
                    path: dst.to_path_buf(),
                });
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dst).map_err(|e| FsError::io("create directory", dst, e))?;
            Ok(true)
        }
        Err(e) => Err(FsError::io("stat", dst, e)),
    }
}
