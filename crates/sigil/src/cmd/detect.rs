//! `sigil detect`: Report what this host can do (SGX, TDX, SEV-SNP) and the flags to pass on.
//!
//! Exit codes (docs/detect.md): 0 hardware attestation possible, 2 a TEE is
//! present but something is missing, 3 no TEE (simulation only), 1 the
//! probe itself failed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use sigil_detect::{probe, ProbeEnv};

/// Arguments of `sigil detect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the full report as JSON (for scripts) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Probe the file system below this directory instead of `/` (a mounted
    /// node image or a test tree). CPUID, environment and user stay this
    /// process's.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// Runs `sigil detect`; exits with the verdict's exit code.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut env = ProbeEnv::host();
    env.root = args.root;
    let report = probe(&env).context("sigil detect: probe failed")?;
    let out = if args.json {
        let mut s = report.to_json()?;
        s.push('\n');
        s
    } else {
        report.render_text()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `sigil detect | head` is not an error worth a panic.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("writing the report")?,
    }
    std::process::exit(report.verdict().exit_code)
}
