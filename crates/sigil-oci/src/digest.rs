//! SHA-256 content digests (ring) in their `sha256:<hex>` form, and readers
//! and writers that hash what passes through them.

use std::io::{self, Write};

use crate::error::{one_line, Error, Result};

/// A `sha256:<64 lowercase hex>` content digest. Only [`Digest::parse`] and
/// the hashing functions make one, so it is always safe as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; anything else (other algorithms,
    /// path separators, wrong length, upper case) is refused.
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

    /// Like [`Digest::parse`], with a one-line error that quotes at most 80
    /// characters of the input.
    pub fn parse_checked(s: &str) -> Result<Digest> {
        Digest::parse(s).ok_or_else(|| {
            Error::Malformed(format!(
                "unsupported or malformed digest {:?} (only sha256 is supported)",
                one_line(s, 80)
            ))
        })
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

    /// `blobs/sha256/<hex>`: where an OCI layout keeps the blob.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// An incremental SHA-256 that ends in a [`Digest`].
#[derive(Clone)]
pub struct Hasher(ring::digest::Context);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Hasher {
    /// A fresh hash.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data)
    }

    /// The digest of what was added so far (the hash goes on).
    pub fn current(&self) -> Digest {
        self.clone().finish()
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        Digest::from_sha256(self.0.finish().as_ref())
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashWriter<W> {
    inner: W,
    hash: Hasher,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hash: Hasher::new(),
            len: 0,
        }
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hash.finish(), self.len)
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
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
    hash: Option<Hasher>,
    len: u64,
    limit: u64,
}

impl<R: io::Read> HashReader<R> {
    /// Wraps `inner`; reading past `limit` bytes is an error.
    pub fn new(inner: R, limit: u64) -> Self {
        HashReader {
            inner,
            hash: Some(Hasher::new()),
            len: 0,
            limit,
        }
    }

    /// Like [`HashReader::new`] but only counting; [`HashReader::finish`]
    /// then gives no digest.
    pub fn counting(inner: R, limit: u64) -> Self {
        HashReader {
            inner,
            hash: None,
            len: 0,
            limit,
        }
    }

    /// The digest (unless only counting) and length of what was read.
    pub fn finish(self) -> (Option<Digest>, u64) {
        (self.hash.map(Hasher::finish), self.len)
    }
}

impl<R: io::Read> io::Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hash {
            h.update(&buf[..n]);
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
    use std::io::Read;

    #[test]
    fn parse_refuses_non_sha256_and_traversal() {
        assert!(Digest::parse("sha256:../../etc/passwd").is_none());
        assert!(Digest::parse("sha512:00").is_none());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(63))).is_none());
        assert!(Digest::parse(&format!("sha256:{}/", "a".repeat(64))).is_none());
        let d = Digest::of(b"abc");
        assert_eq!(Digest::parse(d.as_str()), Some(d.clone()));
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.blob_path(), format!("blobs/sha256/{}", d.hex()));
    }

    #[test]
    fn parse_checked_error_is_one_short_line() {
        let long = format!("sha256:{}\n{}", "z".repeat(10), "y".repeat(1 << 20));
        let e = Digest::parse_checked(&long).unwrap_err().to_string();
        assert!(e.len() < 200 && !e.contains('\n'), "{e}");
        assert!(e.contains("only sha256"), "{e}");
    }

    #[test]
    fn hashers_match_one_shot() {
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (buf, d, n) = w.finish();
        assert_eq!(n, 11);
        assert_eq!(d, Digest::of(&buf));

        let mut h = Hasher::new();
        h.update(b"hello ");
        assert_eq!(h.current(), Digest::of(b"hello "));
        h.update(b"world");
        assert_eq!(h.finish(), d);

        let mut r = HashReader::new(&b"hello world"[..], 11);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish(), (Some(d), 11));
    }

    #[test]
    fn hash_reader_limit() {
        let mut r = HashReader::counting(&b"0123456789"[..], 4);
        let mut buf = Vec::new();
        assert!(r.read_to_end(&mut buf).is_err());
    }
}
