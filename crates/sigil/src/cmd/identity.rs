//! `sigil identity`: this user's client identity (ECDSA P-256 key and
//! self-signed certificate) under `CONFIG/identity` or `--dir`. The CAS
//! knows a client by the SPKI SHA-256 fingerprint it prints.

use std::path::PathBuf;

use anyhow::{bail, Result};
use sigil_client::config::default_identity_dir;
use sigil_client::Identity;

subcommand_args! {
    /// Arguments of `sigil identity`.
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Create a key and certificate (refuses to overwrite an existing one).
    Create {
        /// Directory (default: CONFIG/identity).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Common name in the certificate.
        #[arg(long, default_value = "sigil-client")]
        name: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print the fingerprint of an identity.
    Show {
        /// Directory (default: CONFIG/identity).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn print(id: &Identity, dir: &std::path::Path, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({"fingerprint": id.fingerprint().to_string(), "dir": dir})
        );
    } else {
        println!("identity {}", dir.display());
        println!("fingerprint {}", id.fingerprint());
    }
}

/// Runs `sigil identity`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Create { dir, name, json } => {
            let dir = match dir {
                Some(d) => d,
                None => default_identity_dir()?,
            };
            if dir.join(sigil_client::identity::KEY_FILE).exists() {
                bail!(
                    "an identity exists in {} already; use `sigil identity show` or pass another --dir",
                    dir.display()
                );
            }
            let id = Identity::generate(&name, &[])?;
            id.save(&dir)?;
            print(&id, &dir, json);
            Ok(())
        }
        Command::Show { dir, json } => {
            let dir = match dir {
                Some(d) => d,
                None => default_identity_dir()?,
            };
            let id = Identity::load(&dir)?;
            print(&id, &dir, json);
            Ok(())
        }
    }
}
