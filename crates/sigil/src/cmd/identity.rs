//! `sigil identity`: Manage this user's client identity (TLS key and certificate).

/// Arguments of `sigil identity`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil identity`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil identity` is not built yet")
}
