//! From probe results to the verdict: the mode Sigil will use, the exit
//! code, the next steps and the flags to pass on.
//!
//! The rules are the advice table of docs/detect.md; keep both in step.

use serde::{Deserialize, Serialize};

use crate::devices::{DeviceReport, FileKind};
use crate::guest::TSM_REPORT_DIR as TSM;
use crate::{stack, Report};

/// Exit code: hardware attestation is possible.
pub const EXIT_HW: i32 = 0;
/// Exit code: the probe itself failed (bad arguments, unreadable root).
pub const EXIT_PROBE_ERROR: i32 = 1;
/// Exit code: a TEE is present but something is missing; advice given.
pub const EXIT_INCOMPLETE: i32 = 2;
/// Exit code: no usable TEE; simulation only.
pub const EXIT_SIM_ONLY: i32 = 3;

/// EPC the Kubernetes advice requests; the device plugin only accounts it,
/// so it must be sized to the enclave (the chart overrides it).
pub const DEFAULT_EPC_REQUEST: &str = "64Mi";

/// The mode the Sigil launcher will use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Hardware TEE with real attestation evidence.
    Hw,
    /// Simulation: no hardware protection, evidence is marked simulated.
    Sim,
}

/// The kind of hardware evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// SGX enclave with a DCAP (ECDSA) quote.
    SgxDcap,
    /// TDX guest with a TD quote.
    Tdx,
    /// SEV-SNP guest with an attestation report.
    SevSnp,
}

/// Overall status, one-to-one with the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Hardware attestation is possible (exit 0).
    Ready,
    /// A TEE is present but something is missing (exit 2).
    Incomplete,
    /// No usable TEE: simulation only (exit 3).
    NoTee,
}

/// Which TEE an advice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tee {
    /// Intel SGX.
    Sgx,
    /// Intel TDX.
    Tdx,
    /// AMD SEV-SNP.
    SevSnp,
    /// None in particular.
    General,
}

/// How much an advice matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Prevents hardware attestation with this TEE.
    Blocking,
    /// Hardware mode works, but something will likely bite later.
    Warning,
    /// For the record.
    Info,
}

/// Stable identifiers of the advice table (docs/detect.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdviceId {
    /// Intel CPU on bare metal without SGX in CPUID: disabled in BIOS or absent.
    SgxDisabledOrAbsent,
    /// A hypervisor does not expose SGX to this VM.
    SgxNotExposedByHypervisor,
    /// CPUID shows no SGX but SGX device nodes exist.
    SgxCpuidMismatch,
    /// SGX enumerated without SGX1 or without EPC.
    SgxNoEpc,
    /// No Flexible Launch Control: no in-kernel driver, no DCAP.
    SgxNoFlc,
    /// The kernel is older than 5.11 (no in-kernel driver).
    SgxKernelTooOld,
    /// The kernel disabled SGX (no `sgx` flag in /proc/cpuinfo).
    SgxKernelDisabled,
    /// Only the legacy out-of-tree /dev/isgx driver is present.
    SgxLegacyDriver,
    /// Only the old SCONE device name /dev/sgx is present.
    SgxOldDeviceName,
    /// Host without SGX device nodes.
    SgxDeviceMissing,
    /// Container without the SGX device nodes.
    SgxDeviceNotPassedIn,
    /// Host without /dev/sgx_provision (aesmd needs it).
    SgxProvisionMissing,
    /// Container without /dev/sgx_provision; the host's AESM quotes.
    SgxProvisionViaAesm,
    /// No reachable AESM socket (Gramine quotes through aesmd).
    SgxAesmMissing,
    /// Inside a Gramine enclave whose attestation type is not DCAP.
    SgxGramineNotDcap,
    /// The pod's declared SGX resources lack enclave or provision.
    SgxPodResourcesIncomplete,
    /// No DCAP quote provider library on the host.
    SgxQuoteProviderMissing,
    /// No usable PCCS URL configured.
    SgxPccsNotConfigured,
    /// PCCS TLS certificates are not checked.
    SgxPccsInsecure,
    /// A device path exists but is not a character device.
    DeviceNotCharDevice,
    /// This user lacks read-write permission on a device.
    DeviceNoPermission,
    /// The device cgroup denies the device.
    DeviceCgroupDenied,
    /// A real open failed.
    DeviceOpenFailed,
    /// TDX guest without a configfs-tsm `tdx_guest` provider.
    TdxNoTsm,
    /// Container in a TDX guest without configfs-tsm.
    TdxTsmNotPassedIn,
    /// SEV-SNP guest without a configfs-tsm `sev_guest` provider.
    SnpNoTsm,
    /// Container in an SEV-SNP guest without configfs-tsm.
    SnpTsmNotPassedIn,
    /// configfs-tsm present but this user cannot create reports.
    TsmNeedsRoot,
    /// SEV-SNP host: attestation happens inside an SNP guest.
    SevSnpHostOnly,
    /// SEV or SEV-ES without SNP.
    SevWithoutSnp,
    /// No TEE: use simulation.
    UseSimulation,
}

/// One finding with its next step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advice {
    /// Stable identifier.
    pub id: AdviceId,
    /// TEE concerned.
    pub tee: Tee,
    /// How much it matters.
    pub severity: Severity,
    /// The path concerned, if any.
    pub subject: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// The exact next step.
    pub fix: String,
}

/// Flags and manifest lines to pass on to the container runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassOn {
    /// Arguments for `podman run` / `docker run`.
    pub docker: Vec<String>,
    /// Lines for the container spec of a Kubernetes pod (YAML, indented).
    pub kubernetes: Vec<String>,
}

/// The verdict of one probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `hw` or `sim`.
    pub mode: Mode,
    /// The evidence Sigil will produce in `hw` mode.
    pub evidence: Option<Evidence>,
    /// Overall status.
    pub status: Status,
    /// The process exit code of `sigil detect`.
    pub exit_code: i32,
    /// One line for humans.
    pub summary: String,
    /// Findings, blocking first.
    pub advice: Vec<Advice>,
    /// What to pass to the container runtime.
    pub pass_on: PassOn,
}

impl Verdict {
    /// Whether any advice has this id.
    pub fn has(&self, id: AdviceId) -> bool {
        self.advice.iter().any(|a| a.id == id)
    }

    /// The advice with this id, if any.
    pub fn get(&self, id: AdviceId) -> Option<&Advice> {
        self.advice.iter().find(|a| a.id == id)
    }
}

struct Out {
    advice: Vec<Advice>,
}

impl Out {
    fn push(
        &mut self,
        id: AdviceId,
        tee: Tee,
        severity: Severity,
        subject: Option<&str>,
        problem: String,
        fix: String,
    ) {
        self.advice.push(Advice {
            id,
            tee,
            severity,
            subject: subject.map(str::to_string),
            problem,
            fix,
        });
    }

    fn blocking(&self, tee: Tee) -> bool {
        self.advice
            .iter()
            .any(|a| a.tee == tee && a.severity == Severity::Blocking)
    }
}

/// Result of assessing one TEE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Assessment {
    /// Some sign of this TEE exists.
    present: bool,
    /// Hardware attestation with it is possible.
    ready: bool,
}

fn find<'a>(devs: &'a [DeviceReport], path: &str) -> Option<&'a DeviceReport> {
    devs.iter().find(|d| d.path == path)
}

fn first_existing<'a>(devs: &'a [DeviceReport], paths: &[&str]) -> Option<&'a DeviceReport> {
    paths
        .iter()
        .filter_map(|p| find(devs, p))
        .find(|d| d.exists())
}

fn fmt_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Human rendering of ls-style permissions, e.g. `rw-rw----`.
pub fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6u32, 3, 0] {
        let t = (mode >> shift) & 7;
        s.push(if t & 4 != 0 { 'r' } else { '-' });
        s.push(if t & 2 != 0 { 'w' } else { '-' });
        s.push(if t & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn owner_desc(d: &DeviceReport) -> String {
    let group = match (&d.group, d.gid) {
        (Some(n), Some(g)) => format!("{n}({g})"),
        (None, Some(g)) => g.to_string(),
        _ => "?".into(),
    };
    format!(
        "{} uid {} group {}",
        d.mode.map(mode_string).unwrap_or_default(),
        d.uid.map(|u| u.to_string()).unwrap_or_default(),
        group
    )
}

/// Adds the advice for a device that exists but is not usable; returns
/// whether anything was wrong.
fn check_device(r: &Report, d: &DeviceReport, tee: Tee, sev: Severity, out: &mut Out) -> bool {
    let c = &r.container;
    let runtime_flag = format!("--device={}", d.path);
    if d.kind != FileKind::CharDevice {
        let what = match d.kind {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::BlockDevice => "a block device",
            FileKind::Socket => "a socket",
            _ => "something else",
        };
        let fix = if c.in_container {
            format!(
                "pass the real device in with `{runtime_flag}` instead of a file or volume mount"
            )
        } else {
            format!(
                "remove the stale {} and load the driver so that it creates the device node",
                d.path
            )
        };
        out.push(
            AdviceId::DeviceNotCharDevice,
            tee,
            sev,
            Some(&d.path),
            format!(
                "{} exists but is not a character device (it is {what})",
                d.path
            ),
            fix,
        );
        return true;
    }
    if !d.permitted {
        let gid = d.gid.unwrap_or(0);
        let group = d.group.clone().unwrap_or_else(|| gid.to_string());
        let fix = if c.kubernetes {
            format!("add `supplementalGroups: [{gid}]` to the pod's securityContext")
        } else if c.in_container {
            format!("run the container with `--group-add {gid}` (rootless podman: `--group-add keep-groups`), or as a user in group {group}")
        } else {
            format!(
                "add the user to group {group}: `sudo usermod -aG {group} $USER`, then log in again (or install the udev rule that gives the group rw access)"
            )
        };
        out.push(
            AdviceId::DeviceNoPermission,
            tee,
            sev,
            Some(&d.path),
            format!(
                "{} ({}) is not readable and writable by uid {}",
                d.path,
                owner_desc(d),
                r.user.uid
            ),
            fix,
        );
        return true;
    }
    if d.cgroup_allows == Some(false) {
        out.push(
            AdviceId::DeviceCgroupDenied,
            tee,
            sev,
            Some(&d.path),
            format!("the device cgroup does not allow {} (rw)", d.path),
            if c.kubernetes {
                "request the device through its device plugin (see the resource lines below)".into()
            } else {
                format!("start the container with `{runtime_flag}`, which also allows it in the device cgroup")
            },
        );
        return true;
    }
    if let Some(o) = d.open.as_ref().filter(|o| !o.ok) {
        let err = o.error.clone().unwrap_or_default();
        let fix = if o.errno == Some(libc::EPERM) && c.in_container {
            format!(
                "the device cgroup or a security profile denies it: pass it with `{runtime_flag}`"
            )
        } else if o.errno == Some(libc::ENXIO) || o.errno == Some(libc::ENODEV) {
            "the node has no driver behind it: load the driver (or remove the stale node)"
                .to_string()
        } else {
            "check the security profile (SELinux, AppArmor, seccomp) and the driver's kernel log"
                .to_string()
        };
        out.push(
            AdviceId::DeviceOpenFailed,
            tee,
            sev,
            Some(&d.path),
            format!("opening {} read-write failed: {err}", d.path),
            fix,
        );
        return true;
    }
    false
}

const SGX_ENCLAVE: [&str; 2] = ["/dev/sgx_enclave", "/dev/sgx/enclave"];
const SGX_PROVISION: [&str; 2] = ["/dev/sgx_provision", "/dev/sgx/provision"];

fn sgx_docker_flags(r: &Report) -> Vec<String> {
    let enc = first_existing(&r.sgx_devices, &SGX_ENCLAVE)
        .map(|d| d.path.clone())
        .unwrap_or_else(|| SGX_ENCLAVE[0].into());
    let prov = first_existing(&r.sgx_devices, &SGX_PROVISION)
        .map(|d| d.path.clone())
        .unwrap_or_else(|| SGX_PROVISION[0].into());
    // Gramine inside the image asks the host's aesmd for quotes.
    vec![
        format!("--device={enc}"),
        format!("--device={prov}"),
        "--volume=/var/run/aesmd:/var/run/aesmd".into(),
    ]
}

fn sgx_k8s_lines() -> Vec<String> {
    vec![
        "resources:".into(),
        "  limits:".into(),
        format!("    sgx.intel.com/epc: \"{DEFAULT_EPC_REQUEST}\""),
        "    sgx.intel.com/enclave: 1".into(),
        "    sgx.intel.com/provision: 1".into(),
        "volumeMounts:".into(),
        "  - name: aesmd".into(),
        "    mountPath: /var/run/aesmd".into(),
        "# and in the pod: volumes: [{name: aesmd, hostPath: {path: /var/run/aesmd}}]".into(),
    ]
}

fn sgx_runtime_fix(r: &Report) -> String {
    if r.container.kubernetes {
        format!(
            "request the devices from the Intel SGX device plugin in the container spec: {}",
            sgx_k8s_lines()[2..5]
                .iter()
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "start the container with `{}`",
            sgx_docker_flags(r).join(" ")
        )
    }
}

fn assess_sgx(r: &Report, out: &mut Out) -> Assessment {
    let cpu = &r.cpu;
    let devs = &r.sgx_devices;
    let enclave = first_existing(devs, &SGX_ENCLAVE);
    let provision = first_existing(devs, &SGX_PROVISION);
    let isgx = find(devs, "/dev/isgx").filter(|d| d.exists());
    // /dev/sgx as a directory is the DCAP driver's; as a node it is the old name.
    let old = find(devs, "/dev/sgx").filter(|d| d.exists() && d.kind != FileKind::Directory);
    let any_dev = enclave.is_some() || provision.is_some() || isgx.is_some() || old.is_some();
    let cpu_says_no = cpu.cpuid_available && !cpu.sgx.supported;
    let none = Assessment {
        present: false,
        ready: false,
    };

    // Inside a Gramine enclave the host's devices are hidden and
    // /dev/attestation is the whole interface.
    if let Some(g) = &r.stack.gramine_enclave {
        if g.attestation_type == "dcap" && g.quote {
            return Assessment {
                present: true,
                ready: true,
            };
        }
        out.push(
            AdviceId::SgxGramineNotDcap,
            Tee::Sgx,
            Severity::Blocking,
            Some("/dev/attestation/attestation_type"),
            format!(
                "inside a Gramine enclave with attestation type `{}`{}",
                g.attestation_type,
                if g.quote { "" } else { " and no /dev/attestation/quote" }
            ),
            "set `sgx.remote_attestation = \"dcap\"` in the Gramine manifest (Sigil's converter does) and re-sign".into(),
        );
        return Assessment {
            present: true,
            ready: false,
        };
    }

    if cpu_says_no && !any_dev {
        if cpu.is_intel() && cpu.hypervisor {
            out.push(
                AdviceId::SgxNotExposedByHypervisor,
                Tee::Sgx,
                Severity::Info,
                None,
                format!(
                    "this VM's CPUID shows no SGX (hypervisor: {})",
                    cpu.hypervisor_vendor.as_deref().unwrap_or("unknown")
                ),
                "use an SGX-enabled VM size (e.g. Azure DCsv3/DCdsv3) or a hypervisor configured to pass SGX and EPC through".into(),
            );
        } else if cpu.is_intel() {
            out.push(
                AdviceId::SgxDisabledOrAbsent,
                Tee::Sgx,
                Severity::Info,
                None,
                "CPUID.(EAX=7,ECX=0):EBX[2] is 0: SGX is disabled in the BIOS/UEFI or this CPU has none".into(),
                "in the BIOS/UEFI set \"SGX\" (Software Guard Extensions) to Enabled with a PRMRR/EPC size, and \"SGX Launch Control Policy\" to Unlocked; Xeon E3 v5/v6, Xeon Scalable 3rd gen (Ice Lake) and later have SGX".into(),
            );
        }
        return none;
    }
    if !cpu.cpuid_available && !any_dev {
        return none;
    }

    if cpu_says_no {
        out.push(
            AdviceId::SgxCpuidMismatch,
            Tee::Sgx,
            Severity::Blocking,
            None,
            "SGX device nodes exist but CPUID reports no SGX".into(),
            "the nodes are stale or the hypervisor hides SGX: enable SGX in the BIOS/VM configuration and reboot".into(),
        );
    } else if cpu.cpuid_available {
        if !cpu.sgx.sgx1 || cpu.sgx.epc_sections.is_empty() {
            out.push(
                AdviceId::SgxNoEpc,
                Tee::Sgx,
                Severity::Blocking,
                None,
                format!(
                    "SGX is enumerated but {} (CPUID leaf 0x12)",
                    if cpu.sgx.sgx1 { "no EPC section is reported" } else { "SGX1 is not supported" }
                ),
                "set SGX to \"Enabled\" (not \"Software Controlled\") and give it a PRMRR/EPC size in the BIOS/UEFI, then reboot".into(),
            );
        }
        if !cpu.sgx.flc {
            out.push(
                AdviceId::SgxNoFlc,
                Tee::Sgx,
                Severity::Blocking,
                None,
                "the CPU has no Flexible Launch Control (CPUID.(EAX=7,ECX=0):ECX[30] is 0): the in-kernel driver refuses it and DCAP attestation is impossible".into(),
                "use a CPU with FLC (Xeon E-2100/E-2200, Xeon Scalable 3rd gen or later); if the BIOS has \"SGX Launch Control Policy\", set it to Unlocked".into(),
            );
        }
    }

    let kernel_sgx = r.kernel.flag("sgx");
    if enclave.is_none() && cpu.sgx.supported && cpu.sgx.flc {
        if r.kernel.at_least(5, 11) == Some(false) {
            out.push(
                AdviceId::SgxKernelTooOld,
                Tee::Sgx,
                Severity::Blocking,
                None,
                format!(
                    "kernel {} predates the in-kernel SGX driver (Linux 5.11)",
                    r.kernel.release.as_deref().unwrap_or("?")
                ),
                "upgrade to Linux 5.11 or later built with CONFIG_X86_SGX=y (e.g. Ubuntu 22.04, RHEL 9)".into(),
            );
        } else if kernel_sgx == Some(false) && !r.container.in_container {
            let why = if r.kernel.nosgx {
                "`nosgx` is on the kernel command line"
            } else {
                "the kernel was built without CONFIG_X86_SGX or found launch control locked"
            };
            out.push(
                AdviceId::SgxKernelDisabled,
                Tee::Sgx,
                Severity::Blocking,
                None,
                format!("the CPU has SGX but /proc/cpuinfo has no `sgx` flag: {why}"),
                "remove `nosgx` from the kernel command line, use a kernel with CONFIG_X86_SGX=y, and set \"SGX Launch Control Policy\" to Unlocked in the BIOS; `dmesg | grep -i sgx` says which".into(),
            );
        }
    }

    match enclave {
        None => {
            if let Some(d) = isgx {
                out.push(
                    AdviceId::SgxLegacyDriver,
                    Tee::Sgx,
                    Severity::Blocking,
                    Some(&d.path),
                    "only the legacy out-of-tree driver (/dev/isgx) is present; it has no /dev/sgx_provision and serves EPID-era launch enclaves".into(),
                    if cpu.sgx.flc || !cpu.cpuid_available {
                        "unload isgx (`sudo rmmod isgx`) and use Linux 5.11+ whose in-kernel driver creates /dev/sgx_enclave and /dev/sgx_provision".into()
                    } else {
                        "this CPU lacks FLC, so no newer driver can help: DCAP attestation needs an FLC-capable CPU; until then use simulation".into()
                    },
                );
            } else if let Some(d) = old {
                out.push(
                    AdviceId::SgxOldDeviceName,
                    Tee::Sgx,
                    Severity::Blocking,
                    Some(&d.path),
                    "only /dev/sgx (the device name old SCONE releases used) is present".into(),
                    "use the in-kernel driver (Linux 5.11+): it creates /dev/sgx_enclave and /dev/sgx_provision; pass those, not /dev/sgx".into(),
                );
            } else if r.container.in_container {
                out.push(
                    AdviceId::SgxDeviceNotPassedIn,
                    Tee::Sgx,
                    Severity::Blocking,
                    Some(SGX_ENCLAVE[0]),
                    "this container has no SGX device: it was not passed in".into(),
                    sgx_runtime_fix(r),
                );
            } else {
                out.push(
                    AdviceId::SgxDeviceMissing,
                    Tee::Sgx,
                    Severity::Blocking,
                    Some(SGX_ENCLAVE[0]),
                    "no SGX device node (/dev/sgx_enclave) exists".into(),
                    "use Linux 5.11+ with CONFIG_X86_SGX=y (the in-kernel driver creates /dev/sgx_enclave and /dev/sgx_provision); check `dmesg | grep -i sgx`".into(),
                );
            }
        }
        Some(e) => {
            check_device(r, e, Tee::Sgx, Severity::Blocking, out);
        }
    }

    let in_ct = r.container.in_container;
    if enclave.is_some() {
        match provision {
            None if in_ct => out.push(
                AdviceId::SgxProvisionViaAesm,
                Tee::Sgx,
                Severity::Info,
                Some(SGX_PROVISION[0]),
                "no /dev/sgx_provision in this container: fine while the host's AESM does the quoting".into(),
                "nothing to do; pass it anyway (`--device=/dev/sgx_provision`) for in-process DCAP quoting".into(),
            ),
            None => out.push(
                AdviceId::SgxProvisionMissing,
                Tee::Sgx,
                Severity::Blocking,
                Some(SGX_PROVISION[0]),
                "no /dev/sgx_provision: AESM's provisioning and quoting enclaves cannot get the platform's provisioning key".into(),
                "use the in-kernel driver of Linux 5.11+, which creates /dev/sgx_provision, and give the aesmd user access (group sgx_prv)".into(),
            ),
            // In a container a broken provision node only matters for
            // in-process quoting; on the host only aesmd opens it, so this
            // user's permissions are irrelevant, but its type is not.
            Some(p) if in_ct => {
                check_device(r, p, Tee::Sgx, Severity::Warning, out);
            }
            Some(p) if p.kind != FileKind::CharDevice => {
                check_device(r, p, Tee::Sgx, Severity::Blocking, out);
            }
            Some(_) => {}
        }
        aesm_advice(r, out);
        if !in_ct {
            stack_advice(r, out);
        }
    }

    if let Some(res) = &r.container.sgx_resources {
        let missing: Vec<&str> = ["sgx.intel.com/enclave", "sgx.intel.com/provision"]
            .into_iter()
            .filter(|k| !res.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            out.push(
                AdviceId::SgxPodResourcesIncomplete,
                Tee::Sgx,
                Severity::Warning,
                None,
                format!(
                    "the pod's declared SGX resources lack {}",
                    missing.join(" and ")
                ),
                format!(
                    "add to the container's resources.limits: {}",
                    missing
                        .iter()
                        .map(|m| format!("{m}: 1"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }

    Assessment {
        present: true,
        ready: !out.blocking(Tee::Sgx),
    }
}

/// AESM serves Gramine's quotes (Sigil's SGX evidence path), so its socket
/// must be reachable where the workload runs.
fn aesm_advice(r: &Report, out: &mut Out) {
    let a = &r.stack.aesm;
    let c = &r.container;
    let (problem, fix) = match (&a.socket, a.connect_ok) {
        (Some(_), Some(true)) | (Some(_), None) => return,
        (Some(p), Some(false)) => (
            format!("the AESM socket {p} exists but nothing answers on it"),
            if c.in_container {
                "start aesmd on the host (`sudo systemctl restart aesmd`); the socket mounted here is stale".to_string()
            } else {
                "restart aesmd: `sudo systemctl restart aesmd`, then `journalctl -u aesmd`"
                    .to_string()
            },
        ),
        (None, _) => (
            "no AESM socket (/var/run/aesmd/aesm.socket): Gramine gets SGX quotes from aesmd"
                .to_string(),
            if c.kubernetes {
                "mount the host's /var/run/aesmd into the pod (hostPath volume, see below) and run aesmd on every SGX node".to_string()
            } else if c.in_container {
                "start the container with `--volume=/var/run/aesmd:/var/run/aesmd` and run aesmd on the host".to_string()
            } else {
                "install and start AESM with the DCAP plugins: `sudo apt install sgx-aesm-service libsgx-aesm-ecdsa-plugin libsgx-aesm-pce-plugin libsgx-dcap-default-qpl && sudo systemctl enable --now aesmd`".to_string()
            },
        ),
    };
    out.push(
        AdviceId::SgxAesmMissing,
        Tee::Sgx,
        Severity::Blocking,
        Some(stack::AESM_SOCKETS[0]),
        problem,
        fix,
    );
}

/// The host-side quoting configuration, read by aesmd's ECDSA plugin.
fn stack_advice(r: &Report, out: &mut Out) {
    let s = &r.stack;
    if s.quote_provider.is_empty() {
        out.push(
            AdviceId::SgxQuoteProviderMissing,
            Tee::Sgx,
            Severity::Warning,
            None,
            "no DCAP quote provider library (libdcap_quoteprov.so.1): aesmd cannot fetch PCK certificates for ECDSA quotes".into(),
            "install Intel's libsgx-dcap-default-qpl (or Azure's az-dcap-client on Azure) and restart aesmd".into(),
        );
    }
    if !s.pccs.present || s.pccs.url.is_none() {
        out.push(
            AdviceId::SgxPccsNotConfigured,
            Tee::Sgx,
            Severity::Warning,
            Some(&s.pccs.path),
            if s.pccs.url_invalid {
                format!("{} has a pccs_url that is not an http(s) URL", s.pccs.path)
            } else if s.pccs.present {
                format!("{} sets no pccs_url", s.pccs.path)
            } else {
                format!("{} does not exist", s.pccs.path)
            },
            format!(
                "set \"pccs_url\": \"https://<your-pccs>:8081/sgx/certification/v4/\" in {} (or your cloud's PCCS; Azure's az-dcap-client needs no file)",
                s.pccs.path
            ),
        );
    } else if s.pccs.use_secure_cert == Some(false) {
        out.push(
            AdviceId::SgxPccsInsecure,
            Tee::Sgx,
            Severity::Warning,
            Some(&s.pccs.path),
            "use_secure_cert is false: the PCCS's TLS certificate is not checked".into(),
            format!(
                "give the PCCS a trusted certificate and set \"use_secure_cert\": true in {}",
                s.pccs.path
            ),
        );
    }
}

/// TDX and SEV-SNP evidence reaches Sigil's launcher through configfs-tsm
/// (Linux 6.7+), so that is what makes a guest ready; the /dev nodes are
/// reported because they show the driver is loaded.
fn assess_guest(r: &Report, tee: Tee, out: &mut Out) -> Assessment {
    let (dev, provider, flag, module, name, id_none, id_ct) = match tee {
        Tee::Tdx => (
            &r.guest.tdx_guest,
            "tdx_guest",
            "tdx_guest",
            "tdx_guest",
            "TDX",
            AdviceId::TdxNoTsm,
            AdviceId::TdxTsmNotPassedIn,
        ),
        _ => (
            &r.guest.sev_guest,
            "sev_guest",
            "sev_snp",
            "sev-guest",
            "SEV-SNP",
            AdviceId::SnpNoTsm,
            AdviceId::SnpTsmNotPassedIn,
        ),
    };
    let tsm = &r.guest.tsm;
    let kernel_flag = r.kernel.flag(flag) == Some(true);
    let in_vm = r.cpu.hypervisor || r.kernel.flag("hypervisor") == Some(true);
    let guest_signal = match tee {
        Tee::Tdx => r.cpu.tdx_guest || kernel_flag,
        // On an SNP host the flag is set too; only a VM's flag means a guest.
        _ => kernel_flag && in_vm,
    };
    let named = tsm.providers.iter().any(|p| p == provider);
    let present = guest_signal || dev.exists() || named;
    if !present {
        return Assessment {
            present: false,
            ready: false,
        };
    }
    // A report directory whose provider could not be read (no live probe)
    // still serves this guest when nothing else says otherwise.
    let tsm_serves = named || (tsm.providers.is_empty() && (guest_signal || dev.exists()));
    if tsm.report_dir && tsm_serves && tsm.writable {
        return Assessment {
            present: true,
            ready: true,
        };
    }
    let c = &r.container;
    let (id, problem, fix) = if tsm.report_dir && tsm_serves {
        (
            AdviceId::TsmNeedsRoot,
            format!(
                "configfs-tsm ({TSM}) is present but this user (uid {}) cannot create reports",
                r.user.uid
            ),
            "run the launcher as root (creating a TSM report is mkdir in configfs, root-only)"
                .to_string(),
        )
    } else if c.in_container {
        (
            id_ct,
            format!("this container runs in a {name} guest but has no configfs-tsm ({TSM})"),
            if c.kubernetes {
                "mount the node's /sys/kernel/config into the pod (hostPath volume) and run the container as root, or use a confidential runtime class (Kata/CoCo) that provides it".to_string()
            } else {
                "start the container with `--volume=/sys/kernel/config:/sys/kernel/config` as root"
                    .to_string()
            },
        )
    } else if r.kernel.at_least(6, 7) == Some(false) {
        (
            id_none,
            format!(
                "kernel {} predates configfs-tsm (Linux 6.7), through which Sigil reads {name} evidence",
                r.kernel.release.as_deref().unwrap_or("?")
            ),
            "upgrade the guest kernel to 6.7 or later (e.g. Ubuntu 24.04 / RHEL 9.5 confidential-VM images)".to_string(),
        )
    } else if !tsm.configfs_present {
        (
            id_none,
            format!("this is a {name} guest but configfs is not mounted (no /sys/kernel/config)"),
            format!(
                "`sudo mount -t configfs none /sys/kernel/config`{}",
                if dev.exists() {
                    String::new()
                } else {
                    format!(" and `sudo modprobe {module}`")
                }
            ),
        )
    } else {
        (
            id_none,
            format!(
                "this is a {name} guest but no configfs-tsm `{provider}` provider is registered{}",
                if dev.exists() {
                    ""
                } else {
                    " and the guest driver is not loaded"
                }
            ),
            format!(
                "load the guest driver, which registers the provider: `sudo modprobe {module}`"
            ),
        )
    };
    out.push(id, tee, Severity::Blocking, Some(TSM), problem, fix);
    Assessment {
        present: true,
        ready: false,
    }
}

fn assess_sev_host(r: &Report, out: &mut Out) -> bool {
    let cpu = &r.cpu;
    let in_vm = cpu.hypervisor || r.kernel.flag("hypervisor") == Some(true);
    if in_vm {
        return false;
    }
    let snp = cpu.sev.sev_snp || r.kernel.flag("sev_snp") == Some(true);
    if snp {
        out.push(
            AdviceId::SevSnpHostOnly,
            Tee::SevSnp,
            Severity::Blocking,
            None,
            "this is an SEV-SNP host, not a guest: SNP attestation reports come from inside a confidential VM".into(),
            "run the workload in an SEV-SNP guest (e.g. a Kata/CoCo confidential runtime class or a cloud SNP VM) and run `sigil detect` there".into(),
        );
        return true;
    }
    if cpu.sev.sev || cpu.sev.sev_es {
        out.push(
            AdviceId::SevWithoutSnp,
            Tee::SevSnp,
            Severity::Info,
            None,
            "this CPU has SEV/SEV-ES but not SEV-SNP, whose attestation Sigil requires".into(),
            "use an AMD EPYC 7003 (Milan) or later with SEV-SNP enabled in the BIOS".into(),
        );
    }
    false
}

/// Computes the verdict of a report whose probe fields are filled in.
pub fn decide(r: &Report) -> Verdict {
    let mut out = Out { advice: Vec::new() };
    let sgx = assess_sgx(r, &mut out);
    let tdx = assess_guest(r, Tee::Tdx, &mut out);
    let snp = assess_guest(r, Tee::SevSnp, &mut out);
    let snp_host = assess_sev_host(r, &mut out);

    let evidence = if sgx.ready {
        Some(Evidence::SgxDcap)
    } else if tdx.ready {
        Some(Evidence::Tdx)
    } else if snp.ready {
        Some(Evidence::SevSnp)
    } else {
        None
    };
    // Blocking advice about other TEEs is moot once one works.
    if let Some(ev) = evidence {
        let keep = match ev {
            Evidence::SgxDcap => Tee::Sgx,
            Evidence::Tdx => Tee::Tdx,
            Evidence::SevSnp => Tee::SevSnp,
        };
        for a in out.advice.iter_mut() {
            if a.tee != keep && a.severity == Severity::Blocking {
                a.severity = Severity::Info;
            }
        }
    }
    let present = sgx.present || tdx.present || snp.present || snp_host;
    let (status, exit_code) = match (evidence, present) {
        (Some(_), _) => (Status::Ready, EXIT_HW),
        (None, true) => (Status::Incomplete, EXIT_INCOMPLETE),
        (None, false) => (Status::NoTee, EXIT_SIM_ONLY),
    };
    let mode = if evidence.is_some() {
        Mode::Hw
    } else {
        Mode::Sim
    };

    if evidence.is_none() {
        out.push(
            AdviceId::UseSimulation,
            Tee::General,
            if present { Severity::Info } else { Severity::Warning },
            None,
            "until hardware attestation works, Sigil runs in simulation mode: no memory encryption, evidence marked simulated".into(),
            if present {
                "fix the blocking steps above for hardware mode; meanwhile run with `SIGIL_MODE=sim` for development only (the session must say `attestation.mode: simulation`)".into()
            } else {
                "run with `SIGIL_MODE=sim` (simulation) for development and tests on this machine, with sessions that say `attestation.mode: simulation`; run production on an SGX (FLC), TDX or SEV-SNP machine".into()
            },
        );
    }

    let pass_on = pass_on(
        r,
        &out.advice,
        evidence,
        sgx.present,
        tdx.present,
        snp.present,
    );
    let summary = summary(r, evidence, status, &out);
    out.advice.sort_by_key(|a| a.severity);
    Verdict {
        mode,
        evidence,
        status,
        exit_code,
        summary,
        advice: out.advice,
        pass_on,
    }
}

fn pass_on(
    r: &Report,
    advice: &[Advice],
    ev: Option<Evidence>,
    sgx: bool,
    tdx: bool,
    snp: bool,
) -> PassOn {
    let target = ev.or(if sgx {
        Some(Evidence::SgxDcap)
    } else if tdx {
        Some(Evidence::Tdx)
    } else if snp {
        Some(Evidence::SevSnp)
    } else {
        None
    });
    // Flags cannot help a CPU that cannot do DCAP; don't suggest them.
    let sgx_hopeless = [
        AdviceId::SgxNoFlc,
        AdviceId::SgxNoEpc,
        AdviceId::SgxCpuidMismatch,
    ]
    .iter()
    .any(|id| advice.iter().any(|a| a.id == *id));
    match target {
        Some(Evidence::SgxDcap) if ev.is_none() && sgx_hopeless => PassOn::default(),
        Some(Evidence::SgxDcap) => PassOn {
            docker: sgx_docker_flags(r),
            kubernetes: sgx_k8s_lines(),
        },
        Some(Evidence::Tdx) | Some(Evidence::SevSnp) => PassOn {
            docker: vec![
                "--user=0".into(),
                "--volume=/sys/kernel/config:/sys/kernel/config".into(),
            ],
            kubernetes: vec![
                "# a confidential runtime class (Kata/CoCo) provides configfs-tsm; otherwise:".into(),
                "securityContext:".into(),
                "  runAsUser: 0".into(),
                "volumeMounts:".into(),
                "  - name: configfs".into(),
                "    mountPath: /sys/kernel/config".into(),
                "# and in the pod: volumes: [{name: configfs, hostPath: {path: /sys/kernel/config}}]".into(),
            ],
        },
        None => PassOn::default(),
    }
}

fn summary(r: &Report, ev: Option<Evidence>, status: Status, out: &Out) -> String {
    let cpu = &r.cpu;
    match (ev, status) {
        (Some(Evidence::SgxDcap), _) => format!(
            "hardware attestation possible: SGX DCAP ({}, FLC, EPC {})",
            if cpu.sgx.sgx2 { "SGX2" } else { "SGX1" },
            fmt_size(cpu.sgx.epc_total())
        ),
        (Some(Evidence::Tdx), _) => "hardware attestation possible: TDX guest (TD quote)".into(),
        (Some(Evidence::SevSnp), _) => {
            "hardware attestation possible: SEV-SNP guest (attestation report)".into()
        }
        (None, Status::Incomplete) => {
            let n = out
                .advice
                .iter()
                .filter(|a| a.severity == Severity::Blocking)
                .count();
            format!("a TEE is present but not usable yet: {n} blocking step(s) below; simulation until then")
        }
        _ => {
            let vendor = cpu.vendor.as_deref().unwrap_or("unknown CPU");
            let vm = if cpu.hypervisor {
                format!(
                    " in a {} VM",
                    cpu.hypervisor_vendor.as_deref().unwrap_or("hypervisor")
                )
            } else {
                String::new()
            };
            format!(
                "no usable TEE on this {vendor} CPU{vm} (no SGX, TDX or SEV-SNP): simulation only"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(0o660), "rw-rw----");
        assert_eq!(mode_string(0o754), "rwxr-xr--");
    }

    #[test]
    fn sizes() {
        assert_eq!(fmt_size(512), "512 B");
        assert_eq!(fmt_size(8 << 30), "8.0 GiB");
        assert_eq!(fmt_size(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn severities_order_blocking_first() {
        let mut v = [Severity::Info, Severity::Blocking, Severity::Warning];
        v.sort();
        assert_eq!(v, [Severity::Blocking, Severity::Warning, Severity::Info]);
    }
}
