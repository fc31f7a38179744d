//! `sigil audit`: Show and verify the CAS audit log.

/// Arguments of `sigil audit`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil audit`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil audit` is not built yet")
}
