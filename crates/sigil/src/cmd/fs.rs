//! `sigil fs`: Seal, open and verify encrypted volumes.

/// Arguments of `sigil fs`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil fs`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil fs` is not built yet")
}
