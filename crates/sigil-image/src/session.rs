//! The session generated for a converted image, built through
//! `sigil_session`'s types (never hand-assembled YAML).
//!
//! Defaults come from the input image: ENTRYPOINT+CMD become `command`, `Env`
//! becomes `environment`, `WorkingDir` becomes `pwd`. `security` is built from
//! explicit flags only; with none of them the session accepts only
//! up-to-date, non-debug hardware TEEs.

use std::collections::BTreeMap;

use sigil_session::{
    AccessPolicy, AttestationMode, AttestationRule, Image, ImageVolume, Security, Service, Session,
    SessionName, Tolerance, Volume, VolumeKeyHex,
};

use crate::convert::{env_map, Converted, VOLUMES_DIR};
use crate::{Error, Result};

/// Intel SGX security advisories whose mitigations are "software hardening
/// needed" or "configuration needed" on platforms that are otherwise up to
/// date; `--allow-tcb-vulnerabilities` ignores exactly these (listed in the
/// output so the choice is visible).
pub const TCB_ADVISORIES: &[&str] = &[
    "INTEL-SA-00219",
    "INTEL-SA-00289",
    "INTEL-SA-00334",
    "INTEL-SA-00381",
    "INTEL-SA-00389",
    "INTEL-SA-00477",
    "INTEL-SA-00586",
    "INTEL-SA-00614",
    "INTEL-SA-00615",
    "INTEL-SA-00617",
    "INTEL-SA-00657",
    "INTEL-SA-00767",
    "INTEL-SA-00828",
    "INTEL-SA-00837",
];

/// Tolerances `--allow-tcb-vulnerabilities` implies.
pub const TCB_TOLERANCES: &[Tolerance] = &[
    Tolerance::OutdatedTcb,
    Tolerance::SoftwareHardeningNeeded,
    Tolerance::ConfigurationNeeded,
];

/// Flags that shape the session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Session name (may include a namespace: `ns/name`).
    pub name: String,
    /// Service name.
    pub service: String,
    /// Image name inside the session.
    pub image: String,
    /// `--command` (replaces ENTRYPOINT+CMD).
    pub command: Option<Vec<String>>,
    /// `--env K=V` (added to / overriding the image's `Env`).
    pub env: Vec<(String, String)>,
    /// `--allow-debug-mode`.
    pub allow_debug_mode: bool,
    /// `--allow-tcb-vulnerabilities`.
    pub allow_tcb_vulnerabilities: bool,
    /// `--allow-simulation`.
    pub allow_simulation: bool,
    /// SGX MRENCLAVE of the image when an enclave runtime signed it.
    pub mrenclave: Option<[u8; 32]>,
}

/// Builds and validates the session. The second value lists, one per line,
/// the security relaxations taken (empty when none).
pub fn build_session(conv: &Converted, o: &SessionOptions) -> Result<(Session, Vec<String>)> {
    let name: SessionName = o
        .name
        .parse()
        .map_err(|e| Error::Usage(format!("--name {}: {e}", o.name)))?;
    let command = match &o.command {
        Some(c) => c.clone(),
        None => conv
            .run
            .entrypoint
            .iter()
            .chain(conv.run.cmd.iter())
            .cloned()
            .collect(),
    };
    let mut environment: BTreeMap<String, String> = env_map(&conv.run.env);
    for (k, v) in &o.env {
        environment.insert(k.clone(), v.clone());
    }
    let pwd = if conv.run.working_dir.is_empty() {
        None
    } else {
        Some(conv.run.working_dir.clone())
    };
    let mut attestation = vec![AttestationRule {
        simulation_measurement: Some(conv.measurement),
        ..AttestationRule::default()
    }];
    if let Some(m) = o.mrenclave {
        attestation.push(AttestationRule {
            mrenclave: Some(m),
            ..AttestationRule::default()
        });
    }
    let mut notes = Vec::new();
    let mut security = Security {
        attestation_mode: AttestationMode::Hardware,
        ..Security::default()
    };
    if o.allow_simulation {
        security.attestation_mode = AttestationMode::Simulation;
        notes.push("attestation mode: simulation (no TEE protects this service)".to_string());
    }
    if o.allow_debug_mode {
        security.tolerate.insert(Tolerance::DebugMode);
        notes.push("tolerate: debug-mode (the host can read enclave memory)".to_string());
    }
    if o.allow_tcb_vulnerabilities {
        for t in TCB_TOLERANCES {
            security.tolerate.insert(*t);
            notes.push(format!("tolerate: {}", t.as_str()));
        }
        for a in TCB_ADVISORIES {
            security.ignore_advisories.insert(a.to_string());
        }
        notes.push(format!("ignore advisories: {}", TCB_ADVISORIES.join(", ")));
    }
    let (volumes, image_volumes) = match &conv.volume {
        Some(v) => (
            vec![Volume {
                name: v.name.clone(),
                key: Some(VolumeKeyHex::new(*v.key.as_bytes())),
                tag: Some(v.tag.0),
            }],
            vec![ImageVolume {
                name: v.name.clone(),
                path: format!("{VOLUMES_DIR}/{}", v.name),
            }],
        ),
        None => (Vec::new(), Vec::new()),
    };
    let session = Session {
        name,
        version: None,
        predecessor: None,
        services: vec![Service {
            name: o.service.clone(),
            command,
            environment,
            pwd,
            image_name: Some(o.image.clone()),
            attestation,
        }],
        secrets: Vec::new(),
        volumes,
        images: vec![Image {
            name: o.image.clone(),
            volumes: image_volumes,
            injection_files: Vec::new(),
        }],
        access_policy: AccessPolicy::default(),
        security,
    };
    session.validate().map_err(|e| {
        Error::Usage(format!(
            "generated session is invalid: {}",
            e.to_string().replace('\n', "; ")
        ))
    })?;
    Ok((session, notes))
}
