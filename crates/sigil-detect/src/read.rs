//! Bounded reading of files under the probe root.
//!
//! /proc, /sys and /etc files are outside input: they may be huge (a
//! 400-CPU /proc/cpuinfo), garbage, or not files at all (a FIFO planted in
//! place of a config file would block a naive read forever).

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// /proc/cpuinfo of a large machine is a few MiB; the first CPU's flags come
/// within the first few KiB, so 1 MiB is ample.
pub const CPUINFO_CAP: u64 = 1 << 20;
/// Config files (/etc/sgx_default_qcnl.conf, /etc/group).
pub const CONFIG_CAP: u64 = 256 << 10;
/// Small kernel files (/proc/sys/kernel/osrelease, cgroup lists, tsm attributes).
pub const SMALL_CAP: u64 = 64 << 10;

/// Joins an absolute path such as `/dev/sgx_enclave` under `root`.
pub fn under(root: &Path, abs: &str) -> PathBuf {
    let rel = abs.trim_start_matches('/');
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Reads at most `cap` bytes of a regular file, lossily decoded as UTF-8.
///
/// Returns `None` when the file is missing, unreadable or not a regular
/// file (procfs and sysfs files are regular files of size 0, so size is not
/// used to decide).
pub fn read_capped(path: &Path, cap: u64) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let file = fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    file.take(cap).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Resolves symlinks of `path` (an absolute path in the probed system)
/// inside `root`, so that an absolute link target in a fake tree or a
/// mounted node image points into that tree and not into the host.
///
/// Returns the final path under `root` and the chain of link targets seen.
pub fn resolve_in_root(root: &Path, abs: &str) -> (PathBuf, Vec<String>) {
    // Linux gives up after 40 links; a handful is plenty for /dev.
    const MAX_LINKS: usize = 8;
    let mut current = abs.to_string();
    let mut chain = Vec::new();
    for _ in 0..MAX_LINKS {
        let p = under(root, &current);
        let Ok(meta) = fs::symlink_metadata(&p) else {
            return (p, chain);
        };
        if !meta.file_type().is_symlink() {
            return (p, chain);
        }
        let Ok(target) = fs::read_link(&p) else {
            return (p, chain);
        };
        let target_s = target.to_string_lossy().into_owned();
        chain.push(target_s.clone());
        current = if target.is_absolute() {
            normalize(&target)
        } else {
            let parent = Path::new(&current).parent().unwrap_or(Path::new("/"));
            normalize(&parent.join(&target))
        };
    }
    (under(root, &current), chain)
}

/// Lexically normalises an absolute path ("/dev/sgx/../sgx_enclave").
fn normalize(p: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_read_stops_at_cap() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        fs::write(&p, vec![b'a'; 10_000]).unwrap();
        assert_eq!(read_capped(&p, 100).unwrap().len(), 100);
    }

    #[test]
    fn garbage_bytes_are_decoded_lossily() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g");
        fs::write(&p, [0xff, 0xfe, b'x', 0]).unwrap();
        let s = read_capped(&p, 100).unwrap();
        assert!(s.contains('x'));
    }

    #[test]
    fn directories_and_fifos_are_not_read() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_capped(d.path(), 100), None);
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0);
        // Would block forever if opened for reading without a writer.
        assert_eq!(read_capped(&fifo, 100), None);
        assert_eq!(read_capped(&d.path().join("missing"), 100), None);
    }

    #[test]
    fn symlinks_resolve_inside_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("dev/sgx")).unwrap();
        fs::write(root.join("dev/sgx_enclave"), b"").unwrap();
        std::os::unix::fs::symlink("../sgx_enclave", root.join("dev/sgx/enclave")).unwrap();
        std::os::unix::fs::symlink("/dev/sgx_enclave", root.join("dev/sgx/provision")).unwrap();
        let (p, chain) = resolve_in_root(root, "/dev/sgx/enclave");
        assert_eq!(p, root.join("dev/sgx_enclave"));
        assert_eq!(chain, vec!["../sgx_enclave".to_string()]);
        let (p, _) = resolve_in_root(root, "/dev/sgx/provision");
        assert_eq!(p, root.join("dev/sgx_enclave"));
    }

    #[test]
    fn symlink_loops_terminate() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("dev")).unwrap();
        std::os::unix::fs::symlink("/dev/b", root.join("dev/a")).unwrap();
        std::os::unix::fs::symlink("/dev/a", root.join("dev/b")).unwrap();
        let (_, chain) = resolve_in_root(root, "/dev/a");
        assert_eq!(chain.len(), 8);
    }

    #[test]
    fn dotdot_cannot_escape_root() {
        assert_eq!(normalize(Path::new("/dev/../../../etc/x")), "/etc/x");
    }
}
