//! Helpers of the CAS CLI tests: a real `sigil cas serve` child process and
//! the real `sigil` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

// Not every test binary that includes this module uses both.
use sigil_testsupport::cli::cas_serve_banner;
#[allow(unused_imports)]
pub use sigil_testsupport::cli::{fails, ok};

pub const KEY_HEX: &str = "3333333333333333333333333333333333333333333333333333333333333333";

/// A `sigil cas serve` child; SIGKILLed on drop if still running.
pub struct Cas {
    pub child: Child,
    pub addr: String,
    pub fingerprint: String,
    pub data_dir: PathBuf,
}

impl Cas {
    pub fn start(data_dir: &Path) -> Cas {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args([
                "cas",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(data_dir)
            .env("SIGIL_CAS_MASTER_KEY", KEY_HEX)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sigil cas serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (addr, fingerprint) =
            cas_serve_banner(&mut lines).expect("cas serve exited before printing its address");
        // cas.json says the same.
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data_dir.join("cas.json")).unwrap()).unwrap();
        assert_eq!(info["listen"], addr.as_str());
        assert_eq!(info["fingerprint"], fingerprint.as_str());
        Cas {
            child,
            addr,
            fingerprint,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// SIGTERM and wait (graceful).
    pub fn stop(mut self) {
        unsafe_sigterm(self.child.id());
        let _ = self.child.wait();
    }

    /// SIGKILL and wait.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

impl Drop for Cas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sigil` with a private config dir.
pub fn sigil(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env("SIGIL_CONFIG_DIR", config)
        .env_remove("SIGIL_CAS")
        .env_remove("SIGIL_CAS_FINGERPRINT")
        .env_remove("SIGIL_CAS_MASTER_KEY")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run sigil")
}

pub fn session_yaml(name: &str, size: u32, policy: &str) -> String {
    format!(
        "name: {name}\nservices:\n  - name: app\n    command: [run]\n    environment:\n      PW: \"$$SIGIL::pw$$\"\nsecrets:\n  - name: pw\n    kind: ascii\n    size: {size}\naccess_policy:\n{policy}\n"
    )
}

pub const CREATOR_ONLY: &str =
    "  read: [CREATOR]\n  update: [CREATOR]\n  create_sessions: [CREATOR]";

/// `sigil cas backup --data-dir DATA --out OUT` (asks the running CAS over
/// its admin socket, or reads a stopped one's store); returns its stdout.
pub fn cas_backup(config: &Path, data: &Path, out: &Path) -> String {
    ok(&sigil(
        config,
        &[
            "cas",
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ))
}
