//! `sigil detect`: Report what this host can do (SGX, TDX, SEV-SNP) and the flags to pass on.

/// Arguments of `sigil detect`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil detect`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil detect` is not built yet")
}
