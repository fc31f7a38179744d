//! `sigil session`: Create, update, read, list, delete, hash and check sessions.

/// Arguments of `sigil session`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil session`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil session` is not built yet")
}
