//! `sigil session`: create, update, show, list, delete sessions on the CAS,
//! and hash or check a session file locally.
//!
//! `update` fetches the current hash and fills in `predecessor` itself when
//! the file has none.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use sigil_session::Session;

use super::cas::CasArgs;

/// Largest session file read.
const MAX_FILE: u64 = 4 * 1024 * 1024;

subcommand_args! {
    /// Arguments of `sigil session`.
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Create a session from a YAML file.
    Create {
        /// Session YAML.
        file: PathBuf,
        #[command(flatten)]
        cas: CasArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Update a session (predecessor filled in when the file has none).
    Update {
        /// Session YAML.
        file: PathBuf,
        #[command(flatten)]
        cas: CasArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show a session (secret values redacted).
    Show {
        /// Session name.
        name: String,
        #[command(flatten)]
        cas: CasArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// List the sessions you may read.
    List {
        #[command(flatten)]
        cas: CasArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Delete a session.
    Delete {
        /// Session name.
        name: String,
        #[command(flatten)]
        cas: CasArgs,
    },
    /// Print the hash of a session file (no CAS needed).
    Hash {
        /// Session YAML.
        file: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Check a session file (parse, validate, CAS rules; no CAS needed).
    Check {
        /// Session YAML.
        file: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn read(file: &Path) -> Result<String> {
    let meta =
        std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    if meta.len() > MAX_FILE {
        return Err(anyhow!(
            "{} is larger than {MAX_FILE} bytes",
            file.display()
        ));
    }
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {} as UTF-8", file.display()))
}

fn parse(file: &Path) -> Result<Session> {
    let text = read(file)?;
    Session::parse(&text).map_err(|errs| {
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        anyhow!("{}: invalid session: {}", file.display(), msgs.join("; "))
    })
}

fn written(w: &sigil_client::SessionWritten, json: bool, verb: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(w)?);
    } else {
        println!("{verb} {} {}", w.name, w.hash);
    }
    Ok(())
}

/// Runs `sigil session`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Create { file, cas, json } => {
            let yaml = read(&file)?;
            parse(&file)?;
            let c = cas.connect()?;
            let w = c.run(|c| c.create_session(&yaml))?;
            written(&w, json, "created")
        }
        Command::Update { file, cas, json } => {
            let yaml = read(&file)?;
            parse(&file)?;
            let c = cas.connect()?;
            let w = c.run(|c| c.update_session(&yaml))?;
            written(&w, json, "updated")
        }
        Command::Show { name, cas, json } => {
            let c = cas.connect()?;
            let info = c.run(|c| c.get_session(&name))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("# session {} hash {}", info.name, info.hash);
                println!(
                    "# creator {} created {} updated {}",
                    info.creator, info.created_at, info.updated_at
                );
                print!("{}", info.yaml);
            }
            Ok(())
        }
        Command::List { cas, json } => {
            let c = cas.connect()?;
            let l = c.run(|c| c.list())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&l)?);
            } else {
                for s in l.sessions {
                    println!("{} {}", s.hash, s.name);
                }
            }
            Ok(())
        }
        Command::Delete { name, cas } => {
            let c = cas.connect()?;
            c.run(|c| c.delete(&name))?;
            println!("deleted {name}");
            Ok(())
        }
        Command::Hash { file, json } => {
            let s = parse(&file)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": s.name.as_str(), "hash": s.hash().to_string()})
                );
            } else {
                println!("{}", s.hash());
            }
            Ok(())
        }
        Command::Check { file, json } => {
            let s = parse(&file)?;
            sigil_cas::secrets::validate(&s).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "name": s.name.as_str(), "hash": s.hash().to_string()})
                );
            } else {
                println!("ok {} {}", s.name.as_str(), s.hash());
            }
            Ok(())
        }
    }
}
