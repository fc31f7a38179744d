//! Evidence providers: turn the 64-byte report data (the TLS exporter of the
//! connection to the CAS) into evidence the CAS can verify.
//!
//! * simulation: the measurement computed as `sigil convert` computed it
//!   (no hardware guarantee; the CAS accepts it only for sessions with
//!   `attestation.mode: simulation`);
//! * SGX through Gramine's `/dev/attestation` pseudo-files;
//! * TDX and SEV-SNP through Linux configfs-tsm
//!   (`/sys/kernel/config/tsm/report`).
//!
//! Each hardware provider takes the root directory of its interface so that
//! tests can drive it with a fake tree that behaves like the kernel's.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sigil_attest::{Evidence, TeeKind};

use crate::config::Mode;

/// Default Gramine attestation directory.
pub const GRAMINE_DIR: &str = "/dev/attestation";
/// Default configfs-tsm report directory.
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";
/// Largest quote/report/auxblob read from a device file (real ones are
/// 1-16 KiB; certificate tables a few KiB).
pub const MAX_DEVICE_BLOB: usize = 64 * 1024;
/// Largest small attribute file (`provider`, `generation`, ...).
const MAX_ATTR: usize = 256;

/// Why no evidence could be produced.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// No TEE interface and simulation not allowed.
    #[error("no TEE found (looked for {gramine} and {tsm}); set SIGIL_MODE=sim to use simulation evidence, which the CAS accepts only for sessions with attestation.mode: simulation")]
    NoTee {
        /// Gramine directory looked at.
        gramine: String,
        /// configfs-tsm directory looked at.
        tsm: String,
    },
    /// A device file could not be used.
    #[error("{path}: {reason}")]
    Device {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// configfs-tsm reported another writer between our write and read.
    #[error("configfs-tsm report {path} was changed by another writer (generation {before} -> {after}); retry")]
    Race {
        /// The report entry.
        path: String,
        /// Generation after our write.
        before: u64,
        /// Generation after our read.
        after: u64,
    },
}

fn dev_err(path: &Path, reason: impl std::fmt::Display) -> EvidenceError {
    EvidenceError::Device {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads at most `limit` bytes; a longer file is an error (a device file
/// bigger than any real quote is not one).
fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>, EvidenceError> {
    let f = fs::File::open(path).map_err(|e| dev_err(path, e))?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| dev_err(path, e))?;
    if buf.len() > limit {
        return Err(dev_err(path, format!("larger than {limit} bytes")));
    }
    Ok(buf)
}

fn read_attr(path: &Path) -> Result<String, EvidenceError> {
    let b = read_limited(path, MAX_ATTR)?;
    let s = String::from_utf8(b).map_err(|_| dev_err(path, "not UTF-8"))?;
    Ok(s.trim().to_string())
}

fn write_all(path: &Path, data: &[u8]) -> Result<(), EvidenceError> {
    // One write(2) call: configfs binary attributes and Gramine's pseudo
    // files take the whole value in a single write.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| dev_err(path, e))?;
    f.write_all(data).map_err(|e| dev_err(path, e))?;
    Ok(())
}

/// A source of evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Simulation evidence carrying this measurement.
    Simulation {
        /// The simulation measurement.
        measurement: [u8; 32],
    },
    /// SGX under Gramine; `dir` is normally [`GRAMINE_DIR`].
    GramineSgx {
        /// The `/dev/attestation` directory.
        dir: PathBuf,
    },
    /// TDX or SEV-SNP through configfs-tsm; `dir` is normally
    /// [`TSM_REPORT_DIR`].
    Tsm {
        /// The `report` directory.
        dir: PathBuf,
    },
}

impl Provider {
    /// Short name for log lines.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Simulation { .. } => "simulation",
            Provider::GramineSgx { .. } => "sgx (gramine)",
            Provider::Tsm { .. } => "configfs-tsm",
        }
    }

    /// Produces evidence whose report data is `report_data`.
    pub fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, EvidenceError> {
        match self {
            Provider::Simulation { measurement } => Ok(sigil_attest::simulation::make_evidence(
                *measurement,
                *report_data,
            )),
            Provider::GramineSgx { dir } => gramine_quote(dir, report_data),
            Provider::Tsm { dir } => tsm_report(dir, report_data, |_| {}),
        }
    }
}

/// Picks the provider for `mode`. `gramine_dir` and `tsm_dir` are the
/// interface roots (normally [`GRAMINE_DIR`] and [`TSM_REPORT_DIR`]).
/// `auto` prefers hardware and falls back to simulation; `hw` refuses when
/// there is no TEE interface.
pub fn select(
    mode: Mode,
    gramine_dir: &Path,
    tsm_dir: &Path,
    sim_measurement: [u8; 32],
) -> Result<Provider, EvidenceError> {
    if mode == Mode::Sim {
        return Ok(Provider::Simulation {
            measurement: sim_measurement,
        });
    }
    if gramine_dir.join("quote").exists() && gramine_dir.join("user_report_data").exists() {
        return Ok(Provider::GramineSgx {
            dir: gramine_dir.to_path_buf(),
        });
    }
    if tsm_dir.is_dir() {
        return Ok(Provider::Tsm {
            dir: tsm_dir.to_path_buf(),
        });
    }
    match mode {
        Mode::Auto => Ok(Provider::Simulation {
            measurement: sim_measurement,
        }),
        _ => Err(EvidenceError::NoTee {
            gramine: gramine_dir.display().to_string(),
            tsm: tsm_dir.display().to_string(),
        }),
    }
}

/// Why neither hardware interface is usable, for the loud warning the
/// launcher prints when `auto` mode falls back to simulation.
pub fn no_hardware_reason(gramine_dir: &Path, tsm_dir: &Path) -> String {
    let gramine = if !gramine_dir.exists() {
        format!(
            "{} does not exist (not running under Gramine-SGX)",
            gramine_dir.display()
        )
    } else {
        format!(
            "{} lacks quote/user_report_data (Gramine remote attestation not enabled)",
            gramine_dir.display()
        )
    };
    let tsm = if tsm_dir.exists() {
        format!("{} is not a directory", tsm_dir.display())
    } else {
        format!(
            "{} does not exist (no TDX/SEV-SNP guest with configfs-tsm)",
            tsm_dir.display()
        )
    };
    format!("{gramine}; {tsm}")
}

/// Gramine: write the report data to `user_report_data`, read `quote`.
/// `attestation_type` must say `dcap` (EPID is end-of-life and `none` has
/// no quote).
fn gramine_quote(dir: &Path, report_data: &[u8; 64]) -> Result<Evidence, EvidenceError> {
    let ty_path = dir.join("attestation_type");
    let ty = read_attr(&ty_path)?;
    if ty != "dcap" {
        return Err(dev_err(
            &ty_path,
            format!("attestation type is {ty:?}; Sigil needs \"dcap\" (set sgx.remote_attestation = \"dcap\" in the Gramine manifest)"),
        ));
    }
    write_all(&dir.join("user_report_data"), report_data)?;
    let quote_path = dir.join("quote");
    let quote = read_limited(&quote_path, MAX_DEVICE_BLOB)?;
    if quote.len() < 48 {
        return Err(dev_err(
            &quote_path,
            format!("{} bytes is too short for an SGX quote", quote.len()),
        ));
    }
    Ok(Evidence::new(TeeKind::Sgx, quote))
}

/// configfs-tsm, following the kernel's ABI
/// (`Documentation/ABI/testing/configfs-tsm`): create a report entry, read
/// `generation`, write `inblob`, read `outblob` (and `auxblob` for SNP
/// certificates), check that `generation` advanced by exactly one (no other
/// writer interfered), remove the entry.
///
/// `on_created` runs right after the entry is created; it is a no-op in
/// production and lets a test fake populate the attributes the kernel
/// creates with the directory.
pub(crate) fn tsm_report(
    dir: &Path,
    report_data: &[u8; 64],
    on_created: impl FnOnce(&Path),
) -> Result<Evidence, EvidenceError> {
    let entry = dir.join(format!("sigil-{}-{}", std::process::id(), unique_suffix()));
    fs::create_dir(&entry)
        .map_err(|e| dev_err(&entry, format!("cannot create report entry: {e}")))?;
    on_created(&entry);
    let r = tsm_report_in(&entry, report_data);
    // configfs removes the attributes with the directory; on a plain
    // directory (a test fake) this fails, which does not matter.
    let _ = fs::remove_dir(&entry);
    r
}

fn unique_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn parse_generation(path: &Path, s: &str) -> Result<u64, EvidenceError> {
    s.parse()
        .map_err(|_| dev_err(path, format!("generation {s:?} is not a number")))
}

fn tsm_report_in(entry: &Path, report_data: &[u8; 64]) -> Result<Evidence, EvidenceError> {
    let provider_path = entry.join("provider");
    let provider = read_attr(&provider_path)?;
    let kind = match provider.as_str() {
        "tdx_guest" => TeeKind::Tdx,
        "sev_guest" => TeeKind::Snp,
        other => {
            return Err(dev_err(
                &provider_path,
                format!("unsupported provider {other:?} (expected tdx_guest or sev_guest)"),
            ))
        }
    };
    let gen_path = entry.join("generation");
    let before = parse_generation(&gen_path, &read_attr(&gen_path)?)?;
    write_all(&entry.join("inblob"), report_data)?;
    let out_path = entry.join("outblob");
    let outblob = read_limited(&out_path, MAX_DEVICE_BLOB)?;
    let certs = if kind == TeeKind::Snp {
        let aux_path = entry.join("auxblob");
        match read_limited(&aux_path, MAX_DEVICE_BLOB) {
            Ok(aux) if !aux.is_empty() => {
                Some(snp_vcek_from_cert_table(&aux).map_err(|reason| dev_err(&aux_path, reason))?)
            }
            // No certificate table: the CAS fetches the VCEK itself.
            _ => None,
        }
    } else {
        None
    };
    let after = parse_generation(&gen_path, &read_attr(&gen_path)?)?;
    if after != before.wrapping_add(1) {
        return Err(EvidenceError::Race {
            path: entry.display().to_string(),
            before,
            after,
        });
    }
    if outblob.is_empty() {
        return Err(dev_err(&out_path, "empty report"));
    }
    let mut ev = Evidence::new(kind, outblob);
    ev.certs = certs;
    Ok(ev)
}

/// GUID of the VCEK in the SEV-SNP certificate table.
pub const SNP_VCEK_GUID: [u8; 16] = guid_bytes(0x63da758d, 0xe664, 0x4564, 0xadc5_f4b93be8accd);
/// GUID of the VLEK in the SEV-SNP certificate table.
pub const SNP_VLEK_GUID: [u8; 16] = guid_bytes(0xa8074bc2, 0xa25a, 0x483e, 0xaae6_39c045a0b8a1);

/// The GUID's in-memory (mixed-endian, as in the GHCB spec's table) bytes.
const fn guid_bytes(a: u32, b: u16, c: u16, d: u64) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    let d = d.to_be_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// Extracts the VCEK (or else VLEK) DER certificate from an SEV-SNP
/// certificate table (GHCB spec, "SNP Extended Guest Request"): entries of
/// `guid[16] | offset u32 LE | length u32 LE`, ended by an all-zero entry,
/// offsets relative to the table start.
pub fn snp_vcek_from_cert_table(table: &[u8]) -> Result<Vec<u8>, String> {
    const ENTRY: usize = 24;
    let mut found: Option<(usize, usize, bool)> = None;
    let mut i = 0usize;
    loop {
        let e = table
            .get(i..i + ENTRY)
            .ok_or_else(|| "certificate table is not terminated by a zero entry".to_string())?;
        if e.iter().all(|&b| b == 0) {
            break;
        }
        let guid: [u8; 16] = e[..16].try_into().map_err(|_| "short entry".to_string())?;
        let off = u32::from_le_bytes([e[16], e[17], e[18], e[19]]) as usize;
        let len = u32::from_le_bytes([e[20], e[21], e[22], e[23]]) as usize;
        let is_vcek = guid == SNP_VCEK_GUID;
        if is_vcek || guid == SNP_VLEK_GUID {
            let end = off
                .checked_add(len)
                .filter(|&end| end <= table.len() && len > 0)
                .ok_or_else(|| {
                    format!("certificate entry {} points outside the table", i / ENTRY)
                })?;
            if off < i + ENTRY {
                return Err(format!(
                    "certificate entry {} overlaps the table header",
                    i / ENTRY
                ));
            }
            if found.is_none_or(|(_, _, v)| !v && is_vcek) {
                found = Some((off, end, is_vcek));
            }
        }
        i += ENTRY;
    }
    let (off, end, _) =
        found.ok_or_else(|| "no VCEK or VLEK in the certificate table".to_string())?;
    Ok(table[off..end].to_vec())
}

#[cfg(test)]
pub(crate) mod fake {
    //! A user-space stand-in for the kernel's configfs-tsm. `populate` does
    //! what the kernel does on mkdir (creates `provider`, `generation`,
    //! `inblob`); `outblob` is a FIFO served by a thread that, like the TSM
    //! driver on a read of `outblob`, takes the `inblob` written before,
    //! builds the report from it and bumps `generation`.

    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// Builds the fake quote from the report data.
    pub fn quote_for(rd: &[u8]) -> Vec<u8> {
        let mut q = b"FAKEQUOTE".to_vec();
        q.extend_from_slice(rd);
        q
    }

    /// Populates `entry` for `provider` (`tdx_guest`/`sev_guest`);
    /// `bump` is how much `generation` advances per outblob read (1 is
    /// what the kernel does with a single writer; 2 simulates a racing
    /// writer). Returns the serving thread.
    pub fn populate(
        entry: &Path,
        provider: &str,
        bump: u64,
        auxblob: Option<Vec<u8>>,
    ) -> std::thread::JoinHandle<()> {
        fs::write(entry.join("provider"), format!("{provider}\n")).unwrap();
        fs::write(entry.join("generation"), "7\n").unwrap();
        fs::write(entry.join("inblob"), b"").unwrap();
        if let Some(a) = auxblob {
            fs::write(entry.join("auxblob"), a).unwrap();
        }
        let out = entry.join("outblob");
        let c = std::ffi::CString::new(out.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let entry: PathBuf = entry.to_path_buf();
        std::thread::spawn(move || {
            // Blocks until the launcher opens outblob for reading.
            let mut w = fs::OpenOptions::new().write(true).open(&out).unwrap();
            let rd = fs::read(entry.join("inblob")).unwrap();
            fs::write(entry.join("generation"), format!("{}\n", 7 + bump)).unwrap();
            let _ = w.write_all(&quote_for(&rd));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_evidence_carries_measurement_and_report_data() {
        let p = select(
            Mode::Sim,
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
            [3; 32],
        )
        .unwrap();
        let ev = p.evidence(&[5; 64]).unwrap();
        assert_eq!(ev.kind, TeeKind::Simulation);
        let (m, rd) = sigil_attest::simulation::parse(&ev.data).unwrap();
        assert_eq!((m, rd), ([3; 32], [5; 64]));
    }

    #[test]
    fn hw_mode_without_tee_refuses_and_auto_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let g = d.path().join("attestation");
        let t = d.path().join("tsm/report");
        let e = select(Mode::Hw, &g, &t, [0; 32]).unwrap_err();
        assert!(e.to_string().contains("no TEE found"), "{e}");
        assert!(matches!(
            select(Mode::Auto, &g, &t, [1; 32]).unwrap(),
            Provider::Simulation { measurement } if measurement == [1; 32]
        ));
        fs::create_dir_all(&t).unwrap();
        assert!(matches!(
            select(Mode::Auto, &g, &t, [1; 32]).unwrap(),
            Provider::Tsm { .. }
        ));
        // sim mode never picks hardware even when it exists
        assert!(matches!(
            select(Mode::Sim, &g, &t, [1; 32]).unwrap(),
            Provider::Simulation { .. }
        ));
    }

    /// A Gramine `/dev/attestation` tree: `quote` is what Gramine would
    /// return; the test checks the report data reached `user_report_data`.
    #[test]
    fn gramine_writes_report_data_and_returns_the_quote() {
        let d = tempfile::tempdir().unwrap();
        let g = d.path().join("attestation");
        fs::create_dir(&g).unwrap();
        fs::write(g.join("attestation_type"), "dcap\n").unwrap();
        fs::write(g.join("user_report_data"), [0u8; 64]).unwrap();
        let quote: Vec<u8> = (0..4600u32).map(|i| i as u8).collect();
        fs::write(g.join("quote"), &quote).unwrap();
        let p = select(Mode::Hw, &g, &d.path().join("none"), [0; 32]).unwrap();
        assert_eq!(p.name(), "sgx (gramine)");
        let ev = p.evidence(&[0xab; 64]).unwrap();
        assert_eq!(ev.kind, TeeKind::Sgx);
        assert_eq!(ev.data, quote);
        assert_eq!(
            fs::read(g.join("user_report_data")).unwrap(),
            vec![0xab; 64]
        );

        fs::write(g.join("attestation_type"), "epid\n").unwrap();
        let e = p.evidence(&[0; 64]).unwrap_err().to_string();
        assert!(e.contains("dcap") && e.contains("attestation_type"), "{e}");
        fs::write(g.join("attestation_type"), "dcap\n").unwrap();
        fs::write(g.join("quote"), vec![0u8; MAX_DEVICE_BLOB + 1]).unwrap();
        let e = p.evidence(&[0; 64]).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        fs::write(g.join("quote"), [1u8; 10]).unwrap();
        assert!(p
            .evidence(&[0; 64])
            .unwrap_err()
            .to_string()
            .contains("too short"));
    }

    #[test]
    fn tsm_tdx_report_from_fake_kernel() {
        let d = tempfile::tempdir().unwrap();
        let report = d.path().join("report");
        fs::create_dir(&report).unwrap();
        let mut h = None;
        let ev = tsm_report(&report, &[0x42; 64], |e| {
            h = Some(fake::populate(e, "tdx_guest", 1, None))
        })
        .unwrap();
        h.unwrap().join().unwrap();
        assert_eq!(ev.kind, TeeKind::Tdx);
        assert_eq!(ev.data, fake::quote_for(&[0x42; 64]));
        assert_eq!(ev.certs, None);
    }

    #[test]
    fn tsm_snp_report_carries_the_vcek() {
        let d = tempfile::tempdir().unwrap();
        let report = d.path().join("report");
        fs::create_dir(&report).unwrap();
        let aux = table(&[([9; 16], b"ARK"), (SNP_VCEK_GUID, b"VCEK-DER")]);
        let mut h = None;
        let ev = tsm_report(&report, &[7; 64], |e| {
            h = Some(fake::populate(e, "sev_guest", 1, Some(aux)))
        })
        .unwrap();
        h.unwrap().join().unwrap();
        assert_eq!(ev.kind, TeeKind::Snp);
        assert_eq!(ev.certs.as_deref(), Some(&b"VCEK-DER"[..]));
    }

    #[test]
    fn tsm_detects_a_racing_writer_and_unknown_providers() {
        let d = tempfile::tempdir().unwrap();
        let report = d.path().join("report");
        fs::create_dir(&report).unwrap();
        let mut h = None;
        let e = tsm_report(&report, &[1; 64], |e| {
            h = Some(fake::populate(e, "tdx_guest", 2, None))
        })
        .unwrap_err();
        h.unwrap().join().unwrap();
        assert!(
            matches!(
                e,
                EvidenceError::Race {
                    before: 7,
                    after: 9,
                    ..
                }
            ),
            "{e}"
        );
        let e = tsm_report(&report, &[1; 64], |e| {
            fs::write(e.join("provider"), "arm_cca_guest\n").unwrap();
        })
        .unwrap_err();
        assert!(e.to_string().contains("unsupported provider"), "{e}");
        // no attributes at all (not a configfs-tsm directory)
        let e = tsm_report(&report, &[1; 64], |_| {}).unwrap_err();
        assert!(e.to_string().contains("provider"), "{e}");
    }

    fn table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        let header = (entries.len() + 1) * 24;
        let mut t = Vec::new();
        let mut body = Vec::new();
        for (g, c) in entries {
            t.extend_from_slice(g);
            t.extend_from_slice(&((header + body.len()) as u32).to_le_bytes());
            t.extend_from_slice(&(c.len() as u32).to_le_bytes());
            body.extend_from_slice(c);
        }
        t.extend_from_slice(&[0u8; 24]);
        t.extend_from_slice(&body);
        t
    }

    #[test]
    fn snp_cert_table_parsing() {
        let ask = [0x11u8; 16];
        let t = table(&[(ask, b"ASKDER"), (SNP_VCEK_GUID, b"VCEKDER")]);
        assert_eq!(snp_vcek_from_cert_table(&t).unwrap(), b"VCEKDER");
        let t = table(&[(SNP_VLEK_GUID, b"VLEK"), (SNP_VCEK_GUID, b"VCEK")]);
        assert_eq!(snp_vcek_from_cert_table(&t).unwrap(), b"VCEK");
        let t = table(&[(SNP_VLEK_GUID, b"VLEK")]);
        assert_eq!(snp_vcek_from_cert_table(&t).unwrap(), b"VLEK");
        assert!(snp_vcek_from_cert_table(&table(&[(ask, b"x")]))
            .unwrap_err()
            .contains("no VCEK"));
        // unterminated, truncated and out-of-range tables
        let t = table(&[(SNP_VCEK_GUID, b"VCEKDER")]);
        for cut in 0..48 {
            assert!(snp_vcek_from_cert_table(&t[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = t.clone();
        bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(snp_vcek_from_cert_table(&bad)
            .unwrap_err()
            .contains("outside"));
        let mut bad = t.clone();
        bad[16..20].copy_from_slice(&0u32.to_le_bytes());
        assert!(snp_vcek_from_cert_table(&bad)
            .unwrap_err()
            .contains("overlaps"));
    }
}
