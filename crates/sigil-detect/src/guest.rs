//! Confidential-VM guest interfaces: /dev/tdx_guest, /dev/sev-guest and the
//! configfs-tsm report interface (Linux 6.7+) that abstracts both.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::devices::{probe_device, Credentials, DeviceReport};
use crate::read::{read_capped, under};

/// TDX guest attestation device (tdx_guest driver).
pub const TDX_GUEST_DEV: &str = "/dev/tdx_guest";
/// SEV-SNP guest attestation device (sev-guest driver).
pub const SEV_GUEST_DEV: &str = "/dev/sev-guest";
/// configfs-tsm report directory.
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";
/// A malicious or broken tree could hold millions of entries.
const MAX_TSM_ENTRIES: usize = 64;

/// configfs-tsm state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsmReport {
    /// /sys/kernel/config is a directory (configfs mounted, or at least present).
    pub configfs_present: bool,
    /// /sys/kernel/config/tsm/report exists: a TSM provider is registered.
    pub report_dir: bool,
    /// This user may create report entries (write+search on the directory).
    pub writable: bool,
    /// Provider names seen (`tdx_guest`, `sev_guest`, ...).
    pub providers: Vec<String>,
}

impl TsmReport {
    /// A provider called `name` is registered and usable by this user.
    pub fn usable_provider(&self, name: &str) -> bool {
        self.report_dir && self.writable && self.providers.iter().any(|p| p == name)
    }
}

/// Guest-side TEE interfaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestReport {
    /// /dev/tdx_guest.
    pub tdx_guest: DeviceReport,
    /// /dev/sev-guest.
    pub sev_guest: DeviceReport,
    /// configfs-tsm.
    pub tsm: TsmReport,
}

/// Probes guest interfaces under `root`. In a live probe with no existing
/// report entry, one entry is created and removed again to learn the
/// provider name (that is how configfs-tsm exposes it).
pub fn probe(root: &Path, creds: &Credentials, live: bool) -> GuestReport {
    GuestReport {
        tdx_guest: probe_device(root, TDX_GUEST_DEV, creds, live),
        sev_guest: probe_device(root, SEV_GUEST_DEV, creds, live),
        tsm: probe_tsm(root, creds, live),
    }
}

fn valid_provider(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn read_provider(entry: &Path) -> Option<String> {
    let p = read_capped(&entry.join("provider"), 256)?;
    let p = p.trim();
    valid_provider(p).then(|| p.to_string())
}

fn probe_tsm(root: &Path, creds: &Credentials, live: bool) -> TsmReport {
    let mut t = TsmReport {
        configfs_present: under(root, "/sys/kernel/config").is_dir(),
        ..TsmReport::default()
    };
    let dir = under(root, TSM_REPORT_DIR);
    let Ok(meta) = fs::metadata(&dir) else {
        return t;
    };
    if !meta.is_dir() {
        return t;
    }
    t.report_dir = true;
    // Creating an entry is mkdir: needs write and search on the directory.
    t.writable = creds.uid == 0 || {
        let m = meta.mode();
        let triad = if creds.uid == meta.uid() {
            (m >> 6) & 7
        } else if creds.gid == meta.gid() || creds.groups.contains(&meta.gid()) {
            (m >> 3) & 7
        } else {
            m & 7
        };
        triad & 0o3 == 0o3
    };
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd.take(MAX_TSM_ENTRIES).flatten() {
            if let Some(p) = read_provider(&e.path()) {
                if !t.providers.contains(&p) {
                    t.providers.push(p);
                }
            }
        }
    }
    if t.providers.is_empty() && live && t.writable {
        let entry = dir.join(format!("sigil-detect-{}", std::process::id()));
        if fs::create_dir(&entry).is_ok() {
            if let Some(p) = read_provider(&entry) {
                t.providers.push(p);
            }
            // Best effort: configfs removes the entry's attributes with it.
            let _ = fs::remove_dir(&entry);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsm_providers_read_from_existing_entries() {
        let d = tempfile::tempdir().unwrap();
        let e = d.path().join("sys/kernel/config/tsm/report/a");
        fs::create_dir_all(&e).unwrap();
        fs::write(e.join("provider"), "tdx_guest\n").unwrap();
        let bad = d.path().join("sys/kernel/config/tsm/report/b");
        fs::create_dir_all(&bad).unwrap();
        fs::write(bad.join("provider"), "x".repeat(1000)).unwrap();
        let root = Credentials::default();
        let g = probe(d.path(), &root, false);
        assert!(g.tsm.configfs_present && g.tsm.report_dir && g.tsm.writable);
        assert_eq!(g.tsm.providers, vec!["tdx_guest".to_string()]);
        assert!(g.tsm.usable_provider("tdx_guest"));
        assert!(!g.tsm.usable_provider("sev_guest"));
        assert!(!g.tdx_guest.exists());
    }

    #[test]
    fn tsm_needs_write_permission_for_non_root() {
        let d = tempfile::tempdir().unwrap();
        let e = d.path().join("sys/kernel/config/tsm/report/a");
        fs::create_dir_all(&e).unwrap();
        fs::write(e.join("provider"), "sev_guest\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let dir = d.path().join("sys/kernel/config/tsm/report");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let owner = fs::metadata(&dir).unwrap().uid();
        let other = Credentials {
            uid: owner.wrapping_add(1000),
            gid: 4242,
            groups: vec![],
        };
        let g = probe(d.path(), &other, false);
        assert!(g.tsm.report_dir && !g.tsm.writable);
        assert!(!g.tsm.usable_provider("sev_guest"));
    }

    #[test]
    fn live_probe_cleans_up_its_entry() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("sys/kernel/config/tsm/report");
        fs::create_dir_all(&dir).unwrap();
        let g = probe(d.path(), &Credentials::default(), true);
        // A plain directory is not configfs: no provider appears, and the
        // probe's entry is gone again.
        assert!(g.tsm.providers.is_empty());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }
}
