//! Reading an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`) kept as a directory or as a tar (an OCI archive),
//! and the members of a docker-archive, which is a tar too.
//!
//! All of it is outside input: a tar is listed once (member name →
//! offset and size, at most a given number of entries) and members are then
//! read in place; names are normalised with [`normalize_member`]; in a
//! directory, members must be regular files (a symlink could point at host
//! files); every read has a size limit; blobs are checked against their
//! descriptor's size and digest.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{one_line, Error, IoContext, Result};
use crate::spec::Descriptor;

/// A tar member name as a layout path: leading `./` and `/` removed
/// (`./index.json`, `/index.json` and `index.json` are the same member).
pub fn normalize_member(name: &str) -> String {
    let mut n = name;
    while let Some(rest) = n.strip_prefix("./") {
        n = rest;
    }
    n.trim_start_matches('/').to_string()
}

/// Lists the regular members of the tar at `path`: normalised name →
/// (offset of the data in the file, size). Every entry counts towards
/// `max_entries`, not only regular files, so a tar of endless directory or
/// link entries is refused as early as one of files. A name given twice is
/// the later member, as when the tar is unpacked.
pub fn list_tar(path: &Path, max_entries: u64) -> Result<HashMap<String, (u64, u64)>> {
    let f = File::open(path).at(path)?;
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    // tar's messages quote header fields (names), which are outside input.
    let bad = |e: io::Error| {
        Error::Malformed(format!(
            "{}: not an OCI layout directory or a readable tar archive: {}",
            path.display(),
            one_line(&e.to_string(), 200)
        ))
    };
    let mut members = HashMap::new();
    for (n, entry) in ar.entries().map_err(bad)?.enumerate() {
        if n as u64 >= max_entries {
            return Err(Error::Limit(format!(
                "{}: more than {max_entries} archive members",
                path.display()
            )));
        }
        let entry = entry.map_err(bad)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = normalize_member(&String::from_utf8_lossy(&entry.path_bytes()));
        members.insert(name, (entry.raw_file_position(), entry.size()));
    }
    Ok(members)
}

/// An OCI layout (or docker-archive) to read members from.
#[derive(Debug)]
pub enum Layout {
    /// A directory.
    Dir(PathBuf),
    /// A tar file and the offset/size of each regular member.
    Tar {
        /// The tar file.
        path: PathBuf,
        /// Member name → (data offset, size).
        members: HashMap<String, (u64, u64)>,
    },
}

impl Layout {
    /// Opens a directory as it is, or lists a tar file (at most
    /// `max_entries` entries). Whether it holds a layout is the caller's
    /// question ([`Layout::has`]).
    pub fn open(path: &Path, max_entries: u64) -> Result<Layout> {
        let meta = std::fs::metadata(path).at(path)?;
        Ok(if meta.is_dir() {
            Layout::Dir(path.to_path_buf())
        } else {
            Layout::Tar {
                path: path.to_path_buf(),
                members: list_tar(path, max_entries)?,
            }
        })
    }

    /// The directory or tar file.
    pub fn path(&self) -> &Path {
        match self {
            Layout::Dir(d) => d,
            Layout::Tar { path, .. } => path,
        }
    }

    /// Whether `name` is a regular file (not a symlink) of the layout.
    pub fn has(&self, name: &str) -> bool {
        match self {
            Layout::Dir(d) => std::fs::symlink_metadata(d.join(name)).is_ok_and(|m| m.is_file()),
            Layout::Tar { members, .. } => members.contains_key(name),
        }
    }

    /// The host file holding member `name` and the (offset, size) of its data.
    pub fn locate(&self, name: &str) -> Result<(PathBuf, u64, u64)> {
        match self {
            Layout::Dir(d) => {
                let p = d.join(name);
                // Refuse symlinks: a layout must not point us at host files.
                let m = std::fs::symlink_metadata(&p)
                    .map_err(|_| Error::Malformed(format!("{}: missing {name}", d.display())))?;
                if !m.is_file() {
                    return Err(Error::Malformed(format!(
                        "{}: {name} is not a regular file",
                        d.display()
                    )));
                }
                Ok((p, 0, m.len()))
            }
            Layout::Tar { path, members } => {
                let (off, size) = members.get(name).ok_or_else(|| {
                    Error::Malformed(format!("{}: missing {name}", path.display()))
                })?;
                Ok((path.clone(), *off, *size))
            }
        }
    }

    /// A reader of member `name`, and its size.
    pub fn open_member(&self, name: &str) -> Result<(io::Take<File>, u64)> {
        let (p, off, size) = self.locate(name)?;
        let mut f = File::open(&p).at(&p)?;
        f.seek(SeekFrom::Start(off)).at(&p)?;
        Ok((f.take(size), size))
    }

    /// Reads member `name` whole; larger than `limit` bytes is refused
    /// before anything is read.
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let (p, off, size) = self.locate(name)?;
        if size > limit {
            return Err(Error::Limit(format!(
                "{name} is larger than {limit} bytes ({size})"
            )));
        }
        let mut f = File::open(&p).at(&p)?;
        f.seek(SeekFrom::Start(off)).at(&p)?;
        let mut buf = Vec::with_capacity(size as usize);
        f.take(size).read_to_end(&mut buf).at(&p)?;
        if buf.len() as u64 != size {
            return Err(Error::Malformed(format!(
                "{}: {name} is truncated",
                p.display()
            )));
        }
        Ok(buf)
    }

    /// Reads the blob `d` names (index, manifest, config), at most `limit`
    /// bytes, checking that its size and digest are the descriptor's.
    /// `what` names it in errors.
    pub fn read_blob(&self, d: &Descriptor, limit: u64, what: &str) -> Result<Vec<u8>> {
        let digest = d
            .digest()
            .map_err(|e| Error::Malformed(format!("{what}: {e}")))?;
        if d.size > limit {
            return Err(Error::Limit(format!(
                "{what} {digest} is {} bytes (at most {limit})",
                d.size
            )));
        }
        let bytes = self.read_small(&digest.blob_path(), limit)?;
        if bytes.len() as u64 != d.size {
            return Err(Error::Limit(format!(
                "{what} {digest}: {} bytes but the descriptor says {}",
                bytes.len(),
                d.size
            )));
        }
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MT_MANIFEST;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, t, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*t);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn normalizes_member_names() {
        assert_eq!(normalize_member("./././index.json"), "index.json");
        assert_eq!(normalize_member("//blobs/sha256/x"), "blobs/sha256/x");
        assert_eq!(normalize_member("a/./b"), "a/./b");
    }

    #[test]
    fn tar_members_and_blobs() {
        let blob = b"{}";
        let d = Digest::of(blob);
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.tar");
        std::fs::write(
            &p,
            tar_of(&[
                ("./index.json", tar::EntryType::Regular, b"{}"),
                ("blobs/", tar::EntryType::Directory, b""),
                (&d.blob_path(), tar::EntryType::Regular, blob),
            ]),
        )
        .unwrap();
        let l = Layout::open(&p, 10).unwrap();
        assert!(l.has("index.json") && !l.has("blobs/"));
        let good = Descriptor::new(MT_MANIFEST, &d, 2);
        assert_eq!(l.read_blob(&good, 10, "manifest").unwrap(), blob);
        let e = l.read_small("index.json", 1).unwrap_err().to_string();
        assert!(e.contains("index.json is larger than 1 bytes"), "{e}");
        // Size must be the descriptor's, and the digest the content's.
        let mut wrong = good.clone();
        wrong.size = 1;
        assert!(matches!(
            l.read_blob(&wrong, 10, "manifest"),
            Err(Error::Limit(_))
        ));
        let other = Descriptor::new(MT_MANIFEST, &Digest::of(b"[]"), 2);
        assert!(l.read_blob(&other, 10, "manifest").is_err());
        let e = l.locate("nope").unwrap_err().to_string();
        assert!(e.ends_with("missing nope"), "{e}");
    }

    /// Every entry counts towards the limit, not only regular files (the
    /// registry's copy counted only regular members, so a tar of many
    /// directories was read to its end).
    #[test]
    fn entry_limit_counts_every_entry() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("dirs.tar");
        let names: Vec<String> = (0..20).map(|i| format!("d{i}/")).collect();
        let mut entries: Vec<(&str, tar::EntryType, &[u8])> = names
            .iter()
            .map(|n| (n.as_str(), tar::EntryType::Directory, &b""[..]))
            .collect();
        entries.push(("index.json", tar::EntryType::Regular, b"{}"));
        std::fs::write(&p, tar_of(&entries)).unwrap();
        let e = Layout::open(&p, 10).unwrap_err().to_string();
        assert!(e.contains("more than 10 archive members"), "{e}");
        assert!(Layout::open(&p, 21).is_ok());
    }

    #[test]
    fn directory_refuses_symlinks_and_junk_tars() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", t.path().join("index.json")).unwrap();
        let l = Layout::open(t.path(), 10).unwrap();
        assert!(!l.has("index.json") && l.has("real"));
        let e = l.read_small("index.json", 10).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");

        // A header whose name holds newlines and whose checksum field is
        // empty (found by the fuzz target): tar quotes the name, we don't.
        let mut hostile = vec![0u8; 1024];
        hostile[..2].copy_from_slice(b"\n\n");
        let p = t.path().join("hostile.tar");
        std::fs::write(&p, &hostile).unwrap();
        let e = Layout::open(&p, 10).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");

        let junk = t.path().join("junk.tar");
        std::fs::write(&junk, vec![0x55u8; 1024]).unwrap();
        let e = Layout::open(&junk, 10).unwrap_err().to_string();
        assert!(e.contains("junk.tar") && !e.contains('\n'), "{e}");
    }
}
