//! `sigil detect` end to end: the real binary on this machine, and on fake
//! trees through `--root` (CPUID stays this machine's, so the tree-driven
//! cases are the ones whose verdict does not depend on the CPU).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use sigil_detect::{AdviceId, Evidence, Mode, Report, EXIT_HW, EXIT_PROBE_ERROR, EXIT_SIM_ONLY};

/// A temporary directory removed on drop (no tempfile dependency here).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sigil-detect-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn file(&self, abs: &str, content: &str) {
        let p = self.0.join(abs.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sigil(args: &[&str], root: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sigil"));
    c.arg("detect").args(args);
    if let Some(r) = root {
        c.arg("--root").arg(r);
    }
    // The pod/container context must come from the test, not the CI runner.
    c.env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("SIGIL_SGX_RESOURCES");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn json(root: Option<&Path>, env: &[(&str, &str)]) -> (Report, i32) {
    let o = sigil(&["--json"], root, env);
    let text = String::from_utf8(o.stdout).unwrap();
    let r = Report::from_json(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (r, o.status.code().unwrap())
}

/// The CPU's vendor as the kernel reports it.
fn proc_vendor() -> Option<String> {
    let s = fs::read_to_string("/proc/cpuinfo").ok()?;
    s.lines()
        .find(|l| l.starts_with("vendor_id"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

#[test]
fn real_run_tells_the_truth_about_this_machine() {
    let (r, code) = json(None, &[]);
    let v = r.verdict();
    assert_eq!(code, v.exit_code);
    assert_eq!(v.mode == Mode::Hw, code == EXIT_HW);
    assert_eq!(r.root, "/");
    if cfg!(target_arch = "x86_64") {
        assert!(r.cpu.cpuid_available);
        if let Some(vendor) = proc_vendor() {
            assert_eq!(r.cpu.vendor.as_deref(), Some(vendor.as_str()));
        }
    }
    let no_tee = !r.cpu.sgx.supported
        && !r.cpu.tdx_guest
        && !r.cpu.sev.sev_snp
        && !r.sgx_devices.iter().any(|d| d.exists())
        && !r.guest.tdx_guest.exists()
        && !r.guest.sev_guest.exists()
        && !r.guest.tsm.report_dir;
    if no_tee {
        // A machine without any TEE (like the CI VM) must say so and
        // recommend simulation.
        assert_eq!(code, EXIT_SIM_ONLY);
        assert_eq!(v.mode, Mode::Sim);
        assert!(v.has(AdviceId::UseSimulation));
        assert!(v.summary.contains("simulation only"), "{}", v.summary);
    } else {
        assert_ne!(code, EXIT_SIM_ONLY, "a TEE sign was seen: {:?}", v.advice);
    }

    // The table says the same.
    let o = sigil(&[], None, &[]);
    assert_eq!(o.status.code(), Some(code));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains(&format!("exit code {code}")), "{text}");
    assert!(text.contains(&v.summary), "{text}");
}

#[test]
fn tdx_guest_tree_gives_hardware_mode() {
    let t = TempDir::new();
    t.file(
        "/proc/cpuinfo",
        "processor : 0\nflags : fpu tdx_guest hypervisor\n",
    );
    t.file("/proc/sys/kernel/osrelease", "6.8.0\n");
    t.file("/sys/kernel/config/tsm/report/r0/provider", "tdx_guest\n");
    let (r, code) = json(Some(&t.0), &[]);
    assert_eq!(code, EXIT_HW, "{:?}", r.verdict().advice);
    assert_eq!(r.verdict().evidence, Some(Evidence::Tdx));
    assert_eq!(r.guest.tsm.providers, vec!["tdx_guest".to_string()]);
}

#[test]
fn pod_tree_reports_the_pod_and_its_resources() {
    let t = TempDir::new();
    t.file("/proc/1/cgroup", "0::/kubepods/burstable/pod42/cri\n");
    let (r, _) = json(
        Some(&t.0),
        &[
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            (
                "SIGIL_SGX_RESOURCES",
                "sgx.intel.com/epc=64Mi,sgx.intel.com/enclave=1,sgx.intel.com/provision=1",
            ),
        ],
    );
    assert!(r.container.in_container && r.container.kubernetes);
    let res = r.container.sgx_resources.as_ref().unwrap();
    assert_eq!(
        res.get("sgx.intel.com/epc").map(String::as_str),
        Some("64Mi")
    );
    // The chart's variable answers what the Downward API cannot.
    assert!(r
        .container
        .unknowable
        .iter()
        .all(|u| !u.contains("SIGIL_SGX_RESOURCES")));
    assert!(!r.verdict().has(AdviceId::SgxPodResourcesIncomplete));
}

#[test]
fn bad_root_is_a_probe_error() {
    let t = TempDir::new();
    let o = sigil(&[], Some(&t.0.join("missing")), &[]);
    assert_eq!(o.status.code(), Some(EXIT_PROBE_ERROR));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a directory"), "{err}");
    assert!(o.stdout.is_empty());
}
