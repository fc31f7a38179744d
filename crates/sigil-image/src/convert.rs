//! The conversion: an ordinary image in, a confidential image out.
//!
//! 1. Open the input and check the launcher (a static ELF) before any heavy work.
//! 2. Flatten all layers: each layer's uncompressed tar is parsed (tree
//!    metadata in memory, whiteouts applied) and copied as one staged file;
//!    reading the blob, decompressing and hashing+staging run on separate
//!    threads. File contents are not unpacked.
//! 3. Resolve `--binary` inside the image, find its shared libraries.
//! 4. Move the protected paths (encrypted dirs, authenticated libraries and
//!    paths) out of the root file system into a volume source tree and seal it
//!    with `sigil-fs`. The plaintext never reaches the output: the output has
//!    one flattened root layer without those paths, plus a `/sigil` layer with
//!    the launcher, `init.toml` and the sealed volume.
//! 5. Write `init.toml`, compute the simulation measurement with
//!    `sigil_init::measurement`, write the archive (temp name, renamed at the
//!    end): the root layer is built from the staged layers in one sequential
//!    pass on one core while the other hashes (and, if asked, compresses)
//!    and writes it.
//!
//! All staging happens in a private temporary directory next to the output
//! (or in `work_dir`), removed on success and on failure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sigil_fs::{Region, Regions, SealOptions, VolumeKey, VolumeTag};
use sigil_init::config::{ConfigId, InitConfig, Mode, SpkiPin, VolumeSpec};

use crate::archive::{self, Format, ImageWriter, LayerCompression, LayerTar};
use crate::error::IoContext;
use crate::flatten::{normalize, Content, Kind, Observer, Rootfs};
use crate::resolve::{self, Binary};
use crate::source::SourceImage;
use crate::spec::RunConfig;
use crate::{elf, Error, Limits, Result};

/// Path of the launcher in a converted image.
pub const LAUNCHER_PATH: &str = "/sigil/sigil-init";
/// Path of the launcher configuration in a converted image.
pub const INIT_TOML_PATH: &str = "/sigil/init.toml";
/// Directory of sealed volumes in a converted image.
pub const VOLUMES_DIR: &str = "/sigil/volumes";
/// Label holding the simulation measurement (hex) in the converted image config.
pub const LABEL_MEASUREMENT: &str = "io.sigil.simulation-measurement";
/// Label holding the `session/service` config id.
pub const LABEL_CONFIG_ID: &str = "io.sigil.config-id";

/// Reports progress; the CLI draws a bar, tests ignore it.
pub trait Progress {
    /// A new stage starts; `total` is its size in bytes (0 if unknown).
    fn stage(&self, name: &str, total: u64);
    /// `n` more bytes of the current stage are done.
    fn inc(&self, n: u64);
}

/// A [`Progress`] that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn stage(&self, _: &str, _: u64) {}
    fn inc(&self, _: u64) {}
}

/// What to convert and how.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Input image (OCI layout dir or tar, docker-archive).
    pub from: PathBuf,
    /// Which image of a multi-image input.
    pub from_ref: Option<String>,
    /// Output archive.
    pub to: PathBuf,
    /// Output format.
    pub format: Format,
    /// Compression of the root layer.
    pub compression: LayerCompression,
    /// Reference name of the output image (`localhost/app:latest`).
    pub image_name: String,
    /// The program to run (absolute path in the image). `None`: the first
    /// word of the image's ENTRYPOINT+CMD, looked up in its `PATH`.
    pub binary: Option<String>,
    /// Paths to encrypt.
    pub encrypt: Vec<String>,
    /// Paths to authenticate (besides the binary's libraries).
    pub authenticate: Vec<String>,
    /// Paths inside protected paths to leave plain.
    pub plain: Vec<String>,
    /// The launcher binary on the host (static ELF).
    pub launcher: PathBuf,
    /// Default CAS address `host:port` written to `init.toml`.
    pub cas_addr: String,
    /// Pin of the CAS key.
    pub cas_pin: SpkiPin,
    /// Session name.
    pub session: String,
    /// Service name.
    pub service: String,
    /// Default launcher mode.
    pub mode: Mode,
    /// Name of the sealed volume.
    pub volume_name: String,
    /// Input limits.
    pub limits: Limits,
    /// Sealing worker threads (`None`: all cores).
    pub seal_threads: Option<usize>,
}

/// The result of a conversion.
#[derive(Debug)]
pub struct Converted {
    /// The input's run configuration (entrypoint, cmd, env, workdir, ...).
    pub run: RunConfig,
    /// The binary, resolved in the image.
    pub binary: Binary,
    /// The simulation measurement.
    pub measurement: [u8; 32],
    /// The sealed volume (name, key, tag), if anything was protected.
    pub volume: Option<SealedVolume>,
    /// The protected paths and their region, as given to `sigil-fs` (absolute).
    pub protected: Vec<(String, Region)>,
    /// The `init.toml` written into the image.
    pub init: InitConfig,
    /// The output image reference name.
    pub image_name: String,
    /// Digest of the output manifest (OCI) or config (docker-archive).
    pub digest: String,
    /// Bytes of file content in the input image.
    pub input_bytes: u64,
    /// Whether the root layer was written while the input was read (a
    /// single-layer image whose libraries were guessed right), rather than
    /// from the staged layers afterwards.
    pub streamed: bool,
}

/// A sealed volume: its key is secret (redacted in `Debug`).
#[derive(Debug)]
pub struct SealedVolume {
    /// Volume name.
    pub name: String,
    /// The key (secret).
    pub key: VolumeKey,
    /// The tag.
    pub tag: VolumeTag,
    /// Absolute paths the launcher restores from it.
    pub paths: Vec<String>,
}

/// Checks that `path` is a static ELF executable (no `PT_INTERP`), as the
/// launcher must be: it runs before anything in the image can be trusted.
pub fn check_launcher(path: &Path) -> Result<Vec<u8>> {
    let data =
        fs::read(path).map_err(|e| Error::Usage(format!("launcher {}: {e}", path.display())))?;
    let info =
        elf::parse(&data).map_err(|e| Error::Usage(format!("launcher {}: {e}", path.display())))?;
    if let Some(i) = info.interp {
        return Err(Error::Usage(format!(
            "launcher {} is dynamically linked (interpreter {i}); it must be a static executable",
            path.display()
        )));
    }
    Ok(data)
}

/// `org/app` → `localhost/org/app:latest`; names with a tag or registry are kept.
pub fn image_ref(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let with_tag = if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    };
    let first = with_tag.split('/').next().unwrap_or("");
    if with_tag.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        with_tag
    } else {
        format!("localhost/{with_tag}")
    }
}

fn is_within(path: &str, root: &str) -> bool {
    path == root
        || root.is_empty()
        || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

fn user_path(flag: &str, p: &str) -> Result<String> {
    if !p.starts_with('/') {
        return Err(Error::Usage(format!(
            "{flag} {p}: must be an absolute path"
        )));
    }
    match normalize(p) {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(Error::Usage(format!(
            "{flag} {p}: not a usable path (no '..', not /)"
        ))),
    }
}

/// The first word of the image's ENTRYPOINT+CMD.
fn entry_program(run: &RunConfig) -> Option<&String> {
    run.entrypoint.iter().chain(run.cmd.iter()).next()
}

/// Where the image would look for `program`: itself if absolute, else in
/// each absolute directory of the image's `PATH` (docker's default `PATH`
/// when the image sets none), in order.
fn program_candidates(run: &RunConfig, program: &str) -> Vec<String> {
    if program.starts_with('/') {
        return vec![program.to_string()];
    }
    let path_var = run
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path_var
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| format!("{d}/{program}"))
        .collect()
}

/// Finds the program from ENTRYPOINT+CMD when `--binary` is not given.
fn default_binary(root: &Rootfs, run: &RunConfig) -> Result<String> {
    let Some(first) = entry_program(run) else {
        return Err(Error::Usage(
            "the image has no ENTRYPOINT or CMD; give the program with --binary".into(),
        ));
    };
    if first.starts_with('/') {
        return Ok(first.to_string());
    }
    for cand in program_candidates(run, first) {
        if let Ok(r) = resolve::resolve(root, &cand) {
            if matches!(
                root.get(&r).map(|n| &n.kind),
                Some(Kind::File | Kind::Hardlink(_))
            ) {
                return Ok(cand);
            }
        }
    }
    Err(Error::Usage(format!(
        "{first:?} (from the image's ENTRYPOINT/CMD) is not in the image's PATH; give the program with --binary"
    )))
}

/// Runs the conversion, staging next to the output. On error nothing is
/// left at `opts.to`.
pub fn convert(opts: &ConvertOptions, progress: &dyn Progress) -> Result<Converted> {
    convert_in(opts, None, progress)
}

/// Like [`convert`], staging the unpacked image in `work_dir` (`None`: next
/// to the output). A memory file system (`/dev/shm`) keeps plaintext off disk
/// and avoids writing the image to disk twice; it needs RAM for the image.
pub fn convert_in(
    opts: &ConvertOptions,
    work_dir: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Converted> {
    let launcher = check_launcher(&opts.launcher)?;
    let config_id: ConfigId = format!("{}/{}", opts.session, opts.service)
        .parse()
        .map_err(|e: String| Error::Usage(format!("--name/--service-name: {e}")))?;
    let encrypt: Vec<String> = opts
        .encrypt
        .iter()
        .map(|p| user_path("--dir", p))
        .collect::<Result<_>>()?;
    let authenticate: Vec<String> = opts
        .authenticate
        .iter()
        .map(|p| user_path("--authenticate", p))
        .collect::<Result<_>>()?;
    let plain: Vec<String> = opts
        .plain
        .iter()
        .map(|p| user_path("--plain", p))
        .collect::<Result<_>>()?;

    let src = SourceImage::open(&opts.from, opts.from_ref.as_deref(), &opts.limits)?;
    let out_dir = archive::output_dir(&opts.to)?;
    let work_parent = work_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.clone());
    let work = tempfile::Builder::new()
        .prefix(".sigil-convert-")
        .tempdir_in(&work_parent)
        .at(&work_parent)?;
    let mut root = Rootfs::new(&work.path().join("layers"), &opts.limits)?;

    // Flatten: each layer is decompressed on its own thread (its blob read
    // and checked on a third) while this one parses it and stages it;
    // contents stay where they are in the staged stream. A single-layer
    // image is written to the output while it is read (see `Streamer`);
    // otherwise the output layer is written from the staged layers after.
    progress.stage("reading", 0);
    let who = Who {
        opts,
        encrypt: &encrypt,
        authenticate: &authenticate,
        plain: &plain,
        run: &src.run,
    };
    let mut streamed: Option<(ImageWriter, Analysis)> = None;
    if src.layers.len() == 1 {
        let mut w = ImageWriter::create(&opts.to, opts.format)?;
        let mut st = Streamer::new(&who, &opts.limits);
        let mut analysis = None;
        w.add_layer(opts.compression, |t| {
            let name = src.layers[0].name.clone();
            let mut r = src.open_layer_pipelined(0)?;
            root.apply_layer_observed(
                &name,
                &mut r,
                &mut |n| progress.inc(n),
                Some(&mut Observing { st: &mut st, t }),
            )?;
            drain(&name, &mut r)?;
            let a = analyze(&root, &who)?;
            if st.finish(&root, &a, t)? {
                analysis = Some(a);
            }
            Ok(())
        })?;
        // A guess that failed (a library was written before it was known to
        // be one; a path replaced): the layer is written again below.
        streamed = analysis.map(|a| (w, a));
    } else {
        for i in 0..src.layers.len() {
            let name = src.layers[i].name.clone();
            let mut r = src.open_layer_pipelined(i)?;
            root.apply_layer(&name, &mut r, &mut |n| progress.inc(n))?;
            drain(&name, &mut r)?;
        }
    }
    let input_bytes = root.total_bytes();
    progress.stage("resolving", 0);
    let was_streamed = streamed.is_some();
    let (w, analysis) = match streamed {
        Some((w, a)) => (Some(w), a),
        None => (None, analyze(&root, &who)?),
    };
    let Analysis {
        binary,
        roots,
        regions,
        protected,
    } = analysis;

    // Move protected trees out of the root file system and seal them.
    let volume = if roots.is_empty() {
        None
    } else {
        progress.stage("sealing", 0);
        let volsrc = work.path().join("volume-src");
        fs::create_dir(&volsrc).at(&volsrc)?;
        for r in &roots {
            root.take_subtree(r, &volsrc)?;
        }
        let voldir = work.path().join("volume");
        let sealed = sigil_fs::seal(
            &volsrc,
            &voldir,
            &regions,
            &SealOptions {
                threads: opts.seal_threads,
                ..SealOptions::default()
            },
        )
        .map_err(|e| Error::Seal(e.to_string()))?;
        // The plaintext staging copy is not needed any more.
        fs::remove_dir_all(&volsrc).at(&volsrc)?;
        Some((
            SealedVolume {
                name: opts.volume_name.clone(),
                key: sealed.key,
                tag: sealed.tag,
                paths: roots.iter().map(|r| format!("/{r}")).collect(),
            },
            voldir,
        ))
    };

    let init = InitConfig {
        version: 1,
        cas_addr: opts.cas_addr.clone(),
        cas_fingerprint: opts.cas_pin,
        config_id,
        binary: format!("/{}", binary.real),
        volumes: volume
            .iter()
            .map(|(v, _)| VolumeSpec {
                name: v.name.clone(),
                sealed_dir: format!("{VOLUMES_DIR}/{}", v.name),
                paths: v.paths.clone(),
                tag: v.tag.to_string(),
            })
            .collect(),
        memory_dir: sigil_init::config::DEFAULT_MEMORY_DIR.to_string(),
        allow_env_passthrough: Vec::new(),
        mode: opts.mode,
    };
    let init_toml = init
        .to_toml()
        .map_err(|e| Error::Usage(format!("init.toml: {e}")))?;
    // The binary was hashed when `resolve::binary` read it; the launcher
    // refuses to measure a binary over MAX_MEASURED_FILE, so refuse it here.
    let max = sigil_init::measurement::MAX_MEASURED_FILE;
    if root
        .get(&binary.real)
        .and_then(|n| n.content)
        .is_some_and(|c| c.size > max)
    {
        return Err(Error::Limit(format!(
            "/{} is larger than {max} bytes",
            binary.real
        )));
    }
    let measurement = sigil_init::measurement::from_digests(
        &sigil_init::measurement::sha256(&launcher),
        &sigil_init::measurement::sha256(init_toml.as_bytes()),
        &binary.sha256,
    );

    // The converted config: everything kept but the entrypoint and history.
    let mut config = src.config.clone();
    let cfg = config
        .as_object_mut()
        .ok_or_else(|| Error::image("image config is not a JSON object"))?;
    let inner = cfg.entry("config").or_insert_with(|| serde_json::json!({}));
    if inner.is_null() {
        *inner = serde_json::json!({});
    }
    let inner = inner
        .as_object_mut()
        .ok_or_else(|| Error::image("image config: config is not an object"))?;
    inner.insert("Entrypoint".into(), serde_json::json!([LAUNCHER_PATH]));
    inner.remove("Cmd");
    let labels = inner
        .entry("Labels")
        .or_insert_with(|| serde_json::json!({}));
    if !labels.is_object() {
        *labels = serde_json::json!({});
    }
    if let Some(l) = labels.as_object_mut() {
        l.insert(
            LABEL_MEASUREMENT.into(),
            sigil_init::measurement::to_hex(&measurement).into(),
        );
        l.insert(LABEL_CONFIG_ID.into(), init.config_id.to_string().into());
    }
    cfg.insert(
        "history".into(),
        serde_json::json!([
            {"created_by": "sigil convert: flattened root file system without protected paths"},
            {"created_by": "sigil convert: launcher, init.toml and sealed volume"}
        ]),
    );

    // Write the image.
    let image_name = image_ref(&opts.image_name);
    let mut w = match w {
        Some(w) => w,
        None => {
            progress.stage("writing", root.total_bytes());
            let mut w = ImageWriter::create(&opts.to, opts.format)?;
            w.add_layer(opts.compression, |t| {
                archive::append_rootfs(t, &root, &|_| false, &mut |n| progress.inc(n))
            })?;
            w
        }
    };
    progress.stage("volume", 0);
    w.add_layer(LayerCompression::NONE, |t| {
        archive::append_dir(t, "sigil", 0o755)?;
        archive::append_bytes(t, "sigil/sigil-init", &launcher, 0o755)?;
        archive::append_bytes(t, "sigil/init.toml", init_toml.as_bytes(), 0o644)?;
        if let Some((v, dir)) = &volume {
            archive::append_dir(t, "sigil/volumes", 0o755)?;
            archive::append_host_tree(t, dir, &format!("sigil/volumes/{}", v.name))?;
        }
        Ok(())
    })?;
    progress.stage("finishing", 0);
    let desc = w.finish(config, &image_name)?;
    drop(work);

    Ok(Converted {
        run: src.run.clone(),
        binary,
        measurement,
        volume: volume.map(|(v, _)| v),
        protected,
        init,
        image_name,
        digest: desc.digest,
        input_bytes,
        streamed: was_streamed,
    })
}

/// Writes the root layer of a single-layer image while the layer is read,
/// so reading and writing overlap. The protected paths are only known once
/// the whole tree is (the binary's libraries, found through symlinks and
/// `DT_NEEDED`), so this guesses: paths under `--dir`/`--authenticate` are
/// never written; a file whose name a library of the binary needs (or a
/// symlink to such a name points to) is held back and written at the end if
/// it is not protected after all. If the guess was wrong (a protected file
/// was written) or the layer changed a path twice, the caller discards
/// this output and writes the layer again from the staged copy: the guess
/// only decides the speed, never what is in the output.
struct Streamer {
    user_roots: Vec<String>,
    /// Paths of the binary (and of what symlinks there point to), whose
    /// ELF headers name libraries.
    elf_paths: HashSet<String>,
    /// File names of needed libraries (and of their symlinks' targets).
    wanted: HashSet<String>,
    deferred: Vec<String>,
    written_paths: Vec<String>,
    written: HashMap<Content, String>,
    failed: bool,
    max_elf: u64,
    buf: Vec<u8>,
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

impl Streamer {
    fn new(who: &Who<'_>, limits: &Limits) -> Streamer {
        // The same candidates `default_binary` tries (a relative --binary
        // is refused later; guessing with it costs nothing).
        let first = who.opts.binary.as_ref().or(entry_program(who.run));
        let elf_paths: HashSet<String> = first
            .map(|f| program_candidates(who.run, f))
            .unwrap_or_default()
            .iter()
            .filter_map(|c| normalize(c))
            .collect();
        Streamer {
            user_roots: who
                .encrypt
                .iter()
                .chain(who.authenticate.iter())
                .cloned()
                .collect(),
            elf_paths,
            wanted: HashSet::new(),
            deferred: Vec::new(),
            written_paths: Vec::new(),
            written: HashMap::new(),
            failed: false,
            max_elf: limits.max_elf_bytes,
            buf: Vec::new(),
        }
    }

    fn protected_by_user(&self, p: &str) -> bool {
        self.user_roots.iter().any(|r| is_within(p, r))
    }

    fn learn_elf(&mut self, data: &[u8]) {
        if let Ok(info) = elf::parse(data) {
            self.wanted
                .extend(info.needed.iter().map(|n| base(n).to_string()));
            if let Some(i) = &info.interp {
                self.wanted.insert(base(i).to_string());
            }
        }
    }

    /// After the layer: checks the guess and writes what was held back.
    /// Returns false if the output must be written again.
    fn finish(&mut self, root: &Rootfs, a: &Analysis, t: &mut LayerTar) -> Result<bool> {
        if self.failed
            || self
                .written_paths
                .iter()
                .any(|p| a.roots.iter().any(|r| is_within(p, r)))
        {
            return Ok(false);
        }
        for p in std::mem::take(&mut self.deferred) {
            if a.roots.iter().any(|r| is_within(&p, r)) {
                continue;
            }
            let Some(node) = root.get(&p) else {
                return Ok(false);
            };
            archive::append_one(t, root, &p, node, &mut self.written, None, &mut self.buf)?;
        }
        Ok(true)
    }
}

/// The [`Observer`] that feeds a [`Streamer`] and the layer being written.
struct Observing<'a, 'b> {
    st: &'a mut Streamer,
    t: &'b mut LayerTar,
}

impl Observer for Observing<'_, '_> {
    fn changed(&mut self) {
        self.st.failed = true;
    }

    fn added(
        &mut self,
        root: &Rootfs,
        new_parents: &[String],
        path: &str,
        data: Option<&mut dyn io::Read>,
    ) -> Result<()> {
        let st = &mut *self.st;
        if st.failed {
            return Ok(());
        }
        for p in new_parents {
            if !st.protected_by_user(p) {
                if let Some(n) = root.get(p) {
                    archive::append_one(self.t, root, p, n, &mut st.written, None, &mut st.buf)?;
                    st.written_paths.push(p.clone());
                }
            }
        }
        if st.protected_by_user(path) {
            return Ok(());
        }
        let Some(node) = root.get(path) else {
            return Ok(());
        };
        let wanted = st.wanted.contains(base(path));
        let mut data = data;
        match (&node.kind, node.content) {
            (Kind::Symlink(t), _) => {
                if wanted {
                    st.wanted.insert(base(t).to_string());
                }
                if st.elf_paths.contains(path) {
                    let target = if t.starts_with('/') {
                        normalize(t)
                    } else {
                        normalize(&format!(
                            "{}/{t}",
                            path.rsplit_once('/').map_or("", |x| x.0)
                        ))
                    };
                    st.elf_paths.extend(target);
                }
            }
            (Kind::File, Some(c)) if wanted || st.elf_paths.contains(path) => {
                let Some(d) = data.as_deref_mut() else {
                    st.deferred.push(path.to_string());
                    return Ok(());
                };
                if c.size <= st.max_elf {
                    let mut bytes = Vec::with_capacity(c.size as usize);
                    io::Read::take(d, c.size)
                        .read_to_end(&mut bytes)
                        .map_err(|e| Error::image(format!("reading /{path}: {e}")))?;
                    st.learn_elf(&bytes);
                    if !wanted {
                        let mut r: &[u8] = &bytes;
                        archive::append_one(
                            self.t,
                            root,
                            path,
                            node,
                            &mut st.written,
                            Some(&mut r),
                            &mut st.buf,
                        )?;
                        st.written_paths.push(path.to_string());
                    }
                }
                if wanted || c.size > st.max_elf {
                    st.deferred.push(path.to_string());
                }
                return Ok(());
            }
            (Kind::File | Kind::Hardlink(_), Some(c))
                if wanted || (node.kind != Kind::File && !st.written.contains_key(&c)) =>
            {
                st.deferred.push(path.to_string());
                return Ok(());
            }
            _ => {}
        }
        let data = if node.kind == Kind::File { data } else { None };
        archive::append_one(self.t, root, path, node, &mut st.written, data, &mut st.buf)?;
        st.written_paths.push(path.to_string());
        Ok(())
    }
}

/// What the conversion protects, decided on the whole flattened tree.
struct Analysis {
    binary: Binary,
    /// The minimal set of protected roots (relative paths).
    roots: Vec<String>,
    regions: Regions,
    protected: Vec<(String, Region)>,
}

/// The user's choices that [`analyze`] needs.
struct Who<'a> {
    opts: &'a ConvertOptions,
    encrypt: &'a [String],
    authenticate: &'a [String],
    plain: &'a [String],
    run: &'a RunConfig,
}

fn drain(name: &str, r: &mut dyn io::Read) -> Result<()> {
    // The digest is checked at the end of the stream.
    io::copy(r, &mut io::sink()).map_err(|e| Error::Layer {
        layer: name.to_string(),
        msg: e.to_string(),
    })?;
    Ok(())
}

/// Resolves the binary and its libraries and decides the protected paths.
fn analyze(root: &Rootfs, who: &Who<'_>) -> Result<Analysis> {
    if root.get("sigil").is_some() {
        return Err(Error::Usage(
            "the image already has /sigil (is it converted already?)".into(),
        ));
    }

    // The program.
    let opts = who.opts;
    let mut authenticate: Vec<String> = who.authenticate.to_vec();
    let (encrypt, plain) = (who.encrypt, who.plain);
    let given = match &opts.binary {
        Some(b) => b.clone(),
        None => default_binary(root, who.run)?,
    };
    if !given.starts_with('/') {
        return Err(Error::Binary {
            path: given,
            msg: "must be an absolute path in the image".into(),
        });
    }
    let binary = resolve::binary(root, &given, opts.limits.max_elf_bytes)?;

    // What to protect. User paths must exist in the image (not through symlinks).
    let check_exists = |flag: &str, p: &str| -> Result<()> {
        match root.get(p).map(|n| &n.kind) {
            None => Err(Error::Usage(format!(
                "{flag} /{p}: does not exist in the image"
            ))),
            Some(Kind::Symlink(t)) => Err(Error::Usage(format!(
                "{flag} /{p}: is a symlink (to {t}); give the path it points to"
            ))),
            Some(_) => Ok(()),
        }
    };
    for p in encrypt {
        check_exists("--dir", p)?;
    }
    for p in &authenticate {
        check_exists("--authenticate", p)?;
    }
    for p in plain {
        check_exists("--plain", p)?;
    }
    for p in encrypt.iter().chain(authenticate.iter()) {
        if is_within(&binary.real, p) {
            return Err(Error::Binary {
                path: given.clone(),
                msg: format!(
                    "/{} lies inside protected /{p}; the binary is measured before volumes are opened, so leave it out (protect the paths next to it)",
                    binary.real
                ),
            });
        }
    }
    // Libraries are authenticated unless already inside a protected path.
    for lib in &binary.libs {
        if !encrypt
            .iter()
            .chain(authenticate.iter())
            .any(|p| is_within(lib, p))
        {
            authenticate.push(lib.clone());
        }
    }
    let mut roots: Vec<String> = encrypt.iter().chain(authenticate.iter()).cloned().collect();
    roots.sort();
    roots.dedup();
    let roots: Vec<String> = roots
        .iter()
        .filter(|p| !roots.iter().any(|q| q != *p && is_within(p, q)))
        .cloned()
        .collect();
    let mut regions = Regions::new();
    let mut protected = Vec::new();
    for p in &authenticate {
        regions = regions.authenticate(p);
        protected.push((format!("/{p}"), Region::Authenticated));
    }
    for p in encrypt {
        regions = regions.encrypt(p);
        protected.push((format!("/{p}"), Region::Encrypted));
    }
    for p in plain {
        if roots.iter().any(|r| is_within(p, r)) {
            regions = regions.plain(p);
            protected.push((format!("/{p}"), Region::Plain));
        }
    }
    protected.sort_by(|a, b| a.0.cmp(&b.0));

    check_hard_links(root, &roots)?;
    Ok(Analysis {
        binary,
        roots,
        regions,
        protected,
    })
}

/// Refuses hard links that join a protected path and an unprotected one: the
/// unprotected name would keep a plaintext copy of protected content (or the
/// volume a copy of content the user meant to leave alone).
fn check_hard_links(root: &Rootfs, roots: &[String]) -> Result<()> {
    if !root
        .nodes()
        .values()
        .any(|n| matches!(n.kind, Kind::Hardlink(_)))
    {
        return Ok(());
    }
    let mut by_content: BTreeMap<(u32, u64), Vec<&String>> = BTreeMap::new();
    for (p, n) in root.nodes() {
        if let Some(c) = n.content {
            by_content.entry((c.layer, c.offset)).or_default().push(p);
        }
    }
    for paths in by_content.values().filter(|p| p.len() > 1) {
        let prot = |p: &str| roots.iter().any(|r| is_within(p, r));
        if let (Some(a), Some(b)) = (
            paths.iter().find(|p| prot(p)),
            paths.iter().find(|p| !prot(p)),
        ) {
            return Err(Error::Usage(format!(
                "/{b} is a hard link to protected /{a}: it would keep a plaintext copy; protect it too or remove it"
            )));
        }
    }
    Ok(())
}

/// What a dry run reports: the input as parsed, without unpacking it.
#[derive(Debug)]
pub struct Plan {
    /// Input kind and name.
    pub source: String,
    /// Layers: name and compression.
    pub layers: Vec<String>,
    /// Input run configuration.
    pub run: RunConfig,
}

/// Opens and parses the input (index, manifest, config) without unpacking.
pub fn plan(opts: &ConvertOptions) -> Result<Plan> {
    check_launcher(&opts.launcher)?;
    let src = SourceImage::open(&opts.from, opts.from_ref.as_deref(), &opts.limits)?;
    Ok(Plan {
        source: format!(
            "{:?} {}{}",
            src.kind,
            opts.from.display(),
            src.name
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        layers: src
            .layers
            .iter()
            .map(|l| match l.compression {
                Some(c) => format!("{} ({c:?})", l.name),
                None => l.name.clone(),
            })
            .collect(),
        run: src.run.clone(),
    })
}

/// The environment of the image as a map (`K=V` strings; later wins).
pub fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
