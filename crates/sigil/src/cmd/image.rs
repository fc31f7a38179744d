//! `sigil image pull|push`: move images between registries and local OCI
//! image layouts / OCI archives (see `docs/registry.md`). Credentials come
//! from the usual files only (never from the command line, where other
//! users could read them): `--authfile`, `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json`.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
use sigil_registry::{AuthFiles, Options, Platform};

subcommand_args! {
    /// Arguments of `sigil image`.
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pull REF from a registry into a new OCI image layout directory DIR.
    Pull(PullArgs),
    /// Push an OCI image layout directory or OCI archive SRC to REF.
    Push(PushArgs),
}

/// How to reach the registry (shared by pull and push).
#[derive(Parser, Debug)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (host[:port], exactly as in the
    /// reference). Repeatable. Every other registry is HTTPS.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// PEM file of extra CA certificates to trust for the registry.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Credentials file (docker config.json format) consulted before the
    /// usual ones.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

impl RegistryArgs {
    /// The registry options and the credentials for `reference`.
    pub fn resolve(
        &self,
        reference: &str,
        platform: Option<&str>,
    ) -> Result<(sigil_registry::Auth, Options)> {
        let r = sigil_registry::parse_reference(reference).map_err(flat)?;
        let mut files = AuthFiles::from_env();
        if let Some(f) = &self.authfile {
            files.paths.insert(0, f.clone());
        }
        let auth = files
            .lookup(sigil_registry::registry_of(&r))
            .map_err(flat)?;
        let platform = match platform {
            Some(p) => p.parse::<Platform>().map_err(|e| flat(e.into()))?,
            None => Platform::default(),
        };
        Ok((
            auth,
            Options {
                platform,
                insecure_registries: self.insecure_registry.clone(),
                ca_file: self.ca_file.clone(),
                ..Default::default()
            },
        ))
    }
}

#[derive(Parser, Debug)]
struct PullArgs {
    /// Image reference, e.g. registry.example:5000/app:1.0 (docker:// optional).
    reference: String,
    /// OCI image layout directory to create (must not exist or be empty).
    dir: PathBuf,
    /// Platform to pick from a multi-platform image (OS/ARCH[/VARIANT]).
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Parser, Debug)]
struct PushArgs {
    /// OCI image layout directory or OCI archive (tar) to push.
    src: PathBuf,
    /// Image reference to push to, with a tag.
    reference: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// The message is already one complete line (an I/O error includes its
/// cause); anyhow's "Caused by" would only repeat it.
fn flat(e: sigil_registry::Error) -> anyhow::Error {
    anyhow!("{e}")
}

/// Runs `sigil image`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Pull(a) => {
            let (auth, opts) = a.registry.resolve(&a.reference, Some(&a.platform))?;
            let p = sigil_registry::pull(&a.reference, &a.dir, &auth, &opts).map_err(flat)?;
            println!(
                "pulled {} ({}, {} layers, {} bytes{}) into {}",
                p.reference,
                p.manifest_digest,
                p.layers,
                p.bytes,
                p.index_digest
                    .as_deref()
                    .map(|i| format!(", {} from index {i}", opts.platform))
                    .unwrap_or_default(),
                p.layout.display()
            );
        }
        Command::Push(a) => {
            let (auth, opts) = a.registry.resolve(&a.reference, None)?;
            let p = sigil_registry::push(&a.src, &a.reference, &auth, &opts).map_err(flat)?;
            println!(
                "pushed {}@{} ({} blobs uploaded, {} already there, {} bytes)",
                p.reference, p.digest, p.blobs_uploaded, p.blobs_skipped, p.bytes
            );
        }
    }
    Ok(())
}
