//! Normalised claims: what every verifier returns, whatever the TEE.

use crate::evidence::TeeKind;
use serde::Serialize;

/// TCB status of the platform, as Intel defines it for SGX/TDX (after
/// converging platform, QE and TDX-module levels). SEV-SNP and simulation
/// evidence have no such verdict: [`TcbStatus::NotEvaluated`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TcbStatus {
    /// The platform is patched.
    UpToDate,
    /// Patched, but the enclave software needs hardening (e.g. LVI).
    SWHardeningNeeded,
    /// Patched, but the platform configuration needs changes.
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded,
    /// The platform is missing security updates.
    OutOfDate,
    /// Out of date and needing configuration.
    OutOfDateConfigurationNeeded,
    /// TDX: the TD was launched on an out-of-date TCB that has since been
    /// updated; relaunching the TD fixes it.
    TDRelaunchAdvised,
    /// As above, configuration also needed.
    TDRelaunchAdvisedConfigurationNeeded,
    /// The TEE gives no TCB verdict (SEV-SNP, simulation).
    NotEvaluated,
}

impl std::fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// An SEV-SNP TCB version split into its security patch levels (SPLs).
/// Where each SPL sits in the 64-bit TCB_VERSION depends on the processor
/// generation (Turin moved them and added the FMC SPL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SnpTcb {
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin and later); `None` on Milan and Genoa.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

impl SnpTcb {
    /// The components as (name, SPL), in the order AMD lists them; FMC
    /// only when present.
    pub fn components(&self) -> impl Iterator<Item = (&'static str, u8)> {
        [
            ("bootloader", Some(self.bootloader)),
            ("TEE", Some(self.tee)),
            ("SNP", Some(self.snp)),
            ("microcode", Some(self.microcode)),
            ("FMC", self.fmc),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
    }
}

impl std::fmt::Display for SnpTcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.components().map(|(n, v)| format!("{n}={v}")).collect();
        f.write_str(&parts.join(" "))
    }
}

/// The TCB versions an SEV-SNP report carries. Only `reported` is bound to
/// the signing key (the VCEK is derived for exactly that TCB, and firmware
/// can derive VCEKs only for TCBs at or below its own); the others are
/// stated by the firmware that signed the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SnpTcbs {
    /// REPORTED_TCB: the TCB the VCEK was issued for.
    pub reported: SnpTcb,
    /// COMMITTED_TCB: the platform cannot be rolled back below it.
    pub committed: SnpTcb,
    /// LAUNCH_TCB: the TCB when the guest was launched (or imported).
    pub launch: SnpTcb,
    /// CURRENT_TCB: the TCB running now.
    pub current: SnpTcb,
}

/// Claims about a workload, normalised across TEEs. Fields that do not apply
/// to a TEE are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Which TEE produced the evidence.
    pub tee: TeeKind,
    /// SGX MRENCLAVE.
    pub mrenclave: Option<[u8; 32]>,
    /// SGX MRSIGNER.
    pub mrsigner: Option<[u8; 32]>,
    /// SGX ISVPRODID.
    pub isv_prod_id: Option<u16>,
    /// Security version: SGX ISVSVN, SNP guest SVN.
    pub svn: Option<u32>,
    /// TDX MRTD.
    pub mrtd: Option<[u8; 48]>,
    /// TDX RTMR0..3.
    pub rtmr: Option<[[u8; 48]; 4]>,
    /// TDX 1.5 MRSERVICETD (`Some` only for TDX 1.5 bodies).
    pub mr_service_td: Option<[u8; 48]>,
    /// TDX 1.5: the TD is bound to a service TD (non-zero MRSERVICETD or the
    /// SERVTD_EXT attribute).
    pub service_td: bool,
    /// TDX: whether the TD has SEPT_VE_DISABLE set (it should).
    pub sept_ve_disabled: Option<bool>,
    /// SEV-SNP launch measurement.
    pub snp_measurement: Option<[u8; 48]>,
    /// SEV-SNP: the VMPL that requested the report (0 is the most
    /// privileged level, the one the launch measurement describes).
    pub snp_vmpl: Option<u32>,
    /// SEV-SNP guest policy bit 18 (MIGRATE_MA): a migration agent may be
    /// bound to the guest and can export its memory.
    pub snp_migration_agent: Option<bool>,
    /// SEV-SNP: the report's TCB versions (reported, committed, launch,
    /// current), split by the generation of the VCEK's chain.
    pub snp_tcb: Option<SnpTcbs>,
    /// Simulation measurement (no hardware guarantee).
    pub simulation_measurement: Option<[u8; 32]>,
    /// Debug enclave / debug TD / SNP guest policy allows debugging.
    pub debug: bool,
    /// Whether SMT (hyperthreading) is enabled, when the evidence says.
    pub smt_enabled: Option<bool>,
    /// The 64 bytes of report data the workload bound into the evidence.
    pub report_data: [u8; 64],
    /// TCB status (SGX/TDX).
    pub tcb_status: TcbStatus,
    /// Advisory IDs that apply to the platform's TCB (e.g. INTEL-SA-00615).
    pub advisory_ids: Vec<String>,
    /// Earliest expiry (Unix seconds) of the collateral used: CRLs, TCB info,
    /// QE identity, certificates. `None` for simulation.
    pub collateral_expiry: Option<u64>,
    /// Platform id: FMSPC (6 bytes) for SGX/TDX, chip id (64 bytes) for SNP
    /// with a VCEK, empty when not known.
    pub platform_id: Vec<u8>,
}

impl Claims {
    /// Claims with every optional field empty.
    pub fn empty(tee: TeeKind) -> Self {
        Claims {
            tee,
            mrenclave: None,
            mrsigner: None,
            isv_prod_id: None,
            svn: None,
            mrtd: None,
            rtmr: None,
            mr_service_td: None,
            service_td: false,
            sept_ve_disabled: None,
            snp_measurement: None,
            snp_vmpl: None,
            snp_migration_agent: None,
            snp_tcb: None,
            simulation_measurement: None,
            debug: false,
            smt_enabled: None,
            report_data: [0; 64],
            tcb_status: TcbStatus::NotEvaluated,
            advisory_ids: Vec::new(),
            collateral_expiry: None,
            platform_id: Vec::new(),
        }
    }

    /// Whether a TDX 1.5 TD is bound to a service TD.
    pub fn has_service_td(&self) -> bool {
        self.service_td
    }
}

#[derive(Serialize)]
struct ClaimsView<'a> {
    tee: TeeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    mrenclave: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mrsigner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    isv_prod_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    svn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mrtd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtmr: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mr_service_td: Option<String>,
    service_td: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sept_ve_disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snp_measurement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snp_vmpl: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snp_migration_agent: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snp_tcb: Option<SnpTcbs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    simulation_measurement: Option<String>,
    debug: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    smt_enabled: Option<bool>,
    report_data: String,
    tcb_status: TcbStatus,
    advisory_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    collateral_expiry: Option<String>,
    platform_id: String,
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ClaimsView {
            tee: self.tee,
            mrenclave: self.mrenclave.map(hex::encode),
            mrsigner: self.mrsigner.map(hex::encode),
            isv_prod_id: self.isv_prod_id,
            svn: self.svn,
            mrtd: self.mrtd.map(hex::encode),
            rtmr: self.rtmr.map(|r| r.iter().map(hex::encode).collect()),
            mr_service_td: self.mr_service_td.map(hex::encode),
            service_td: self.service_td,
            sept_ve_disabled: self.sept_ve_disabled,
            snp_measurement: self.snp_measurement.map(hex::encode),
            snp_vmpl: self.snp_vmpl,
            snp_migration_agent: self.snp_migration_agent,
            snp_tcb: self.snp_tcb,
            simulation_measurement: self.simulation_measurement.map(hex::encode),
            debug: self.debug,
            smt_enabled: self.smt_enabled,
            report_data: hex::encode(self.report_data),
            tcb_status: self.tcb_status,
            advisory_ids: &self.advisory_ids,
            collateral_expiry: self.collateral_expiry.map(crate::time_util::format_unix),
            platform_id: hex::encode(&self.platform_id),
        }
        .serialize(s)
    }
}

impl std::fmt::Display for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "tee:               {}", self.tee)?;
        let h = |b: &[u8]| hex::encode(b);
        if let Some(m) = &self.mrenclave {
            writeln!(f, "mrenclave:         {}", h(m))?;
        }
        if let Some(m) = &self.mrsigner {
            writeln!(f, "mrsigner:          {}", h(m))?;
        }
        if let Some(p) = self.isv_prod_id {
            writeln!(f, "isvprodid:         {p}")?;
        }
        if let Some(s) = self.svn {
            writeln!(f, "svn:               {s}")?;
        }
        if let Some(m) = &self.mrtd {
            writeln!(f, "mrtd:              {}", h(m))?;
        }
        if let Some(r) = &self.rtmr {
            for (i, m) in r.iter().enumerate() {
                writeln!(f, "rtmr{i}:             {}", h(m))?;
            }
        }
        if let Some(m) = &self.mr_service_td {
            writeln!(f, "mrservicetd:       {}", h(m))?;
        }
        if self.tee == TeeKind::Tdx {
            writeln!(f, "service td bound:  {}", self.service_td)?;
        }
        if let Some(s) = self.sept_ve_disabled {
            writeln!(f, "sept_ve_disabled:  {s}")?;
        }
        if let Some(m) = &self.snp_measurement {
            writeln!(f, "snp measurement:   {}", h(m))?;
        }
        if let Some(v) = self.snp_vmpl {
            writeln!(f, "snp vmpl:          {v}")?;
        }
        if let Some(m) = self.snp_migration_agent {
            writeln!(f, "snp migration agent allowed: {m}")?;
        }
        if let Some(t) = &self.snp_tcb {
            writeln!(f, "snp reported tcb:  {}", t.reported)?;
            writeln!(f, "snp committed tcb: {}", t.committed)?;
            writeln!(f, "snp launch tcb:    {}", t.launch)?;
            writeln!(f, "snp current tcb:   {}", t.current)?;
        }
        if let Some(m) = &self.simulation_measurement {
            writeln!(f, "simulation meas.:  {} (NO HARDWARE GUARANTEE)", h(m))?;
        }
        writeln!(f, "debug:             {}", self.debug)?;
        if let Some(s) = self.smt_enabled {
            writeln!(f, "smt enabled:       {s}")?;
        }
        writeln!(f, "report data:       {}", h(&self.report_data))?;
        writeln!(f, "tcb status:        {}", self.tcb_status)?;
        writeln!(f, "advisories:        {}", self.advisory_ids.join(", "))?;
        if let Some(e) = self.collateral_expiry {
            writeln!(f, "collateral expiry: {}", crate::time_util::format_unix(e))?;
        }
        write!(f, "platform id:       {}", h(&self.platform_id))
    }
}
