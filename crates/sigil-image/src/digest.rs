//! SHA-256 digests (ring) of blobs, and writers that hash what passes through.

use std::io::{self, Write};

/// A `sha256:<hex>` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; anything else (other algorithms,
    /// path separators, wrong length) is refused, so a digest is always safe
    /// to use as a file name.
    pub fn parse(s: &str) -> Option<Digest> {
        let hex = s.strip_prefix("sha256:")?;
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Some(Digest(s.to_string()))
        } else {
            None
        }
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_sha256(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
    }

    /// The digest of a finished SHA-256 hash (32 bytes).
    pub fn from_sha256(d: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(d)))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashWriter<W> {
    inner: W,
    ctx: ring::digest::Context,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        }
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        let d = self.ctx.finish();
        (self.inner, Digest::from_sha256(d.as_ref()), self.len)
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it, and refuses
/// to yield more than `limit` bytes.
pub struct HashReader<R> {
    inner: R,
    /// `None`: only count (nothing to verify, so no hashing cost).
    ctx: Option<ring::digest::Context>,
    len: u64,
    limit: u64,
}

impl<R: io::Read> HashReader<R> {
    /// Wraps `inner`; reading past `limit` bytes is an error.
    pub fn new(inner: R, limit: u64) -> Self {
        HashReader {
            inner,
            ctx: Some(ring::digest::Context::new(&ring::digest::SHA256)),
            len: 0,
            limit,
        }
    }

    /// Like [`HashReader::new`] but only counting; [`HashReader::finish`]
    /// then gives no digest.
    pub fn counting(inner: R, limit: u64) -> Self {
        HashReader {
            inner,
            ctx: None,
            len: 0,
            limit,
        }
    }

    /// The digest (unless only counting) and length of what was read.
    pub fn finish(self) -> (Option<Digest>, u64) {
        (
            self.ctx.map(|c| Digest::from_sha256(c.finish().as_ref())),
            self.len,
        )
    }
}

impl<R: io::Read> io::Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(c) = &mut self.ctx {
            c.update(&buf[..n]);
        }
        self.len += n as u64;
        if self.len > self.limit {
            return Err(io::Error::other(format!("more than {} bytes", self.limit)));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_non_sha256_and_traversal() {
        assert!(Digest::parse("sha256:../../etc/passwd").is_none());
        assert!(Digest::parse("sha512:00").is_none());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
        let d = Digest::of(b"abc");
        assert_eq!(Digest::parse(d.as_str()), Some(d.clone()));
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hash_writer_matches_one_shot() {
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (buf, d, n) = w.finish();
        assert_eq!(n, 11);
        assert_eq!(d, Digest::of(&buf));
    }
}
