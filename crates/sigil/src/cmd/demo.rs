//! `sigil demo`: Run the full local demo: CAS, convert, attest, run, refuse.

/// Arguments of `sigil demo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil demo`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil demo` is not built yet")
}
