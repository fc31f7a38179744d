//! The human-readable table printed by `sigil detect`.

use std::fmt::Write as _;

use crate::devices::{DeviceReport, FileKind};
use crate::verdict::{mode_string, Mode, Severity};
use crate::Report;

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn device_line(d: &DeviceReport) -> String {
    let mut s = match d.kind {
        FileKind::Missing => return "missing".into(),
        FileKind::CharDevice => match d.rdev {
            Some((ma, mi)) => format!("char {ma}:{mi}"),
            None => "char".into(),
        },
        FileKind::Regular => "regular file, NOT a character device".into(),
        FileKind::Directory => "directory".into(),
        FileKind::BlockDevice => "block device, NOT a character device".into(),
        FileKind::Socket => "socket, NOT a character device".into(),
        FileKind::Other => "not a character device".into(),
    };
    if let Some(m) = d.mode {
        let group = match (&d.group, d.gid) {
            (Some(n), _) => n.clone(),
            (None, Some(g)) => g.to_string(),
            _ => "?".into(),
        };
        let _ = write!(
            s,
            " {} {}:{}",
            mode_string(m),
            d.uid.map(|u| u.to_string()).unwrap_or_default(),
            group
        );
    }
    if !d.symlinks.is_empty() {
        let _ = write!(s, " -> {}", d.symlinks.join(" -> "));
    }
    if d.kind == FileKind::CharDevice {
        let access = match (&d.open, d.permitted, d.cgroup_allows) {
            (_, false, _) => "no rw permission".to_string(),
            (_, _, Some(false)) => "denied by device cgroup".to_string(),
            (Some(o), _, _) if !o.ok => {
                format!("open failed: {}", o.error.as_deref().unwrap_or("?"))
            }
            (Some(_), _, _) => "opened rw".to_string(),
            (None, _, _) => "rw permitted".to_string(),
        };
        let _ = write!(s, ", {access}");
    }
    s
}

/// Renders the report as a short table followed by the verdict, the next
/// steps and the flags to pass on.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let v = &r.verdict;
    let c = &r.cpu;
    let _ = writeln!(o, "sigil detect: {}", v.summary);
    let _ = writeln!(o);

    if c.cpuid_available {
        let vm = if c.hypervisor {
            format!(
                ", under a hypervisor ({})",
                c.hypervisor_vendor.as_deref().unwrap_or("unknown")
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "CPU              {}{vm}",
            c.vendor.as_deref().unwrap_or("?")
        );
        let _ = writeln!(o, "  SGX            {}", yn(c.sgx.supported));
        if c.sgx.supported {
            let _ = writeln!(
                o,
                "  SGX1/SGX2/FLC  {}/{}/{}",
                yn(c.sgx.sgx1),
                yn(c.sgx.sgx2),
                yn(c.sgx.flc)
            );
            let max = c
                .sgx
                .max_enclave_size_64
                .map(|b| format!("2^{}", b.trailing_zeros()))
                .unwrap_or_else(|| "?".into());
            let _ = writeln!(o, "  max enclave    {max} bytes (64-bit)");
            for s in &c.sgx.epc_sections {
                let _ = writeln!(
                    o,
                    "  EPC section    {:#x} size {} MiB",
                    s.base,
                    s.size >> 20
                );
            }
        }
        if c.is_amd() {
            let _ = writeln!(
                o,
                "  SEV/ES/SNP     {}/{}/{}",
                yn(c.sev.sev),
                yn(c.sev.sev_es),
                yn(c.sev.sev_snp)
            );
        }
        let _ = writeln!(o, "  TDX guest      {}", yn(c.tdx_guest));
    } else {
        let _ = writeln!(
            o,
            "CPU              unknown (CPUID not available on this architecture)"
        );
    }

    let k = &r.kernel;
    let flags = if k.cpuinfo_flags_found {
        if k.flags.is_empty() {
            "none".to_string()
        } else {
            k.flags.join(" ")
        }
    } else {
        "unknown (no flags line in /proc/cpuinfo)".into()
    };
    let _ = writeln!(
        o,
        "Kernel           {}; TEE flags: {flags}{}",
        k.release.as_deref().unwrap_or("?"),
        if k.nosgx { "; nosgx on cmdline" } else { "" }
    );

    let _ = writeln!(o, "SGX devices");
    for d in &r.sgx_devices {
        let _ = writeln!(o, "  {:<20} {}", d.path, device_line(d));
    }

    let s = &r.stack;
    let _ = writeln!(o, "Attestation stack");
    let aesm = match (&s.aesm.socket, s.aesm.connect_ok) {
        (None, _) => "none".to_string(),
        (Some(p), Some(false)) => format!("{p} (connect failed)"),
        (Some(p), _) => p.clone(),
    };
    let _ = writeln!(o, "  AESM socket    {aesm}");
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let _ = writeln!(o, "  quote provider {}", list(&s.quote_provider));
    let _ = writeln!(o, "  quote library  {}", list(&s.quote_library));
    let pccs = if !s.pccs.present {
        format!("{} missing", s.pccs.path)
    } else {
        match &s.pccs.url {
            Some(u) => u.clone(),
            None => format!("{} without a valid pccs_url", s.pccs.path),
        }
    };
    let _ = writeln!(o, "  PCCS           {pccs}");
    let _ = writeln!(o, "  Gramine        {}", list(&s.gramine));

    let g = &r.guest;
    let _ = writeln!(o, "Confidential VM");
    let _ = writeln!(
        o,
        "  {:<20} {}",
        g.tdx_guest.path,
        device_line(&g.tdx_guest)
    );
    let _ = writeln!(
        o,
        "  {:<20} {}",
        g.sev_guest.path,
        device_line(&g.sev_guest)
    );
    let tsm = if g.tsm.report_dir {
        format!(
            "present, providers: {}{}",
            list(&g.tsm.providers),
            if g.tsm.writable { "" } else { " (needs root)" }
        )
    } else if g.tsm.configfs_present {
        "configfs present, no TSM provider".into()
    } else {
        "not present".into()
    };
    let _ = writeln!(o, "  configfs-tsm         {tsm}");

    let ct = &r.container;
    let ctx = if ct.in_container {
        let engine = ct
            .engine
            .map(|e| format!("{e:?}").to_lowercase())
            .unwrap_or_else(|| "unknown engine".into());
        format!(
            "{engine}{} ({})",
            if ct.kubernetes {
                ", Kubernetes pod"
            } else {
                ""
            },
            ct.indicators.join(", ")
        )
    } else {
        "none (host)".into()
    };
    let _ = writeln!(o, "Container        {ctx}");
    if let Some(res) = &ct.sgx_resources {
        let v: Vec<String> = res.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(o, "  SGX resources  {}", list(&v));
    }
    for u in &ct.unknowable {
        let _ = writeln!(o, "  unknown        {u}");
    }

    let _ = writeln!(o);
    let mode = match v.mode {
        Mode::Hw => format!(
            "hw ({})",
            v.evidence
                .map(|e| serde_json::to_value(e)
                    .ok()
                    .and_then(|x| x.as_str().map(str::to_string))
                    .unwrap_or_default())
                .unwrap_or_default()
        ),
        Mode::Sim => "sim".into(),
    };
    let _ = writeln!(o, "Verdict          {mode}, exit code {}", v.exit_code);
    if !v.advice.is_empty() {
        let _ = writeln!(o, "Next steps");
        for (i, a) in v.advice.iter().enumerate() {
            let sev = match a.severity {
                Severity::Blocking => "blocking",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let _ = writeln!(o, "  {}. [{sev}] {}", i + 1, a.problem);
            let _ = writeln!(o, "     -> {}", a.fix);
        }
    }
    if !v.pass_on.docker.is_empty() || !v.pass_on.kubernetes.is_empty() {
        let _ = writeln!(o, "Pass on");
        if !v.pass_on.docker.is_empty() {
            let _ = writeln!(o, "  podman/docker run {}", v.pass_on.docker.join(" "));
        }
        if !v.pass_on.kubernetes.is_empty() {
            let _ = writeln!(o, "  Kubernetes container spec:");
            for l in &v.pass_on.kubernetes {
                let _ = writeln!(o, "    {l}");
            }
        }
    }
    o
}
