//! Everything `sigil detect` reads from the host (or from inside a
//! container, where these files are whatever the image or runtime put
//! there): /proc and /sys text files, /etc/group, the QCNL configuration,
//! the cgroup device list, `SIGIL_SGX_RESOURCES`, Gramine's
//! attestation_type and CPUID answers. The pure parsers get the whole
//! input; then the input is split into files of a fake root and the full
//! probe and verdict run over it. Nothing may panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigil_detect::container::{parse_device_rules, parse_resources};
use sigil_detect::cpuid::{decode, FakeCpuid};
use sigil_detect::kernel::{parse_cpuinfo_flags, parse_version};
use sigil_detect::stack::parse_qcnl;
use sigil_detect::{probe, ProbeEnv};

/// Files of the fake root, filled from the input's `\0`-separated pieces.
const FILES: &[&str] = &[
    "proc/sys/kernel/osrelease",
    "proc/cpuinfo",
    "proc/cmdline",
    "proc/1/cgroup",
    "etc/group",
    "etc/sgx_default_qcnl.conf",
    "sys/fs/cgroup/devices.list",
    "dev/attestation/attestation_type",
    "sys/kernel/config/tsm/report/provider",
];

fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sigil-detect-fuzz-{}", std::process::id()));
        for f in FILES {
            if let Some(p) = dir.join(f).parent() {
                let _ = std::fs::create_dir_all(p);
            }
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_version(&text);
    let _ = parse_cpuinfo_flags(&text);
    let _ = parse_qcnl(&text);
    let _ = parse_resources(&text);
    let _ = parse_device_rules(&text);

    // CPUID: the first 4-byte words answer leaves 0, 7, 0x12.0-3 and
    // 0x8000_001F (the ones the decoder looks at).
    let mut words = data
        .chunks(4)
        .map(|c| c.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)));
    let mut w = || words.next().unwrap_or(0);
    let mut cpu = FakeCpuid::new().with_vendor(
        if data.first().is_some_and(|b| b & 1 == 1) {
            "GenuineIntel"
        } else {
            "AuthenticAMD"
        },
        w(),
        w(),
    );
    for (leaf, sub) in [
        (7, 0),
        (0x12, 0),
        (0x12, 1),
        (0x12, 2),
        (0x12, 3),
        (0x8000_001F, 0),
    ] {
        let (a, b, c, d) = (w(), w(), w(), w());
        cpu.set(leaf, sub, a, b, c, d);
    }
    let _ = decode(&cpu);

    let root = root();
    let mut pieces = data.split(|b| *b == 0);
    for f in FILES {
        let _ = std::fs::write(root.join(f), pieces.next().unwrap_or(&[]));
    }
    let resources = pieces
        .next()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let env = ProbeEnv::fake(root.clone(), cpu)
        .with_var("SIGIL_SGX_RESOURCES", &resources)
        .with_creds(1000, 1000, &[1000]);
    if let Ok(report) = probe(&env) {
        let _ = report.render_text();
        let _ = report.to_json();
    }
});
