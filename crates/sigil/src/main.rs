//! The `sigil` command-line tool. Each subcommand lives in its own module
//! under `cmd/` so that the parts of Sigil can grow independently.

use clap::{Parser, Subcommand};

mod cmd;

/// Sigil: confidential containers with remote attestation.
#[derive(Parser)]
#[command(name = "sigil", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report what this host can do (SGX, TDX, SEV-SNP) and the flags to pass on.
    Detect(cmd::detect::Args),
    /// Turn a container image into a confidential one, with its session and Helm chart.
    Convert(Box<cmd::convert::Args>),
    /// Run and maintain the Configuration and Attestation Service.
    Cas(cmd::cas::Args),
    /// Manage this user's client identity (TLS key and certificate).
    Identity(cmd::identity::Args),
    /// Create, update, read, list, delete, hash and check sessions.
    Session(cmd::session::Args),
    /// Show and verify the CAS audit log.
    Audit(cmd::audit::Args),
    /// Verify attestation evidence by hand.
    Attest(cmd::attest::Args),
    /// Seal, open and verify encrypted volumes.
    Fs(cmd::fs::Args),
    /// Run the full local demo: CAS, convert, attest, run, refuse.
    Demo(cmd::demo::Args),
    /// Pull images from registries into OCI layouts, push layouts and archives.
    Image(cmd::image::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Detect(a) => cmd::detect::run(a),
        Command::Convert(a) => cmd::convert::run(*a),
        Command::Cas(a) => cmd::cas::run(a),
        Command::Identity(a) => cmd::identity::run(a),
        Command::Session(a) => cmd::session::run(a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Attest(a) => cmd::attest::run(a),
        Command::Fs(a) => cmd::fs::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Image(a) => cmd::image::run(a),
    }
}
