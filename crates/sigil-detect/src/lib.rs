//! Probes of the host's TEE capabilities (SGX, TDX, SEV-SNP) and the advice that follows.
//!
//! Everything is read through a [`ProbeEnv`]: CPUID through the [`Cpuid`]
//! trait, the file system below a root directory, environment variables and
//! credentials from plain values. Production uses [`ProbeEnv::host`]; tests
//! build fake `/dev`, `/sys` and `/proc` trees and feed raw CPUID register
//! values, so the probe and decision logic under test is the real one.
//!
//! ```no_run
//! let report = sigil_detect::probe(&sigil_detect::ProbeEnv::host()).unwrap();
//! println!("{}", report.render_text());
//! std::process::exit(report.verdict().exit_code);
//! ```

#![deny(missing_docs)]

pub mod container;
pub mod cpuid;
pub mod devices;
pub mod guest;
pub mod kernel;
pub mod read;
mod render;
pub mod stack;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use container::ContainerReport;
pub use cpuid::{CpuReport, Cpuid, CpuidRegs, FakeCpuid, NativeCpuid, NoCpuid};
pub use devices::{Credentials, DeviceReport, FileKind};
pub use guest::GuestReport;
pub use kernel::KernelReport;
pub use stack::StackReport;
pub use verdict::{
    Advice, AdviceId, Evidence, Mode, PassOn, Severity, Status, Tee, Verdict, EXIT_HW,
    EXIT_INCOMPLETE, EXIT_PROBE_ERROR, EXIT_SIM_ONLY,
};

/// Version of the JSON report layout.
pub const REPORT_SCHEMA: u32 = 1;

/// The SGX device paths probed, in the order reported.
pub const SGX_DEVICE_PATHS: &[&str] = &[
    "/dev/sgx_enclave",
    "/dev/sgx_provision",
    "/dev/sgx/enclave",
    "/dev/sgx/provision",
    "/dev/isgx",
    "/dev/sgx",
];

/// Errors of the probe itself (not findings about the machine).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The probe root is not a directory.
    #[error("probe root {0} is not a directory")]
    RootNotDirectory(PathBuf),
    /// The report could not be serialised or parsed.
    #[error("report JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Everything the probe reads from: the outside world, made replaceable.
pub struct ProbeEnv {
    /// Root of the file system to probe: `/` in production, a fake tree in tests.
    pub root: PathBuf,
    /// CPUID source.
    pub cpuid: Box<dyn Cpuid>,
    /// Environment variables (`KUBERNETES_SERVICE_HOST`, `SIGIL_SGX_RESOURCES`).
    pub vars: BTreeMap<String, String>,
    /// Identity used for permission checks.
    pub creds: Credentials,
    /// Also perform real, side-effect-free operations: open device nodes,
    /// connect to the AESM socket, create and remove a configfs-tsm entry.
    pub live: bool,
}

impl ProbeEnv {
    /// This machine: root `/`, the real CPUID, this process's environment and
    /// credentials, live checks on.
    pub fn host() -> Self {
        ProbeEnv {
            root: PathBuf::from("/"),
            cpuid: Box::new(NativeCpuid),
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            creds: Credentials::current(),
            live: true,
        }
    }

    /// A fake machine for tests: the given tree and CPUID, no environment,
    /// root credentials, no live checks.
    pub fn fake(root: impl Into<PathBuf>, cpuid: impl Cpuid + 'static) -> Self {
        ProbeEnv {
            root: root.into(),
            cpuid: Box::new(cpuid),
            vars: BTreeMap::new(),
            creds: Credentials::default(),
            live: false,
        }
    }

    /// Sets one environment variable.
    pub fn with_var(mut self, k: &str, v: &str) -> Self {
        self.vars.insert(k.to_string(), v.to_string());
        self
    }

    /// Sets the credentials.
    pub fn with_creds(mut self, uid: u32, gid: u32, groups: &[u32]) -> Self {
        self.creds = Credentials {
            uid,
            gid,
            groups: groups.to_vec(),
        };
        self
    }

    /// Turns live checks on or off.
    pub fn with_live(mut self, live: bool) -> Self {
        self.live = live;
        self
    }
}

/// The full probe result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: u32,
    /// The probed root.
    pub root: String,
    /// Credentials the permission checks used.
    pub user: Credentials,
    /// CPUID.
    pub cpu: CpuReport,
    /// Kernel view.
    pub kernel: KernelReport,
    /// SGX device nodes, in [`SGX_DEVICE_PATHS`] order.
    pub sgx_devices: Vec<DeviceReport>,
    /// AESM, quote provider, PCCS, Gramine.
    pub stack: StackReport,
    /// Confidential-VM guest interfaces.
    pub guest: GuestReport,
    /// Container and pod context.
    pub container: ContainerReport,
    /// The verdict.
    pub verdict: Verdict,
}

impl Report {
    /// The verdict: mode, evidence, exit code, advice, flags to pass on.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Pretty JSON for scripts.
    pub fn to_json(&self) -> Result<String, Error> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parses a report written by [`Report::to_json`] (e.g. `sigil detect --json`).
    pub fn from_json(s: &str) -> Result<Self, Error> {
        Ok(serde_json::from_str(s)?)
    }

    /// The human table.
    pub fn render_text(&self) -> String {
        render::render_text(self)
    }
}

/// Probes the machine described by `env` and decides the verdict.
///
/// Every finding about the machine (missing files, garbage content,
/// failed opens) is part of the report; only an unusable root is an error.
pub fn probe(env: &ProbeEnv) -> Result<Report, Error> {
    if !env.root.is_dir() {
        return Err(Error::RootNotDirectory(env.root.clone()));
    }
    let root = env.root.as_path();
    let container = container::probe(root, &env.vars);
    let mut sgx_devices: Vec<DeviceReport> = SGX_DEVICE_PATHS
        .iter()
        .map(|p| devices::probe_device(root, p, &env.creds, env.live))
        .collect();
    let mut guest = guest::probe(root, &env.creds, env.live);
    if let Some(cg) = &container.cgroup_devices {
        let devs = sgx_devices
            .iter_mut()
            .chain([&mut guest.tdx_guest, &mut guest.sev_guest]);
        for d in devs {
            if let (FileKind::CharDevice, Some((ma, mi))) = (d.kind, d.rdev) {
                d.cgroup_allows = Some(cg.allows_char_rw(ma, mi));
            }
        }
    }
    let mut report = Report {
        schema: REPORT_SCHEMA,
        root: env.root.display().to_string(),
        user: env.creds.clone(),
        cpu: cpuid::decode(env.cpuid.as_ref()),
        kernel: kernel::probe(root),
        sgx_devices,
        stack: stack::probe(root, env.live),
        guest,
        container,
        verdict: Verdict {
            mode: Mode::Sim,
            evidence: None,
            status: Status::NoTee,
            exit_code: EXIT_SIM_ONLY,
            summary: String::new(),
            advice: Vec::new(),
            pass_on: PassOn::default(),
        },
    };
    report.verdict = verdict::decide(&report);
    Ok(report)
}
