//! `sigil convert`: Turn a container image into a confidential one, with its session and Helm chart.

/// Arguments of `sigil convert`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `sigil convert`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`sigil convert` is not built yet")
}
