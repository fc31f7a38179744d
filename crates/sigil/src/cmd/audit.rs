//! `sigil audit`: show and verify the CAS audit log.
//!
//! `verify` re-computes the hash chain. Over the API it checks every entry
//! it receives and asks the CAS to check its MAC'd head; offline
//! (`--data-dir`, CAS stopped) it reads the store itself and checks the head
//! MAC when the master key is available; `--postgres-url` does the same
//! for a PostgreSQL store, in one snapshot while replicas keep running.

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::cas::{CasArgs, PostgresArgs};

subcommand_args! {
    /// Arguments of `sigil audit`.
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print audit entries.
    Show {
        #[command(flatten)]
        cas: CasArgs,
        /// First entry.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most entries to print.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        /// JSON output (one entry per line).
        #[arg(long)]
        json: bool,
    },
    /// Verify the hash chain; reports the first broken entry. Asks the CAS,
    /// or reads a stopped CAS's --data-dir, or a PostgreSQL store
    /// (--postgres-url, or SIGIL_CAS_POSTGRES_URL in the environment).
    Verify {
        #[command(flatten)]
        cas: CasArgs,
        /// Verify a stopped CAS's data directory instead of asking the CAS.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Master key for the offline head check (default: $SIGIL_CAS_MASTER_KEY or DATA_DIR/master.key if present).
        #[arg(long)]
        master_key_file: Option<PathBuf>,
        /// Without --data-dir: verify this PostgreSQL store directly (no
        /// CAS needed; nothing is written). SIGIL_CAS_POSTGRES_URL set in
        /// the environment selects this too, instead of asking the CAS.
        #[command(flatten)]
        postgres: PostgresArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `sigil audit`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Show {
            cas,
            from,
            limit,
            json,
        } => {
            let c = cas.connect()?;
            let page = c.run(|c| c.audit_page(from, limit))?;
            for e in &page.entries {
                if json {
                    println!("{}", serde_json::to_string(e)?);
                } else {
                    println!(
                        "{:>6} {} {} {} {} {} -> {}",
                        e.index,
                        e.time,
                        e.actor,
                        e.action,
                        e.session.as_deref().unwrap_or("-"),
                        e.old_hash
                            .as_deref()
                            .map(|h| &h[..h.len().min(12)])
                            .unwrap_or("-"),
                        e.new_hash
                            .as_deref()
                            .map(|h| &h[..h.len().min(12)])
                            .unwrap_or("-"),
                    );
                }
            }
            Ok(())
        }
        Command::Verify {
            cas,
            data_dir,
            master_key_file,
            postgres,
            json,
        } => {
            let (entries, head, mac) = match (data_dir, postgres.options(1)) {
                (None, Some(o)) => {
                    let key = match master_key_file {
                        Some(f) => Some(sigil_cas::MasterKeySource::File(f)),
                        None => sigil_cas::seal::take_master_key_env()
                            .map(sigil_cas::MasterKeySource::Hex),
                    };
                    let r = sigil_cas::store::verify_postgres(&o, key.as_ref()).map_err(|e| {
                        anyhow::anyhow!(
                            "audit log of PostgreSQL {} is NOT intact: {e}",
                            o.redacted_url()
                        )
                    })?;
                    (r.entries, r.head, r.head_mac_checked)
                }
                (Some(d), _) => {
                    let key = match master_key_file {
                        Some(f) => Some(sigil_cas::MasterKeySource::File(f)),
                        None => {
                            let src = sigil_cas::MasterKeySource::resolve(None, &d);
                            match &src {
                                sigil_cas::MasterKeySource::File(p) if !p.exists() => None,
                                _ => Some(src),
                            }
                        }
                    };
                    let r = sigil_cas::verify_data_dir(&d, key.as_ref()).map_err(|e| {
                        anyhow::anyhow!("audit log of {} is NOT intact: {e}", d.display())
                    })?;
                    (r.entries, r.head, r.head_mac_checked)
                }
                (None, None) => {
                    let c = cas.connect()?;
                    let all = c.run(|c| c.audit())?;
                    let head = sigil_client::audit::verify_chain(&all, 0, [0; 32])
                        .map_err(|e| anyhow::anyhow!("audit log is NOT intact: {e}"))?;
                    let r = c
                        .run(|c| c.call(hyper_get(), "/v1/audit/verify", None, Default::default()));
                    match r {
                        Ok(_) => {}
                        Err(e) => bail!("audit log is NOT intact according to the CAS: {e}"),
                    }
                    (all.len() as u64, hex::encode(head), true)
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "entries": entries, "head": head, "head_mac_checked": mac})
                );
            } else {
                println!("audit log intact: {entries} entries, head {head}");
                if !mac {
                    println!("(head MAC not checked: no master key; truncation at the end would go unnoticed)");
                }
            }
            Ok(())
        }
    }
}

fn hyper_get() -> sigil_client::client::Method {
    sigil_client::client::Method::GET
}
