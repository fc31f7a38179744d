//! `sigil cas`: Run and maintain the Configuration and Attestation Service.

/// Arguments of `sigil cas`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil cas`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil cas` is not built yet")
}
