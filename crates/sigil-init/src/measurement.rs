//! The simulation measurement: what a converted image "is" when no TEE
//! measures it.
//!
//! ```text
//! measurement = SHA-256( field("sigil-sim-measurement-v1")
//!                     || field(SHA-256(launcher binary))
//!                     || field(SHA-256(init.toml bytes))
//!                     || field(SHA-256(binary the launcher execs)) )
//! field(x)    = u32_be(len(x)) || x
//! ```
//!
//! The domain string keeps the value from ever colliding with another use
//! of SHA-256 in Sigil; the length prefixes make the encoding injective.
//! Volume contents are covered through their tags, which are inside
//! init.toml. `sigil convert` computes it from the files it writes into the
//! image; the launcher computes it from `/proc/self/exe`, `/sigil/init.toml`
//! and the bytes of the binary it will exec (read once into memory, and
//! exactly those bytes are executed). See `docs/protocol.md`.

use std::io::Read;
use std::path::Path;

use ring::digest::{Context, SHA256};

/// Domain separation string of version 1.
pub const DOMAIN: &[u8] = b"sigil-sim-measurement-v1";

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Largest file measured (launcher or application binary). A binary bigger
/// than this is refused rather than read into memory.
pub const MAX_MEASURED_FILE: u64 = 1 << 30;

/// Why a file could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Which file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exceeds [`MAX_MEASURED_FILE`].
    #[error("{path} is too large to measure: {size} bytes (limit {limit})")]
    TooLarge {
        /// Which file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// SHA-256 of a byte string.
pub fn sha256(bytes: &[u8]) -> Digest {
    let d = ring::digest::digest(&SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-256 of a file's content, streamed (bounded by [`MAX_MEASURED_FILE`]).
pub fn sha256_file(path: &Path) -> Result<Digest, MeasureError> {
    let io = |source| MeasureError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut total: u64 = 0;
    let mut r = f.take(MAX_MEASURED_FILE + 1);
    loop {
        let n = r.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_MEASURED_FILE {
            return Err(MeasureError::TooLarge {
                path: path.display().to_string(),
                size: total,
                limit: MAX_MEASURED_FILE,
            });
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

fn field(ctx: &mut Context, x: &[u8]) {
    // Every field is far below 4 GiB (a domain string or a digest).
    ctx.update(&(x.len() as u32).to_be_bytes());
    ctx.update(x);
}

/// The measurement from the three component digests.
pub fn from_digests(launcher: &Digest, init_toml: &Digest, binary: &Digest) -> Digest {
    let mut ctx = Context::new(&SHA256);
    field(&mut ctx, DOMAIN);
    field(&mut ctx, launcher);
    field(&mut ctx, init_toml);
    field(&mut ctx, binary);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The measurement from the three files' contents.
pub fn from_bytes(launcher: &[u8], init_toml: &[u8], binary: &[u8]) -> Digest {
    from_digests(&sha256(launcher), &sha256(init_toml), &sha256(binary))
}

/// The measurement from three files on disk (what `sigil convert` uses on
/// the host, with the paths of the files it puts into the image).
pub fn from_paths(
    launcher: &Path,
    init_toml: &Path,
    binary: &Path,
) -> Result<Digest, MeasureError> {
    Ok(from_digests(
        &sha256_file(launcher)?,
        &sha256_file(init_toml)?,
        &sha256_file(binary)?,
    ))
}

/// Lowercase hex, as the session's `simulation_measurement` holds it.
pub fn to_hex(d: &Digest) -> String {
    hex::encode(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_construction() {
        // Recompute by hand, following the doc comment literally.
        let (l, i, b) = (
            b"launcher".as_slice(),
            b"init".as_slice(),
            b"bin".as_slice(),
        );
        let mut m = Vec::new();
        for x in [
            DOMAIN.to_vec(),
            sha256(l).to_vec(),
            sha256(i).to_vec(),
            sha256(b).to_vec(),
        ] {
            m.extend_from_slice(&(x.len() as u32).to_be_bytes());
            m.extend_from_slice(&x);
        }
        assert_eq!(from_bytes(l, i, b), sha256(&m));
    }

    #[test]
    fn every_component_matters_and_order_matters() {
        let base = from_bytes(b"a", b"b", b"c");
        assert_ne!(base, from_bytes(b"x", b"b", b"c"));
        assert_ne!(base, from_bytes(b"a", b"x", b"c"));
        assert_ne!(base, from_bytes(b"a", b"b", b"x"));
        assert_ne!(base, from_bytes(b"c", b"b", b"a"));
    }

    #[test]
    fn paths_and_bytes_agree_and_missing_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n);
        std::fs::write(p("l"), vec![7u8; 200_000]).unwrap();
        std::fs::write(p("i"), b"version = 1").unwrap();
        std::fs::write(p("b"), b"\x7fELF...").unwrap();
        assert_eq!(
            from_paths(&p("l"), &p("i"), &p("b")).unwrap(),
            from_bytes(&[7u8; 200_000], b"version = 1", b"\x7fELF...")
        );
        let e = from_paths(&p("l"), &p("nope"), &p("b")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
