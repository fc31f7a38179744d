//! Whole-machine scenarios: fake /dev, /sys, /proc and /etc trees plus raw
//! CPUID register values, run through the real probe and verdict.
//!
//! Device nodes are made with mknod(2) when permitted (as root); otherwise
//! they are regular files, and the tests assert the probe reports them as
//! "exists but is not a character device" instead.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sigil_detect::{
    probe, AdviceId, Evidence, FakeCpuid, FileKind, Mode, ProbeEnv, Report, Severity, Status,
    Verdict, EXIT_HW, EXIT_INCOMPLETE, EXIT_SIM_ONLY,
};

struct Tree {
    dir: tempfile::TempDir,
    _listeners: Vec<std::os::unix::net::UnixListener>,
}

impl Tree {
    fn new() -> Self {
        Tree {
            dir: tempfile::tempdir().unwrap(),
            _listeners: Vec::new(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn p(&self, abs: &str) -> PathBuf {
        self.root().join(abs.trim_start_matches('/'))
    }

    fn file(&self, abs: &str, content: &str) -> &Self {
        let p = self.p(abs);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
        self
    }

    fn dir(&self, abs: &str) -> &Self {
        fs::create_dir_all(self.p(abs)).unwrap();
        self
    }

    fn symlink(&self, abs: &str, target: &str) -> &Self {
        let p = self.p(abs);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }

    /// A character device (1:3, the null device, so a live open is
    /// harmless) when mknod is permitted, else a regular file. Returns
    /// whether it is a real character device.
    fn chardev(&self, abs: &str, mode: u32) -> bool {
        self.chardev_num(abs, mode, 1, 3)
    }

    fn chardev_num(&self, abs: &str, mode: u32, major: u32, minor: u32) -> bool {
        let p = self.p(abs);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: valid NUL-terminated path; mknod touches no Rust memory.
        let rc = unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFCHR | mode,
                libc::makedev(major, minor),
            )
        };
        let real = rc == 0;
        if !real {
            fs::write(&p, "").unwrap();
        }
        // mknod applies the umask; set the exact mode.
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        real
    }

    fn socket(&mut self, abs: &str) {
        let p = self.p(abs);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        self._listeners
            .push(std::os::unix::net::UnixListener::bind(p).unwrap());
    }

    fn kernel(&self, release: &str, flags: &str) -> &Self {
        self.file("/proc/sys/kernel/osrelease", &format!("{release}\n"));
        self.file(
            "/proc/cpuinfo",
            &format!("processor\t: 0\nvendor_id\t: x\nflags\t\t: fpu vme {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n"),
        );
        self.file("/proc/cmdline", "BOOT_IMAGE=/vmlinuz ro quiet\n")
    }
}

fn w(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

/// Ice Lake-SP style host: SGX1+SGX2, FLC, one 8 GiB EPC section.
fn cpu_sgx2_flc() -> FakeCpuid {
    FakeCpuid::new()
        .with_vendor("GenuineIntel", 0x1B, 0x8000_0008)
        .with(7, 0, 0, (1 << 2) | (1 << 5), 1 << 30, 0)
        .with(0x12, 0, 0b11, 0, 0, (56 << 8) | 31)
        .with(0x12, 2, 0x8000_0001, 0x40, 0x0000_0001, 0x2)
}

/// Skylake style: SGX1 only, no FLC, 93.5 MiB EPC.
fn cpu_sgx1_no_flc() -> FakeCpuid {
    FakeCpuid::new()
        .with_vendor("GenuineIntel", 0x16, 0x8000_0008)
        .with(7, 0, 0, (1 << 2) | (1 << 5), 0, 0)
        .with(0x12, 0, 0b01, 0, 0, (36 << 8) | 31)
        .with(0x12, 2, 0x7020_0001, 0, 0x05D8_0001, 0)
}

/// Intel bare metal whose BIOS disabled SGX: leaf 7 lacks the bit.
fn cpu_intel_sgx_off() -> FakeCpuid {
    FakeCpuid::new()
        .with_vendor("GenuineIntel", 0x1B, 0x8000_0008)
        .with(7, 0, 0, 1 << 5, 0, 0)
}

fn cpu_tdx_guest() -> FakeCpuid {
    FakeCpuid::new()
        .with_vendor("GenuineIntel", 0x23, 0x8000_0008)
        .with(1, 0, 0, 0, 1 << 31, 0)
        .with(0x21, 0, 0, w(b"Inte"), w(b"    "), w(b"lTDX"))
}

fn cpu_amd(hypervisor: bool, sev_bits: u32) -> FakeCpuid {
    FakeCpuid::new()
        .with_vendor("AuthenticAMD", 0x10, 0x8000_0021)
        .with(1, 0, 0, 0, if hypervisor { 1 << 31 } else { 0 }, 0)
        .with(0x8000_001F, 0, sev_bits, 51, 509, 1)
}

const SNP_BITS: u32 = (1 << 1) | (1 << 3) | (1 << 4);

fn run(env: &ProbeEnv) -> Report {
    let r = probe(env).unwrap();
    // Every report must survive a JSON round trip and render.
    let back: Report = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(back, r);
    assert!(r
        .render_text()
        .contains(&format!("exit code {}", r.verdict().exit_code)));
    r
}

/// The verdict has advice `id` whose fix says `needle`.
fn assert_fix(v: &Verdict, id: AdviceId, needle: &str) {
    let a = v
        .get(id)
        .unwrap_or_else(|| panic!("no advice {id:?} in {:?}", v.advice));
    assert!(a.fix.contains(needle), "{id:?}: {}", a.fix);
}

fn blocking(r: &Report) -> Vec<AdviceId> {
    r.verdict()
        .advice
        .iter()
        .filter(|a| a.severity == Severity::Blocking)
        .map(|a| a.id)
        .collect()
}

/// A complete SGX2+FLC host with the in-kernel driver, udev links, AESM and
/// a configured quote provider. Returns whether the nodes are real devices.
fn sgx_host(t: &mut Tree) -> bool {
    t.kernel("6.8.0-45-generic", "sgx sgx_lc");
    let a = t.chardev("/dev/sgx_enclave", 0o666);
    let b = t.chardev("/dev/sgx_provision", 0o660);
    t.symlink("/dev/sgx/enclave", "../sgx_enclave");
    t.symlink("/dev/sgx/provision", "/dev/sgx_provision");
    t.socket("/var/run/aesmd/aesm.socket");
    t.file("/usr/lib/x86_64-linux-gnu/libdcap_quoteprov.so.1", "");
    t.file(
        "/etc/sgx_default_qcnl.conf",
        "{\n  // PCCS server address\n  \"pccs_url\": \"https://pccs.example:8081/sgx/certification/v4/\"\n  ,\"use_secure_cert\": true\n}\n",
    );
    a && b
}

#[test]
fn sgx2_flc_host_with_in_kernel_driver() {
    let mut t = Tree::new();
    let real = sgx_host(&mut t);
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()).with_live(true));
    assert!(r.cpu.sgx.sgx2 && r.cpu.sgx.flc);
    assert_eq!(r.cpu.sgx.epc_total(), 8 << 30);
    assert_eq!(r.kernel.flag("sgx_lc"), Some(true));
    let enclave = &r.sgx_devices[0];
    assert_eq!(enclave.path, "/dev/sgx_enclave");
    let dcap_link = r
        .sgx_devices
        .iter()
        .find(|d| d.path == "/dev/sgx/enclave")
        .unwrap();
    assert_eq!(dcap_link.symlinks, vec!["../sgx_enclave".to_string()]);
    assert_eq!(r.stack.aesm.connect_ok, Some(true));
    let v = r.verdict();
    if real {
        assert_eq!(enclave.kind, FileKind::CharDevice);
        assert_eq!(enclave.rdev, Some((1, 3)));
        assert_eq!(enclave.open.as_ref().map(|o| o.ok), Some(true));
        assert_eq!(v.mode, Mode::Hw);
        assert_eq!(v.evidence, Some(Evidence::SgxDcap));
        assert_eq!(v.status, Status::Ready);
        assert_eq!(v.exit_code, EXIT_HW);
        assert!(blocking(&r).is_empty(), "{:?}", v.advice);
        assert!(v.summary.contains("SGX2"), "{}", v.summary);
    } else {
        assert_eq!(enclave.kind, FileKind::Regular);
        assert_eq!(v.exit_code, EXIT_INCOMPLETE);
        assert!(v.has(AdviceId::DeviceNotCharDevice));
    }
    // The flags to pass on are the same either way.
    assert_eq!(
        &v.pass_on.docker[..2],
        ["--device=/dev/sgx_enclave", "--device=/dev/sgx_provision"]
    );
    assert!(v
        .pass_on
        .docker
        .contains(&"--volume=/var/run/aesmd:/var/run/aesmd".to_string()));
    for line in [
        "sgx.intel.com/enclave: 1",
        "sgx.intel.com/provision: 1",
        "sgx.intel.com/epc",
    ] {
        assert!(
            v.pass_on.kubernetes.iter().any(|l| l.contains(line)),
            "{line}"
        );
    }
    assert!(!v.has(AdviceId::SgxPccsNotConfigured));
}

#[test]
fn sgx_host_without_aesm_is_incomplete() {
    let mut t = Tree::new();
    let real = sgx_host(&mut t);
    fs::remove_file(t.p("/var/run/aesmd/aesm.socket")).unwrap();
    fs::remove_file(t.p("/etc/sgx_default_qcnl.conf")).unwrap();
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    let v = r.verdict();
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    assert_eq!(v.mode, Mode::Sim);
    let a = v.get(AdviceId::SgxAesmMissing).unwrap();
    assert_eq!(a.severity, Severity::Blocking);
    assert!(a.fix.contains("systemctl enable --now aesmd"), "{}", a.fix);
    assert_eq!(
        v.get(AdviceId::SgxPccsNotConfigured).map(|a| a.severity),
        Some(Severity::Warning)
    );
    if real {
        assert_eq!(blocking(&r), vec![AdviceId::SgxAesmMissing]);
    }
}

#[test]
fn legacy_isgx_host() {
    let t = Tree::new();
    t.kernel("4.15.0-213-generic", "");
    let real = t.chardev("/dev/isgx", 0o666);
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx1_no_flc()));
    let v = r.verdict();
    assert_eq!(v.status, Status::Incomplete);
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    assert_eq!(v.mode, Mode::Sim);
    assert!(r.cpu.sgx.sgx1 && !r.cpu.sgx.sgx2 && !r.cpu.sgx.flc);
    assert_eq!(r.cpu.sgx.epc_sections[0].size, 0x05D8_0000);
    let b = blocking(&r);
    assert!(b.contains(&AdviceId::SgxNoFlc), "{b:?}");
    let legacy = v.get(AdviceId::SgxLegacyDriver).unwrap();
    assert_eq!(legacy.subject.as_deref(), Some("/dev/isgx"));
    // Without FLC no newer driver helps: the advice says so.
    assert!(legacy.fix.contains("FLC"), "{}", legacy.fix);
    assert!(v.has(AdviceId::UseSimulation));
    let isgx = r
        .sgx_devices
        .iter()
        .find(|d| d.path == "/dev/isgx")
        .unwrap();
    assert_eq!(isgx.kind == FileKind::CharDevice, real);
    // No flags to pass on: nothing can make this CPU do DCAP.
    assert!(v.pass_on.docker.is_empty() && v.pass_on.kubernetes.is_empty());
    // Old kernel without the in-kernel driver is not blamed for a missing flag.
    assert!(!v.has(AdviceId::SgxKernelDisabled));
}

#[test]
fn legacy_isgx_on_flc_cpu_says_upgrade() {
    let t = Tree::new();
    t.kernel("5.4.0-1", "sgx_lc");
    t.chardev("/dev/isgx", 0o666);
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    let v = r.verdict();
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    assert_fix(v, AdviceId::SgxLegacyDriver, "rmmod isgx");
    assert_fix(v, AdviceId::SgxKernelTooOld, "5.11");
}

#[test]
fn sgx_disabled_in_bios() {
    let t = Tree::new();
    t.kernel("6.8.0", "");
    let r = run(&ProbeEnv::fake(t.root(), cpu_intel_sgx_off()));
    let v = r.verdict();
    assert!(!r.cpu.sgx.supported);
    assert_eq!(v.status, Status::NoTee);
    assert_eq!(v.exit_code, EXIT_SIM_ONLY);
    assert_eq!(v.mode, Mode::Sim);
    assert_fix(v, AdviceId::SgxDisabledOrAbsent, "BIOS");
    assert!(v.has(AdviceId::UseSimulation));
    assert!(v.pass_on.docker.is_empty());
}

#[test]
fn sgx_enabled_without_epc() {
    // "Software controlled" SGX: leaf 7 says SGX but no EPC is enumerated.
    let t = Tree::new();
    t.kernel("6.8.0", "");
    let cpu = cpu_sgx2_flc().with(0x12, 2, 0, 0, 0, 0);
    let r = run(&ProbeEnv::fake(t.root(), cpu));
    assert!(r.verdict().has(AdviceId::SgxNoEpc));
    assert!(r.verdict().has(AdviceId::SgxKernelDisabled));
    assert_eq!(r.verdict().exit_code, EXIT_INCOMPLETE);
}

#[test]
fn nosgx_on_cmdline_is_named() {
    let t = Tree::new();
    t.kernel("6.8.0", "sgx_lc");
    t.file("/proc/cmdline", "ro nosgx quiet\n");
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    let a = r.verdict().get(AdviceId::SgxKernelDisabled).unwrap();
    assert!(a.problem.contains("nosgx"), "{}", a.problem);
}

#[test]
fn tdx_guest_with_configfs_tsm() {
    let t = Tree::new();
    t.kernel("6.8.0-tdx", "tdx_guest hypervisor");
    t.chardev("/dev/tdx_guest", 0o600);
    t.file("/sys/kernel/config/tsm/report/r0/provider", "tdx_guest\n");
    let r = run(&ProbeEnv::fake(t.root(), cpu_tdx_guest()));
    let v = r.verdict();
    assert!(r.cpu.tdx_guest && r.cpu.hypervisor);
    assert_eq!(v.evidence, Some(Evidence::Tdx));
    assert_eq!(v.exit_code, EXIT_HW);
    assert!(blocking(&r).is_empty(), "{:?}", v.advice);
    assert!(v
        .pass_on
        .docker
        .contains(&"--volume=/sys/kernel/config:/sys/kernel/config".to_string()));
    // The Intel CPU without SGX in a VM is noted, not blocking.
    assert_eq!(
        v.get(AdviceId::SgxNotExposedByHypervisor)
            .map(|a| a.severity),
        Some(Severity::Info)
    );
}

#[test]
fn tdx_guest_without_tsm() {
    let t = Tree::new();
    t.kernel("6.8.0-tdx", "tdx_guest hypervisor");
    t.dir("/sys/kernel/config");
    let r = run(&ProbeEnv::fake(t.root(), cpu_tdx_guest()));
    let v = r.verdict();
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    let a = v.get(AdviceId::TdxNoTsm).unwrap();
    assert!(a.fix.contains("modprobe tdx_guest"), "{}", a.fix);
    // An old guest kernel gets the upgrade advice instead.
    t.kernel("5.15.0", "tdx_guest hypervisor");
    let r = run(&ProbeEnv::fake(t.root(), cpu_tdx_guest()));
    assert_fix(r.verdict(), AdviceId::TdxNoTsm, "6.7");
}

#[test]
fn tdx_tsm_needs_root() {
    let t = Tree::new();
    t.kernel("6.8.0", "tdx_guest hypervisor");
    t.file("/sys/kernel/config/tsm/report/r0/provider", "tdx_guest\n");
    let dir = t.p("/sys/kernel/config/tsm/report");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let owner = fs::metadata(&dir).unwrap().uid();
    let env = ProbeEnv::fake(t.root(), cpu_tdx_guest()).with_creds(owner + 1000, 4242, &[]);
    let r = run(&env);
    assert_eq!(blocking(&r), vec![AdviceId::TsmNeedsRoot]);
    assert_eq!(r.verdict().exit_code, EXIT_INCOMPLETE);
}

#[test]
fn snp_guest_with_configfs_tsm() {
    let t = Tree::new();
    t.kernel("6.11.0", "sev sev_es sev_snp hypervisor");
    t.chardev("/dev/sev-guest", 0o600);
    t.file("/sys/kernel/config/tsm/report/x/provider", "sev_guest\n");
    let r = run(&ProbeEnv::fake(t.root(), cpu_amd(true, SNP_BITS)));
    let v = r.verdict();
    assert!(r.cpu.sev.sev_snp);
    assert_eq!(v.evidence, Some(Evidence::SevSnp));
    assert_eq!(v.exit_code, EXIT_HW);
    assert!(!v.has(AdviceId::SevSnpHostOnly));
}

#[test]
fn snp_guest_container_without_tsm() {
    let t = Tree::new();
    t.kernel("6.11.0", "sev sev_es sev_snp hypervisor");
    t.file("/.dockerenv", "");
    let r = run(&ProbeEnv::fake(t.root(), cpu_amd(true, SNP_BITS)));
    let v = r.verdict();
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    let a = v.get(AdviceId::SnpTsmNotPassedIn).unwrap();
    assert!(
        a.fix
            .contains("--volume=/sys/kernel/config:/sys/kernel/config"),
        "{}",
        a.fix
    );
}

#[test]
fn snp_host_is_not_a_guest() {
    let t = Tree::new();
    t.kernel("6.11.0", "sev sev_es sev_snp");
    let r = run(&ProbeEnv::fake(t.root(), cpu_amd(false, SNP_BITS)));
    let v = r.verdict();
    assert_eq!(blocking(&r), vec![AdviceId::SevSnpHostOnly]);
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    assert_eq!(v.evidence, None);
}

#[test]
fn amd_vm_without_tee_recommends_simulation() {
    let t = Tree::new();
    t.kernel("6.1.0", "hypervisor");
    let r = run(&ProbeEnv::fake(t.root(), cpu_amd(true, 0)));
    let v = r.verdict();
    assert_eq!(v.status, Status::NoTee);
    assert_eq!(v.exit_code, EXIT_SIM_ONLY);
    assert_eq!(v.mode, Mode::Sim);
    assert!(v.summary.contains("AuthenticAMD"), "{}", v.summary);
    assert_fix(v, AdviceId::UseSimulation, "SIGIL_MODE=sim");
    assert!(blocking(&r).is_empty());
    let text = r.render_text();
    assert!(text.contains("Verdict          sim, exit code 3"), "{text}");
}

#[test]
fn pod_without_the_device() {
    let t = Tree::new();
    t.kernel("6.8.0", "sgx sgx_lc");
    t.file(
        "/proc/1/cgroup",
        "0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope\n",
    );
    let env =
        ProbeEnv::fake(t.root(), cpu_sgx2_flc()).with_var("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    let r = run(&env);
    let v = r.verdict();
    assert!(r.container.in_container && r.container.kubernetes);
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    let a = v.get(AdviceId::SgxDeviceNotPassedIn).unwrap();
    assert!(a.fix.contains("sgx.intel.com/enclave: 1"), "{}", a.fix);
    assert!(a.fix.contains("sgx.intel.com/provision: 1"), "{}", a.fix);
    assert!(v.pass_on.kubernetes.contains(&"resources:".to_string()));
    assert!(r
        .container
        .unknowable
        .iter()
        .any(|u| u.contains("SIGIL_SGX_RESOURCES")));
    // In a container the host's kernel flags are not blamed on this pod.
    assert!(!v.has(AdviceId::SgxKernelDisabled));

    // With the chart's variable, an incomplete request is pointed out.
    let env = ProbeEnv::fake(t.root(), cpu_sgx2_flc())
        .with_var("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .with_var("SIGIL_SGX_RESOURCES", "sgx.intel.com/epc=64Mi");
    let r = run(&env);
    let a = r
        .verdict()
        .get(AdviceId::SgxPodResourcesIncomplete)
        .unwrap();
    assert!(
        a.problem.contains("sgx.intel.com/enclave")
            && a.problem.contains("sgx.intel.com/provision")
    );
}

#[test]
fn docker_container_without_the_device() {
    let t = Tree::new();
    t.kernel("6.8.0", "sgx sgx_lc");
    t.file("/.dockerenv", "");
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    let a = r.verdict().get(AdviceId::SgxDeviceNotPassedIn).unwrap();
    assert!(
        a.fix
            .contains("--device=/dev/sgx_enclave --device=/dev/sgx_provision"),
        "{}",
        a.fix
    );
}

#[test]
fn device_without_permission() {
    let mut t = Tree::new();
    let real = sgx_host(&mut t);
    fs::set_permissions(t.p("/dev/sgx_enclave"), fs::Permissions::from_mode(0o660)).unwrap();
    if real {
        // mknod succeeded, so we are root and may hand the node to an sgx group.
        std::os::unix::fs::chown(t.p("/dev/sgx_enclave"), Some(0), Some(107)).unwrap();
    }
    let meta = fs::metadata(t.p("/dev/sgx_enclave")).unwrap();
    let (owner, gid) = (meta.uid(), meta.gid());
    t.file("/etc/group", &format!("daemon:x:1:\nsgx:x:{gid}:\n"));
    let (uid, ugid) = (owner + 1000, gid + 1000);

    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()).with_creds(uid, ugid, &[]));
    let v = r.verdict();
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    let id = if real {
        AdviceId::DeviceNoPermission
    } else {
        AdviceId::DeviceNotCharDevice
    };
    let a = v.get(id).unwrap();
    assert_eq!(a.subject.as_deref(), Some("/dev/sgx_enclave"));
    if real {
        assert!(a.fix.contains("usermod -aG sgx"), "{}", a.fix);
        assert!(a.problem.contains("rw-rw----"), "{}", a.problem);
        assert_eq!(r.sgx_devices[0].group.as_deref(), Some("sgx"));
        // The same user in the group may: the rule, not the scenario, decides.
        let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()).with_creds(uid, ugid, &[gid]));
        assert_eq!(r.verdict().exit_code, EXIT_HW, "{:?}", r.verdict().advice);
        // In a pod the fix is a supplemental group.
        let env = ProbeEnv::fake(t.root(), cpu_sgx2_flc())
            .with_creds(uid, ugid, &[])
            .with_var("KUBERNETES_SERVICE_HOST", "10.96.0.1");
        let r = run(&env);
        let a = r.verdict().get(AdviceId::DeviceNoPermission).unwrap();
        assert!(
            a.fix.contains(&format!("supplementalGroups: [{gid}]")),
            "{}",
            a.fix
        );
        // In a plain container it is --group-add.
        t.file("/.dockerenv", "");
        let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()).with_creds(uid, ugid, &[]));
        let a = r.verdict().get(AdviceId::DeviceNoPermission).unwrap();
        assert!(a.fix.contains(&format!("--group-add {gid}")), "{}", a.fix);
    }
}

#[test]
fn container_device_cgroup_denies_the_node() {
    let mut t = Tree::new();
    if !sgx_host(&mut t) {
        // Without mknod there is no device number to match; the
        // not-a-character-device path is covered elsewhere.
        let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
        assert!(r.verdict().has(AdviceId::DeviceNotCharDevice));
        return;
    }
    t.file("/.dockerenv", "");
    t.file(
        "/sys/fs/cgroup/devices/devices.list",
        "c 1:5 rwm\nc 136:* rwm\n",
    );
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    assert_eq!(r.sgx_devices[0].cgroup_allows, Some(false));
    let a = r.verdict().get(AdviceId::DeviceCgroupDenied).unwrap();
    assert!(a.fix.contains("--device=/dev/sgx_enclave"), "{}", a.fix);
    assert_eq!(r.verdict().exit_code, EXIT_INCOMPLETE);
    t.file("/sys/fs/cgroup/devices/devices.list", "c 1:3 rwm\n");
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    assert_eq!(r.sgx_devices[0].cgroup_allows, Some(true));
    assert_eq!(r.verdict().exit_code, EXIT_HW, "{:?}", r.verdict().advice);
}

#[test]
fn inside_gramine_enclave() {
    let t = Tree::new();
    t.kernel("6.8.0", "sgx sgx_lc");
    t.file("/dev/attestation/attestation_type", "dcap");
    t.file("/dev/attestation/quote", "");
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    assert_eq!(r.verdict().evidence, Some(Evidence::SgxDcap));
    assert_eq!(r.verdict().exit_code, EXIT_HW);
    t.file("/dev/attestation/attestation_type", "none\n");
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    assert_eq!(blocking(&r), vec![AdviceId::SgxGramineNotDcap]);
}

#[test]
fn hostile_tree_does_not_panic() {
    let t = Tree::new();
    let junk: String = (0..(2 << 20))
        .map(|i| char::from(b"\0\xff:\n x"[i % 6] & 0x7f))
        .collect();
    t.file("/proc/cpuinfo", &junk);
    t.file("/proc/sys/kernel/osrelease", &junk);
    t.file("/proc/1/cgroup", &junk);
    t.file("/proc/cmdline", &junk);
    t.file("/etc/sgx_default_qcnl.conf", &junk);
    t.file("/etc/group", &junk);
    t.file("/sys/fs/cgroup/devices/devices.list", &junk);
    t.file("/sys/kernel/config/tsm/report/a/provider", &junk);
    t.file("/dev/attestation/attestation_type", &junk);
    // A FIFO where the enclave device should be must not block the probe.
    fs::create_dir_all(t.p("/dev")).unwrap();
    let c = std::ffi::CString::new(t.p("/dev/sgx_enclave").to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    t.symlink("/dev/sgx_provision", "/dev/sgx_provision");
    t.dir("/dev/isgx");
    let env = ProbeEnv::fake(t.root(), cpu_sgx2_flc())
        .with_live(true)
        .with_var("SIGIL_SGX_RESOURCES", &junk[..5000]);
    let r = run(&env);
    assert_eq!(r.sgx_devices[0].kind, FileKind::Other);
    assert_eq!(r.sgx_devices[0].open, None);
    assert_eq!(
        r.sgx_devices[1].kind,
        FileKind::Missing,
        "self-link loops to nothing"
    );
    assert!(r.container.sgx_resources_malformed);
    assert!(r.guest.tsm.providers.is_empty());
    assert!(r.kernel.release.as_ref().is_none_or(|s| s.len() <= 128));
    assert_eq!(r.verdict().exit_code, EXIT_INCOMPLETE);
    // Junk in Gramine's attestation_type is not "dcap".
    assert!(r.verdict().has(AdviceId::SgxGramineNotDcap));
    fs::remove_file(t.p("/dev/attestation/attestation_type")).unwrap();
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    assert!(r.verdict().has(AdviceId::DeviceNotCharDevice));
}

#[test]
fn missing_root_is_an_error() {
    let t = Tree::new();
    let env = ProbeEnv::fake(t.root().join("nope"), cpu_sgx2_flc());
    assert!(probe(&env).is_err());
}

#[test]
fn dcap_driver_links_only_in_a_container() {
    let mut t = Tree::new();
    t.kernel("6.8.0", "sgx sgx_lc");
    t.file("/.dockerenv", "");
    let real = t.chardev("/dev/sgx/enclave", 0o666) & t.chardev("/dev/sgx/provision", 0o666);
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    let v = r.verdict();
    // Without the AESM socket Gramine cannot quote: the container fix is the volume.
    let a = v.get(AdviceId::SgxAesmMissing).unwrap();
    assert!(
        a.fix.contains("--volume=/var/run/aesmd:/var/run/aesmd"),
        "{}",
        a.fix
    );
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    // The flags name the nodes that exist.
    assert_eq!(
        &v.pass_on.docker[..2],
        ["--device=/dev/sgx/enclave", "--device=/dev/sgx/provision"]
    );
    t.socket("/var/run/aesmd/aesm.socket");
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()).with_live(true));
    let v = r.verdict();
    if real {
        assert_eq!(v.exit_code, EXIT_HW, "{:?}", v.advice);
        assert_eq!(v.evidence, Some(Evidence::SgxDcap));
    } else {
        assert!(v.has(AdviceId::DeviceNotCharDevice));
    }
    // Host-side quoting configuration is not this container's business.
    assert!(!v.has(AdviceId::SgxQuoteProviderMissing));
    assert!(!v.has(AdviceId::SgxPccsNotConfigured));
}

#[test]
fn old_scone_device_name() {
    let t = Tree::new();
    t.kernel("6.8.0", "sgx sgx_lc");
    let real = t.chardev("/dev/sgx", 0o666);
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    let v = r.verdict();
    let a = v.get(AdviceId::SgxOldDeviceName).unwrap();
    assert!(a.fix.contains("/dev/sgx_enclave"), "{}", a.fix);
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    let sgx = r.sgx_devices.iter().find(|d| d.path == "/dev/sgx").unwrap();
    assert_eq!(sgx.kind == FileKind::CharDevice, real);
}

#[test]
fn live_open_of_a_driverless_node_fails_with_advice() {
    let mut t = Tree::new();
    sgx_host(&mut t);
    fs::remove_file(t.p("/dev/sgx_enclave")).unwrap();
    // 240:0 is in the "local/experimental" range: no driver answers it here.
    if !t.chardev_num("/dev/sgx_enclave", 0o666, 240, 0) {
        let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()).with_live(true));
        assert!(r.verdict().has(AdviceId::DeviceNotCharDevice));
        return;
    }
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()).with_live(true));
    let d = &r.sgx_devices[0];
    assert_eq!(d.rdev, Some((240, 0)));
    let open = d.open.as_ref().unwrap();
    assert!(!open.ok);
    let v = r.verdict();
    let a = v.get(AdviceId::DeviceOpenFailed).unwrap();
    assert_eq!(a.subject.as_deref(), Some("/dev/sgx_enclave"));
    // Linux answers an unregistered character major with ENXIO.
    assert!(
        matches!(open.errno, Some(libc::ENXIO) | Some(libc::ENODEV)),
        "{open:?}"
    );
    assert!(a.fix.contains("load the driver"), "{}", a.fix);
    assert_eq!(v.exit_code, EXIT_INCOMPLETE);
    // Without the live open the same tree looks fine: the open is the test.
    let r = run(&ProbeEnv::fake(t.root(), cpu_sgx2_flc()));
    assert!(!r.verdict().has(AdviceId::DeviceOpenFailed));
}

#[test]
fn without_cpuid_the_devices_decide() {
    // Non-x86_64 builds cannot run CPUID: the CPU is "unknown", not "no".
    let mut t = Tree::new();
    let real = sgx_host(&mut t);
    let r = run(&ProbeEnv::fake(t.root(), sigil_detect::NoCpuid));
    assert!(!r.cpu.cpuid_available);
    assert!(!r.verdict().has(AdviceId::SgxCpuidMismatch));
    assert!(!r.verdict().has(AdviceId::SgxNoFlc));
    let expected = if real { EXIT_HW } else { EXIT_INCOMPLETE };
    assert_eq!(r.verdict().exit_code, expected, "{:?}", r.verdict().advice);
    assert!(r.render_text().contains("CPU              unknown"));
    // And with nothing at all there is nothing to say but simulation.
    let empty = Tree::new();
    let r = run(&ProbeEnv::fake(empty.root(), sigil_detect::NoCpuid));
    assert_eq!(r.verdict().exit_code, EXIT_SIM_ONLY);
}
