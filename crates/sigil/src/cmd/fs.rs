//! `sigil fs`: seal, open and verify sealed volumes (see
//! `crates/sigil-fs/FORMAT.md`).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use sigil_fs::{Region, Regions, SealOptions, VolumeKey, VolumeTag};

subcommand_args! {
    /// Arguments of `sigil fs`.
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Seal a directory tree into a new volume; prints the key (unless
    /// --key-out) and the tag.
    Seal(SealArgs),
    /// Verify a volume and materialise its tree into DST.
    Open(OpenArgs),
    /// Verify every file of a volume without writing anything.
    Verify(VerifyArgs),
}

#[derive(Parser, Debug)]
struct SealArgs {
    /// Directory tree to seal.
    src: PathBuf,
    /// Volume directory to create (must not exist or be empty).
    dst: PathBuf,
    /// Encrypt this path (relative to SRC; longest prefix wins). Repeatable.
    #[arg(long = "encrypt", value_name = "PATH")]
    encrypt: Vec<PathBuf>,
    /// Authenticate (store in clear, verified) this path. Repeatable.
    #[arg(long = "authenticate", value_name = "PATH")]
    authenticate: Vec<PathBuf>,
    /// Leave this path plain (unprotected content). Repeatable.
    #[arg(long = "plain", value_name = "PATH")]
    plain: Vec<PathBuf>,
    /// Region of paths no rule covers: encrypted, authenticated or plain.
    #[arg(long, default_value = "plain", value_name = "REGION")]
    default_region: String,
    /// Plaintext bytes per chunk (16 ..= 16777216).
    #[arg(long, default_value_t = 65536, value_name = "BYTES")]
    chunk_size: u32,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the new key (hex) to this file, created with mode 0600,
    /// instead of printing it.
    #[arg(long, value_name = "FILE")]
    key_out: Option<PathBuf>,
    /// Seal under an existing key read from this file instead of a new one.
    #[arg(long, value_name = "FILE", conflicts_with = "key_out")]
    key_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct KeyArgs {
    /// File holding the volume key (64 hex digits).
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    key_file: Option<PathBuf>,
    /// The volume key as 64 hex digits (prefer --key-file: command lines
    /// are visible to other users).
    #[arg(long, env = "SIGIL_FS_KEY", hide_env_values = true, value_name = "HEX")]
    key: Option<String>,
    /// The expected volume tag (64 hex digits).
    #[arg(long, value_name = "HEX")]
    tag: String,
}

#[derive(Parser, Debug)]
struct OpenArgs {
    /// Volume directory.
    volume: PathBuf,
    /// Where to materialise the tree (must not exist or be empty).
    dst: PathBuf,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Parser, Debug)]
struct VerifyArgs {
    /// Volume directory.
    volume: PathBuf,
    #[command(flatten)]
    key: KeyArgs,
}

/// Runs `sigil fs`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Seal(a) => seal(a),
        Command::Open(a) => {
            let (key, tag) = key_and_tag(&a.key)?;
            sigil_fs::open(&a.volume, &a.dst, &key, &tag)?;
            eprintln!("opened {} into {}", a.volume.display(), a.dst.display());
            Ok(())
        }
        Command::Verify(a) => {
            let (key, tag) = key_and_tag(&a.key)?;
            let r = sigil_fs::verify(&a.volume, &key, &tag)?;
            println!("ok: tag {tag}");
            println!(
                "sealed files: {}\nplain files (content not protected): {}\ndirectories: {}\nsymlinks: {}\nhard links: {}\nchunks verified: {}\nbytes verified: {}",
                r.sealed_files, r.plain_files, r.dirs, r.symlinks, r.hard_links, r.chunks, r.bytes
            );
            Ok(())
        }
    }
}

fn seal(a: SealArgs) -> Result<()> {
    let default: Region = a.default_region.parse()?;
    let mut regions = Regions::with_default(default);
    for p in &a.encrypt {
        regions = regions.encrypt(p);
    }
    for p in &a.authenticate {
        regions = regions.authenticate(p);
    }
    for p in &a.plain {
        regions = regions.plain(p);
    }
    let opts = SealOptions {
        chunk_size: a.chunk_size,
        threads: a.threads,
    };
    if let Some(out) = &a.key_out {
        // Fail before sealing if the key cannot be stored.
        if out.exists() {
            bail!(
                "{} already exists; refusing to overwrite a key file",
                out.display()
            );
        }
    }
    let (key, tag, fresh) = match &a.key_file {
        Some(f) => {
            let key = read_key_file(f)?;
            let tag = sigil_fs::seal_with_key(&a.src, &a.dst, &regions, &opts, &key)?;
            (key, tag, false)
        }
        None => {
            let s = sigil_fs::seal(&a.src, &a.dst, &regions, &opts)?;
            (s.key, s.tag, true)
        }
    };
    let mut stdout = std::io::stdout().lock();
    match (&a.key_out, fresh) {
        (Some(out), _) => {
            write_key_file(out, &key)?;
            eprintln!("key written to {} (mode 0600)", out.display());
        }
        (None, true) => writeln!(stdout, "key: {}", key.to_hex().as_str())?,
        (None, false) => {}
    }
    writeln!(stdout, "tag: {tag}")?;
    Ok(())
}

fn write_key_file(path: &Path, key: &VolumeKey) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    let mut line = key.to_hex();
    line.push('\n');
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing key file {}", path.display()))?;
    Ok(())
}

fn read_key_file(path: &Path) -> Result<VolumeKey> {
    let f = fs::File::open(path).with_context(|| format!("opening key file {}", path.display()))?;
    let mut s = zeroize::Zeroizing::new(String::new());
    f.take(1024)
        .read_to_string(&mut s)
        .with_context(|| format!("reading key file {}", path.display()))?;
    VolumeKey::from_hex(&s).with_context(|| format!("key file {}", path.display()))
}

fn key_and_tag(a: &KeyArgs) -> Result<(VolumeKey, VolumeTag)> {
    let key = match (&a.key_file, &a.key) {
        (Some(f), _) => read_key_file(f)?,
        (None, Some(hex)) => VolumeKey::from_hex(hex).context("--key / SIGIL_FS_KEY")?,
        (None, None) => {
            bail!("give the volume key with --key-file FILE, --key HEX or SIGIL_FS_KEY")
        }
    };
    let tag: VolumeTag = a.tag.parse().context("--tag")?;
    Ok((key, tag))
}
