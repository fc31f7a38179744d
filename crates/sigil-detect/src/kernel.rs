//! What the running kernel exposes: its release, the TEE flags of
//! /proc/cpuinfo (the kernel clears a flag when it refuses the feature, so
//! CPUID alone is not the truth) and `nosgx` on the command line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::read::{read_capped, under, CPUINFO_CAP, SMALL_CAP};

/// The /proc/cpuinfo flags Sigil cares about.
pub const TEE_FLAGS: &[&str] = &[
    "sgx",
    "sgx_lc",
    "sgx2",
    "sev",
    "sev_es",
    "sev_snp",
    "tdx_guest",
    "hypervisor",
];

/// Kernel-side view of the TEE features.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelReport {
    /// /proc/sys/kernel/osrelease, trimmed.
    pub release: Option<String>,
    /// (major, minor) parsed from the release.
    pub version: Option<(u32, u32)>,
    /// A `flags` line was found in /proc/cpuinfo.
    pub cpuinfo_flags_found: bool,
    /// TEE flags present in the first CPU's `flags` line, from [`TEE_FLAGS`].
    pub flags: Vec<String>,
    /// `nosgx` is on /proc/cmdline.
    pub nosgx: bool,
}

impl KernelReport {
    /// Whether /proc/cpuinfo lists `flag`; `None` when cpuinfo had no flags line.
    pub fn flag(&self, flag: &str) -> Option<bool> {
        self.cpuinfo_flags_found
            .then(|| self.flags.iter().any(|f| f == flag))
    }

    /// True when the kernel is at least `major.minor`; `None` when unknown.
    pub fn at_least(&self, major: u32, minor: u32) -> Option<bool> {
        self.version.map(|v| v >= (major, minor))
    }
}

/// Probes /proc under `root`.
pub fn probe(root: &Path) -> KernelReport {
    let release = read_capped(&under(root, "/proc/sys/kernel/osrelease"), 256)
        .map(|s| s.trim().chars().take(128).collect::<String>())
        .filter(|s| !s.is_empty());
    let version = release.as_deref().and_then(parse_version);
    let (found, flags) = read_capped(&under(root, "/proc/cpuinfo"), CPUINFO_CAP)
        .map(|s| parse_cpuinfo_flags(&s))
        .unwrap_or((false, Vec::new()));
    let nosgx = read_capped(&under(root, "/proc/cmdline"), SMALL_CAP)
        .map(|s| s.split_ascii_whitespace().any(|w| w == "nosgx"))
        .unwrap_or(false);
    KernelReport {
        release,
        version,
        cpuinfo_flags_found: found,
        flags,
        nosgx,
    }
}

/// Parses "6.8.0-45-generic" into (6, 8).
pub fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Returns whether a `flags` line was found and the TEE flags in the first one.
pub fn parse_cpuinfo_flags(cpuinfo: &str) -> (bool, Vec<String>) {
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim() != "flags" {
            continue;
        }
        let mut found: Vec<String> = Vec::new();
        for w in value.split_ascii_whitespace() {
            if TEE_FLAGS.contains(&w) && !found.iter().any(|f| f == w) {
                found.push(w.to_string());
            }
        }
        return (true, found);
    }
    (false, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_first_flags_line_only() {
        let s = "processor\t: 0\nflags\t\t: fpu sgx sgx_lc hypervisor sgx\nprocessor : 1\nflags : sev_snp\n";
        let (found, flags) = parse_cpuinfo_flags(s);
        assert!(found);
        assert_eq!(flags, vec!["sgx", "sgx_lc", "hypervisor"]);
    }

    #[test]
    fn garbage_cpuinfo_yields_no_flags() {
        assert_eq!(
            parse_cpuinfo_flags("\0\0\0:::\nflagsx: sgx"),
            (false, vec![])
        );
        assert_eq!(parse_cpuinfo_flags(""), (false, vec![]));
        // A flag that merely contains "sgx" is not "sgx".
        let (_, f) = parse_cpuinfo_flags("flags: nosgx sgxfoo");
        assert!(f.is_empty());
    }

    #[test]
    fn huge_cpuinfo_is_read_with_a_cap() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        // 3 MiB of junk before the flags: beyond the cap, so no flags, no panic.
        let mut s = "x".repeat(3 << 20);
        s.push_str("\nflags: sgx\n");
        std::fs::write(d.path().join("proc/cpuinfo"), s).unwrap();
        let k = probe(d.path());
        assert!(!k.cpuinfo_flags_found);
        assert_eq!(k.flag("sgx"), None);
    }

    #[test]
    fn versions_and_cmdline() {
        assert_eq!(parse_version("6.8.0-45-generic"), Some((6, 8)));
        assert_eq!(parse_version("5.4"), Some((5, 4)));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(parse_version("99999999999999999999.1"), None);
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc/sys/kernel")).unwrap();
        std::fs::write(d.path().join("proc/sys/kernel/osrelease"), "5.4.0-1\n").unwrap();
        std::fs::write(d.path().join("proc/cmdline"), "ro quiet nosgx\n").unwrap();
        let k = probe(d.path());
        assert_eq!(k.at_least(5, 11), Some(false));
        assert!(k.nosgx);
        assert_eq!(k.release.as_deref(), Some("5.4.0-1"));
    }
}
