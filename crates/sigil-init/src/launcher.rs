//! The launcher's whole run: read init.toml, measure, attest, apply, exec.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::apply::{self, ApplyError, ExecError};
use crate::attest::{run_attestation, AttestError, AttestParams};
use crate::config::{ConfigError, InitConfig, Mode, INIT_TOML_PATH, MAX_INIT_TOML_BYTES};
use crate::evidence::{self, EvidenceError, Provider};
use crate::measurement::{self, MeasureError, MAX_MEASURED_FILE};

/// Environment variable: retry deadline in seconds (default 60).
pub const ENV_TIMEOUT: &str = "SIGIL_CAS_TIMEOUT";
/// Environment variable: log level (`quiet`, `info`, `debug`).
pub const ENV_LOG: &str = "SIGIL_LOG";
/// Environment variable: file-system root (only honoured in `sim` mode,
/// for tests and benchmarks outside a container).
pub const ENV_ROOT: &str = "SIGIL_ROOT";

/// Any reason the launcher stops before exec.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// init.toml or an override is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A measured file could not be read.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// No evidence.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// Attestation failed or was refused.
    #[error(transparent)]
    Attest(#[from] AttestError),
    /// The configuration could not be applied.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// exec failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Reading a file.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// Which.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only errors.
    Quiet,
    /// Progress lines.
    Info,
    /// Timings and details.
    Debug,
}

impl Level {
    /// From `SIGIL_LOG` (unknown values mean `info`).
    pub fn from_env(v: Option<&str>) -> Level {
        match v {
            Some("quiet") | Some("error") | Some("off") => Level::Quiet,
            Some("debug") | Some("trace") => Level::Debug,
            _ => Level::Info,
        }
    }
}

/// Writes `sigil-init: ...` lines to stderr (or, for tests, to a buffer).
#[derive(Clone, Debug)]
pub struct Log {
    /// Verbosity.
    pub level: Level,
    start: Instant,
    capture: Option<Arc<Mutex<Vec<String>>>>,
}

impl Log {
    /// A logger.
    pub fn new(level: Level) -> Log {
        Log {
            level,
            start: Instant::now(),
            capture: None,
        }
    }
    /// A logger that collects its lines in the returned buffer instead of
    /// writing them to stderr (for tests).
    pub fn capturing(level: Level) -> (Log, Arc<Mutex<Vec<String>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let log = Log {
            capture: Some(buf.clone()),
            ..Log::new(level)
        };
        (log, buf)
    }
    fn emit(&self, line: String) {
        match &self.capture {
            Some(buf) => buf.lock().unwrap_or_else(|p| p.into_inner()).push(line),
            None => eprintln!("{line}"),
        }
    }
    /// A warning: printed at every level, including `quiet`, because it
    /// reports something an operator must not miss.
    pub fn warn(&self, msg: impl std::fmt::Display) {
        self.emit(format!("sigil-init: WARNING: {msg}"));
    }
    /// A progress line.
    pub fn info(&self, msg: impl std::fmt::Display) {
        if self.level >= Level::Info {
            self.emit(format!("sigil-init: {msg}"));
        }
    }
    /// A detail line with the time since start.
    pub fn debug(&self, msg: impl std::fmt::Display) {
        if self.level >= Level::Debug {
            self.emit(format!(
                "sigil-init: [{:.1} ms] {msg}",
                self.start.elapsed().as_secs_f64() * 1e3
            ));
        }
    }
}

/// Picks the evidence provider for `mode`. When `auto` mode finds no TEE
/// interface and falls back to simulation, this warns at every log level
/// and says why: simulation evidence proves nothing, so the fallback must
/// never go unnoticed.
pub fn select_provider(
    mode: Mode,
    paths: &Paths,
    sim_measurement: [u8; 32],
    log: &Log,
) -> Result<Provider, LaunchError> {
    let provider = evidence::select(mode, &paths.gramine_dir, &paths.tsm_dir, sim_measurement)?;
    if mode == Mode::Auto && matches!(provider, Provider::Simulation { .. }) {
        log.warn(format_args!(
            "mode auto found no hardware TEE and falls back to SIMULATION evidence, \
             which proves nothing about this machine: {}; only sessions that allow \
             simulation will accept it (set mode = \"hw\" to refuse instead)",
            evidence::no_hardware_reason(&paths.gramine_dir, &paths.tsm_dir)
        ));
    }
    Ok(provider)
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, LaunchError> {
    let err = |reason: String| LaunchError::Read {
        path: path.display().to_string(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| err(e.to_string()))?;
    if buf.len() as u64 > limit {
        return Err(err(format!("larger than {limit} bytes")));
    }
    Ok(buf)
}

/// What the launcher works on: file-system root and interface paths.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Root of the image (`/` in a container).
    pub root: PathBuf,
    /// The launcher's own executable (normally `/proc/self/exe`).
    pub self_exe: PathBuf,
    /// Gramine's attestation directory.
    pub gramine_dir: PathBuf,
    /// configfs-tsm report directory.
    pub tsm_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            root: PathBuf::from("/"),
            self_exe: PathBuf::from("/proc/self/exe"),
            gramine_dir: PathBuf::from(evidence::GRAMINE_DIR),
            tsm_dir: PathBuf::from(evidence::TSM_REPORT_DIR),
        }
    }
}

/// Everything up to (not including) exec: the accepted configuration
/// applied, plus the verified binary bytes and the exec parameters.
pub struct Ready {
    /// init.toml.
    pub config: InitConfig,
    /// The binary's verified bytes.
    pub binary: Vec<u8>,
    /// argv/env/pwd.
    pub launch: apply::Launch,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready")
            .field("binary", &self.config.binary)
            .field("launch", &self.launch)
            .finish()
    }
}

/// Runs every step before exec. `env` looks up the launcher's environment.
pub fn prepare(
    paths: &Paths,
    env: &dyn Fn(&str) -> Option<String>,
    log: &Log,
) -> Result<Ready, LaunchError> {
    let init_path = apply::rooted(&paths.root, INIT_TOML_PATH);
    let init_bytes = read_bounded(&init_path, MAX_INIT_TOML_BYTES as u64)?;
    let cfg = InitConfig::parse(&init_bytes)?;
    let eff = cfg.effective(|k| env(k))?;
    if paths.root != Path::new("/") && eff.mode != Mode::Sim {
        return Err(LaunchError::Read {
            path: paths.root.display().to_string(),
            reason: "a root other than / is only allowed in sim mode".into(),
        });
    }
    log.debug(format_args!("init.toml read; mode {}", eff.mode));
    // The binary is read once; exactly these bytes are measured and run.
    let binary_path = apply::rooted(&paths.root, &cfg.binary);
    let binary = read_bounded(&binary_path, MAX_MEASURED_FILE)?;
    apply::check_elf(&cfg.binary, &binary)?;
    let launcher_digest = measurement::sha256_file(&paths.self_exe)?;
    let m = measurement::from_digests(
        &launcher_digest,
        &measurement::sha256(&init_bytes),
        &measurement::sha256(&binary),
    );
    log.debug(format_args!(
        "measured {} bytes of {}",
        binary.len(),
        cfg.binary
    ));
    let provider = select_provider(eff.mode, paths, m, log)?;
    log.debug(format_args!("evidence from {}", provider.name()));
    let deadline = env(ENV_TIMEOUT)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86400.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(60));
    let params = AttestParams {
        cas_addr: eff.cas_addr.clone(),
        pin: eff.cas_fingerprint,
        config_id: eff.config_id.clone(),
        provider,
        deadline,
        io_timeout: Duration::from_secs(10).min(deadline.max(Duration::from_millis(500))),
    };
    let mut warned = false;
    let accepted = run_attestation(&params, |last, backoff| {
        if !warned {
            log.info(format_args!(
                "CAS not reachable yet ({last}); retrying for up to {:.0}s",
                deadline.as_secs_f64()
            ));
            warned = true;
        } else {
            log.debug(format_args!("retry in {} ms: {last}", backoff.as_millis()));
        }
    })?;
    log.info(format_args!(
        "attested at CAS {} as {} (measurement {}, {})",
        eff.cas_addr, eff.config_id, accepted.measurement, accepted.tee
    ));
    let svc = &accepted.service;
    let mem = apply::rooted(&paths.root, &cfg.memory_dir);
    let needs_memory = !cfg.volumes.is_empty() || !svc.injection_files.is_empty();
    if needs_memory {
        apply::check_memory_backed(&mem)?;
    }
    let vols = apply::open_volumes(&cfg, svc, &paths.root)?;
    let files = apply::write_injected_files(&cfg, &svc.injection_files, &paths.root)?;
    let launch = apply::build_launch(&cfg, svc, |k| env(k))?;
    log.debug(format_args!(
        "{} volume(s) opened, {} file(s) injected, {} environment variable(s)",
        vols.len(),
        files,
        launch.env.len()
    ));
    Ok(Ready {
        config: cfg,
        binary,
        launch,
    })
}

/// `prepare`, then exec. Returns only on failure.
pub fn run(paths: &Paths, env: &dyn Fn(&str) -> Option<String>, log: &Log) -> LaunchError {
    let ready = match prepare(paths, env, log) {
        Ok(r) => r,
        Err(e) => return e,
    };
    log.debug(format_args!("exec {}", ready.config.binary));
    apply::exec_verified(&ready.config.binary, &ready.binary, &ready.launch).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(d: &Path) -> Paths {
        Paths {
            root: PathBuf::from("/"),
            self_exe: PathBuf::from("/proc/self/exe"),
            gramine_dir: d.join("no-gramine"),
            tsm_dir: d.join("no-tsm"),
        }
    }

    #[test]
    fn auto_fallback_to_simulation_warns_at_every_level_with_the_reason() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        for level in [Level::Quiet, Level::Info, Level::Debug] {
            let (log, lines) = Log::capturing(level);
            let prov = select_provider(Mode::Auto, &p, [7; 32], &log).unwrap();
            assert!(matches!(prov, Provider::Simulation { .. }));
            let lines = lines.lock().unwrap();
            let warn: Vec<_> = lines.iter().filter(|l| l.contains("WARNING")).collect();
            assert_eq!(warn.len(), 1, "{level:?}: {lines:?}");
            assert!(warn[0].contains("SIMULATION"), "{}", warn[0]);
            assert!(warn[0].contains("no-gramine"), "{}", warn[0]);
            assert!(warn[0].contains("no-tsm"), "{}", warn[0]);
        }
    }

    #[test]
    fn no_warning_for_explicit_sim_or_hardware() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        let (log, lines) = Log::capturing(Level::Debug);
        select_provider(Mode::Sim, &p, [7; 32], &log).unwrap();
        std::fs::create_dir(&p.tsm_dir).unwrap();
        let prov = select_provider(Mode::Auto, &p, [7; 32], &log).unwrap();
        assert!(matches!(prov, Provider::Tsm { .. }));
        assert!(lines.lock().unwrap().is_empty());
    }
}
