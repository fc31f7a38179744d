//! `sigil attest`: Verify attestation evidence by hand.

/// Arguments of `sigil attest`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil attest`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil attest` is not built yet")
}
