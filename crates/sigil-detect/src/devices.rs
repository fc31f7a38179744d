//! Device nodes: do they exist, are they character devices, who owns them,
//! and can this user open them read-write.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::read::{read_capped, resolve_in_root, under, CONFIG_CAP};

/// The effective identity the permission checks are evaluated for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Credentials {
    /// The credentials of this process (effective uid/gid and supplementary groups).
    pub fn current() -> Self {
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Credentials {
            uid,
            gid,
            groups: current_groups(),
        }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

fn current_groups() -> Vec<u32> {
    // SAFETY: a zero-size query writes nothing.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n <= 0 {
        return Vec::new();
    }
    let mut buf: Vec<libc::gid_t> = vec![0; n as usize];
    // SAFETY: buf holds exactly n entries, the size passed.
    let got = unsafe { libc::getgroups(n, buf.as_mut_ptr()) };
    if got < 0 {
        return Vec::new();
    }
    buf.truncate(got as usize);
    buf
}

/// What a path turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// Nothing there (or a dangling symlink).
    Missing,
    /// A character device: what a driver creates.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A regular file: a stale placeholder or a wrong bind mount.
    Regular,
    /// A directory (e.g. `/dev/sgx` holding the DCAP driver's nodes).
    Directory,
    /// A Unix socket.
    Socket,
    /// Anything else (FIFO).
    Other,
}

/// Result of a real `open(2)` attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAttempt {
    /// The open succeeded.
    pub ok: bool,
    /// The OS error when it did not.
    pub error: Option<String>,
    /// errno when it did not.
    pub errno: Option<i32>,
}

/// The probe of one device path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// The path in the probed system, e.g. `/dev/sgx_enclave`.
    pub path: String,
    /// What it is (after following symlinks inside the probe root).
    pub kind: FileKind,
    /// Symlink targets followed, in order.
    pub symlinks: Vec<String>,
    /// Permission bits (mode & 0o7777).
    pub mode: Option<u32>,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Group gid.
    pub gid: Option<u32>,
    /// Group name from /etc/group of the probed system.
    pub group: Option<String>,
    /// Device number (major, minor) of a char or block device.
    pub rdev: Option<(u32, u32)>,
    /// access(2)-style verdict for read+write by [`Credentials`].
    pub permitted: bool,
    /// A real open attempt (only in live probes).
    pub open: Option<OpenAttempt>,
    /// The cgroup v1 device allow list admits it (`None` when not visible).
    pub cgroup_allows: Option<bool>,
}

impl DeviceReport {
    /// Exists as anything.
    pub fn exists(&self) -> bool {
        self.kind != FileKind::Missing
    }

    /// A character device this user may open read-write (and did, when a
    /// live open was attempted).
    pub fn usable(&self) -> bool {
        self.kind == FileKind::CharDevice
            && self.permitted
            && self.open.as_ref().is_none_or(|o| o.ok)
            && self.cgroup_allows != Some(false)
    }
}

fn major(rdev: u64) -> u32 {
    // glibc's gnu_dev_major: bits 8..20 and 32..44.
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32
}

fn minor(rdev: u64) -> u32 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32
}

/// access(2) for read+write: root passes DAC checks (CAP_DAC_OVERRIDE);
/// otherwise the owner, group or other triad applies, exactly one of them.
pub fn may_read_write(mode: u32, uid: u32, gid: u32, c: &Credentials) -> bool {
    if c.uid == 0 {
        return true;
    }
    let triad = if c.uid == uid {
        (mode >> 6) & 7
    } else if c.in_group(gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    triad & 0o6 == 0o6
}

/// Probes `abs` under `root` for `creds`; `live` also tries a real open.
pub fn probe_device(root: &Path, abs: &str, creds: &Credentials, live: bool) -> DeviceReport {
    let (real, symlinks) = resolve_in_root(root, abs);
    let mut r = DeviceReport {
        path: abs.to_string(),
        kind: FileKind::Missing,
        symlinks,
        mode: None,
        uid: None,
        gid: None,
        group: None,
        rdev: None,
        permitted: false,
        open: None,
        cgroup_allows: None,
    };
    let Ok(meta) = fs::metadata(&real) else {
        return r;
    };
    let ft = meta.file_type();
    r.kind = if ft.is_char_device() {
        FileKind::CharDevice
    } else if ft.is_block_device() {
        FileKind::BlockDevice
    } else if ft.is_file() {
        FileKind::Regular
    } else if ft.is_dir() {
        FileKind::Directory
    } else if ft.is_socket() {
        FileKind::Socket
    } else {
        FileKind::Other
    };
    r.mode = Some(meta.mode() & 0o7777);
    r.uid = Some(meta.uid());
    r.gid = Some(meta.gid());
    r.group = group_name(root, meta.gid());
    if matches!(r.kind, FileKind::CharDevice | FileKind::BlockDevice) {
        r.rdev = Some((major(meta.rdev()), minor(meta.rdev())));
    }
    r.permitted = may_read_write(meta.mode(), meta.uid(), meta.gid(), creds);
    // Only devices are opened: opening a FIFO could block, and a regular
    // file is already known to be wrong.
    if live && r.kind == FileKind::CharDevice {
        r.open = Some(try_open(&real));
    }
    r
}

fn try_open(p: &Path) -> OpenAttempt {
    // O_NONBLOCK: SGX/TDX/SEV nodes never block on open, but a misplaced
    // tty or similar node must not hang the probe.
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
    {
        Ok(_) => OpenAttempt {
            ok: true,
            error: None,
            errno: None,
        },
        Err(e) => OpenAttempt {
            ok: false,
            errno: e.raw_os_error(),
            error: Some(e.to_string()),
        },
    }
}

/// Looks up the name of `gid` in `/etc/group` of the probed system.
pub fn group_name(root: &Path, gid: u32) -> Option<String> {
    let text = read_capped(&under(root, "/etc/group"), CONFIG_CAP)?;
    parse_group_name(&text, gid)
}

fn parse_group_name(text: &str, gid: u32) -> Option<String> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let id: u32 = f.next()?.trim().parse().ok()?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        (id == gid && valid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
        Credentials {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn access_evaluation_follows_one_triad() {
        let u = user(1000, 1000, &[27]);
        // crw-rw---- root:sgx(27): in the group via a supplementary group.
        assert!(may_read_write(0o660, 0, 27, &u));
        // Not in the group: "other" has nothing.
        assert!(!may_read_write(0o660, 0, 998, &u));
        // Owner bits apply to the owner even when "other" would allow more.
        assert!(!may_read_write(0o066, 1000, 0, &u));
        // Read-only is not enough.
        assert!(!may_read_write(0o640, 0, 27, &u));
        assert!(!may_read_write(0o644, 0, 0, &user(5, 5, &[])));
        assert!(may_read_write(0o666, 0, 0, &user(5, 5, &[])));
        // Root passes.
        assert!(may_read_write(0o000, 1, 1, &user(0, 0, &[])));
    }

    #[test]
    fn regular_file_is_not_a_char_device() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("dev")).unwrap();
        fs::write(d.path().join("dev/sgx_enclave"), b"").unwrap();
        let r = probe_device(d.path(), "/dev/sgx_enclave", &user(0, 0, &[]), true);
        assert_eq!(r.kind, FileKind::Regular);
        assert!(r.exists());
        assert!(!r.usable());
        assert_eq!(r.open, None, "regular files are not opened");
        let m = probe_device(d.path(), "/dev/isgx", &user(0, 0, &[]), true);
        assert_eq!(m.kind, FileKind::Missing);
        assert!(!m.exists());
    }

    #[test]
    fn group_names_parse_defensively() {
        let g = "root:x:0:\nsgx:x:107:alice\nbad name:x:5:\n:x:6:\nx:x:notanumber:\n";
        assert_eq!(parse_group_name(g, 107).as_deref(), Some("sgx"));
        assert_eq!(parse_group_name(g, 5), None);
        assert_eq!(parse_group_name(g, 6), None);
        assert_eq!(parse_group_name(g, 9), None);
        assert_eq!(parse_group_name("\u{0}\u{1}garbage", 0), None);
    }

    #[test]
    fn dev_numbers_decode() {
        // makedev(10, 125) with glibc's encoding.
        let dev = (10u64 << 8) | 125;
        assert_eq!((major(dev), minor(dev)), (10, 125));
        let dev = ((0x123u64 & 0xfff) << 8) | ((0x1000u64) << 32) | 0x45 | (0x100u64 << 12);
        assert_eq!((major(dev), minor(dev)), (0x1123, 0x145));
    }
}
