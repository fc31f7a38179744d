//! Creating files that hold secrets without ever leaving a half-written
//! file behind: write a private temporary file in the same directory,
//! fsync it, then link it into place.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates `path` with exactly `data` and permission `mode`, or fails and
/// leaves nothing behind. The content goes to a temporary file in the same
/// directory (created with `mode`, fsynced) that is then hard-linked to
/// `path`: the link fails if `path` exists, so an existing file is never
/// replaced, and readers only ever see the complete content. The directory
/// is fsynced so the new name survives a crash.
pub fn create_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, data, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked?;
    sync_dir(path);
    Ok(())
}

/// Like [`create_new`] but replaces an existing `path` (atomic rename).
pub fn replace(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, data, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path);
    Ok(())
}

fn write_temp(path: &Path, data: &[u8], mode: u32) -> io::Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    loop {
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut f = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        return match f.write_all(data).and_then(|_| f.sync_all()) {
            Ok(()) => Ok(tmp),
            Err(e) => {
                drop(f);
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        };
    }
}

fn sync_dir(path: &Path) {
    // Best effort: the file itself is complete either way.
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(f) = fs::File::open(d) {
            let _ = f.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn leftovers(d: &Path) -> Vec<String> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn creates_with_mode_and_never_clobbers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        create_new(&p, b"first", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = create_new(&p, b"second", 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"first");
        assert!(leftovers(d.path()).is_empty());
        replace(&p, b"third", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"third");
        assert!(leftovers(d.path()).is_empty());
    }
}
