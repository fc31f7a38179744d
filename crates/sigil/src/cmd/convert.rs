//! `sigil convert`: turn a container image into a confidential one, with its
//! session and Helm chart.
//!
//! The image work is `sigil_image::convert`; this module parses flags,
//! validates everything cheap before the heavy work, and writes the session
//! (0600: it holds the volume key) and the chart. If anything fails after the
//! image was written, the image is removed again: no half-written output.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use sigil_image::archive::{Format, LayerCompression};
use sigil_image::convert::{self, ConvertOptions, Progress};
use sigil_image::helm::{self, ChartOptions, Workload};
use sigil_image::session::{build_session, SessionOptions};
use sigil_image::spec::Compression;
use sigil_image::Limits;
use sigil_init::config::{Mode, SpkiPin};

/// Arguments of `sigil convert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input image: an OCI image layout (directory or tar), a docker/podman save
    /// archive, or a registry image `docker://REF` (pulled first; see
    /// docs/registry.md for credentials).
    #[arg(long, value_name = "PATH|docker://REF")]
    pub from: String,
    /// Which image of an input holding several (its ref name or RepoTag).
    #[arg(long, value_name = "NAME")]
    pub from_ref: Option<String>,
    /// Output image archive.
    #[arg(long, value_name = "PATH", required_unless_present = "dry_run")]
    pub to: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_name = "FORMAT", default_value = "oci-archive", value_parser = ["oci-archive", "docker-archive"])]
    pub format: String,
    /// Compression of the root layer (the sealed volume is stored uncompressed).
    /// Default none: an uncompressed layer is valid OCI, podman loads it, and
    /// converting stays close to the cost of copying the image; zstd (level 1,
    /// all cores) makes a smaller image for pushing, gzip is slowest.
    #[arg(long, value_name = "ALG", default_value = "none", value_parser = ["none", "zstd", "gzip"])]
    pub compression: String,
    /// Compression level (zstd default 1, gzip default 1).
    #[arg(long, value_name = "N")]
    pub compression_level: Option<i32>,
    /// Push the converted image (OCI archive) to this registry reference
    /// after writing it; it is also the image name in the session and chart
    /// unless --image-name is given.
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Platform to pick when --from is a multi-platform registry image.
    #[arg(long, value_name = "OS/ARCH", default_value = "linux/amd64")]
    pub platform: String,
    /// Registry options for --from docker://REF and --push.
    #[command(flatten)]
    pub registry: super::image::RegistryArgs,
    /// The program to run: an absolute path in the image (symlinks resolved in the image).
    /// Default: the first word of the image's ENTRYPOINT+CMD.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<String>,
    /// Encrypt this path of the image (repeatable).
    #[arg(long = "dir", value_name = "PATH")]
    pub dirs: Vec<String>,
    /// Leave this directory inside an encrypted path as is (repeatable).
    #[arg(long = "plain", value_name = "PATH")]
    pub plain: Vec<String>,
    /// Leave this file inside an encrypted path as is (repeatable).
    #[arg(long = "plain-file", value_name = "PATH")]
    pub plain_files: Vec<String>,
    /// Authenticate (integrity-protect, not encrypt) this path (repeatable).
    #[arg(long = "authenticate", value_name = "PATH")]
    pub authenticate: Vec<String>,
    /// Command of the service (shell words); default ENTRYPOINT+CMD of the image.
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// Environment variable of the service, K=V (repeatable; overrides the image's Env).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Session name (default: the output file name without extension).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Namespace of the session (the session is NAMESPACE/NAME).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Service name in the session (default: the session name).
    #[arg(long, value_name = "NAME")]
    pub service_name: Option<String>,
    /// Name of the output image (default localhost/<name>-sigil:latest).
    #[arg(long, value_name = "REF")]
    pub image_name: Option<String>,
    /// The launcher binary (static ELF). Default: env SIGIL_INIT_BINARY, else
    /// `sigil-init` next to this executable.
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,
    /// Default CAS address written to init.toml (the pod's SIGIL_CAS_ADDR overrides it).
    #[arg(long, value_name = "HOST:PORT", default_value = "sigil-cas:8081")]
    pub cas_addr: String,
    /// Pin of the CAS TLS key, sha256:<64 hex> (as printed by `sigil cas serve`).
    /// Default: the fingerprint remembered by `sigil cas trust`.
    #[arg(long, value_name = "PIN")]
    pub cas_pin: Option<String>,
    /// Default launcher mode written to init.toml.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = ["hw", "sim", "auto"])]
    pub mode: String,
    /// Where to write the session YAML (default: <to without .tar>.session.yaml).
    #[arg(long, value_name = "PATH")]
    pub session_file: Option<PathBuf>,
    /// Accept debug enclaves/TDs (the host can read their memory).
    #[arg(long)]
    pub allow_debug_mode: bool,
    /// Accept platforms needing TCB updates, software hardening or configuration
    /// (adds the tolerances and advisories listed in the output).
    #[arg(long)]
    pub allow_tcb_vulnerabilities: bool,
    /// Accept simulation attestation (no TEE). For development only.
    #[arg(long)]
    pub allow_simulation: bool,
    /// SGX MRENCLAVE of the image (when an enclave runtime signed it), 64 hex.
    #[arg(long, value_name = "HEX")]
    pub mrenclave: Option<String>,
    /// Upload the session to this CAS (needs --identity).
    #[arg(long, value_name = "URL", requires = "identity")]
    pub cas: Option<String>,
    /// Client identity directory for --cas.
    #[arg(long, value_name = "DIR")]
    pub identity: Option<PathBuf>,
    /// Write a Helm chart into this directory.
    #[arg(long, value_name = "DIR")]
    pub k8s_helm_output_dir: Option<PathBuf>,
    /// Workload type of the chart.
    #[arg(long, value_name = "KIND", default_value = "deployment", value_parser = ["deployment", "statefulset", "daemonset", "job"])]
    pub k8s_helm_workload: String,
    /// Chart value override key=value (repeatable), e.g. useSGXDevPlugin=disabled.
    #[arg(long = "k8s-helm-set", value_name = "KEY=VALUE")]
    pub k8s_helm_set: Vec<String>,
    /// Port to expose (repeatable; default: the image's ExposedPorts).
    #[arg(long = "k8s-helm-expose", value_name = "PORT")]
    pub k8s_helm_expose: Vec<u16>,
    /// Volume name:/path to mount (repeatable).
    #[arg(long = "k8s-helm-volume", value_name = "NAME:PATH")]
    pub k8s_helm_volume: Vec<String>,
    /// Image pull secret (repeatable).
    #[arg(long = "k8s-helm-image-pull-secret", value_name = "NAME")]
    pub k8s_helm_image_pull_secret: Vec<String>,
    /// Launcher log level in the chart.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Directory for the unpacked image while converting (default: next to
    /// the output). A memory file system such as /dev/shm keeps plaintext off
    /// disk and is faster; it needs RAM for the whole unpacked image.
    #[arg(long, value_name = "DIR", env = "SIGIL_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Print what would be done and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// More output.
    #[arg(short, long)]
    pub verbose: bool,
}

/// The progress bar (on a terminal) and, with `-v`, the time of each stage.
struct Bar {
    bar: Option<indicatif::ProgressBar>,
    /// The running stage and its start, when timing (`-v`).
    timing: Option<std::sync::Mutex<Option<(String, std::time::Instant)>>>,
}

impl Bar {
    /// Ends the running stage: with `-v`, prints its name and duration.
    fn end_stage(&self) {
        if let Some(t) = &self.timing {
            if let Some((name, start)) = t.lock().ok().and_then(|mut g| g.take()) {
                eprintln!("  stage {name:<10} {:.2} s", start.elapsed().as_secs_f64());
            }
        }
    }
}

impl Progress for Bar {
    fn stage(&self, name: &str, total: u64) {
        self.end_stage();
        if let Some(t) = &self.timing {
            if let Ok(mut g) = t.lock() {
                *g = Some((name.to_string(), std::time::Instant::now()));
            }
        }
        if let Some(b) = &self.bar {
            b.reset();
            b.set_message(name.to_string());
            if total > 0 {
                b.set_length(total);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
            } else {
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg:>10} {spinner} {bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
            }
        }
    }
    fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
}

fn find_launcher(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("SIGIL_INIT_BINARY") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the sigil executable")?;
    let p = exe.with_file_name("sigil-init");
    if p.is_file() {
        Ok(p)
    } else {
        bail!(
            "no launcher: pass --launcher PATH or set SIGIL_INIT_BINARY (scripts/build-launcher.sh builds it); {} does not exist",
            p.display()
        )
    }
}

fn split_kv(flag: &str, s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("{flag} {s}: expected KEY=VALUE"))?;
    if k.is_empty() {
        bail!("{flag} {s}: empty key");
    }
    Ok((k.to_string(), v.to_string()))
}

/// Writes `data` to `path` with mode 0600 via a temporary name in the same directory.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".sigil-session-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(&dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .mode(0o600)
        .open(tmp.path())?;
    f.write_all(data)?;
    f.sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow!("{}: {}", path.display(), e.error))?;
    Ok(())
}

/// One line: the library's errors already name the path and the cause, so
/// anyhow's "Caused by" chain would only repeat it.
fn flat(e: sigil_image::Error) -> anyhow::Error {
    anyhow!("{e}")
}

/// Runs `sigil convert`.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.push.is_some() && a.format == "docker-archive" {
        bail!("--push uploads an OCI archive; drop --format docker-archive");
    }
    let push_ref = match &a.push {
        Some(r) => Some(
            sigil_registry::parse_reference(r)
                .map_err(|e| anyhow!("--push: {e}"))?
                .whole(),
        ),
        None => None,
    };
    let to =
        a.to.clone()
            .unwrap_or_else(|| PathBuf::from("converted.tar"));
    // A registry image is pulled into a temporary OCI layout (removed when
    // this function returns) and converted from there.
    let mut _pulled: Option<tempfile::TempDir> = None;
    let from = if a.from.starts_with("docker://") {
        let (auth, ropts) = a.registry.resolve(&a.from, Some(&a.platform))?;
        let parent = match (&a.work_dir, to.parent()) {
            (Some(w), _) => w.clone(),
            (None, Some(p)) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".sigil-from-")
            .tempdir_in(&parent)
            .map_err(|e| anyhow!("{}: {e}", parent.display()))?;
        let dest = tmp.path().join("image");
        let p = sigil_registry::pull(&a.from, &dest, &auth, &ropts)
            .map_err(|e| anyhow!("--from {}: {e}", a.from))?;
        if a.verbose {
            eprintln!(
                "pulled {} ({}, {} layers, {} bytes)",
                p.reference, p.manifest_digest, p.layers, p.bytes
            );
        }
        _pulled = Some(tmp);
        dest
    } else {
        let from = PathBuf::from(&a.from);
        if !from.exists() {
            if a.from.contains(':') && a.from.contains('/') {
                bail!(
                    "--from {}: no such file; for a registry image write --from docker://{}",
                    a.from,
                    a.from
                );
            }
            bail!("--from {}: no such file or directory", a.from);
        }
        from
    };
    let stem = to
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "app".into());
    let base_name = a.name.clone().unwrap_or_else(|| helm::dns_label(&stem));
    let session_name = match &a.namespace {
        Some(ns) => format!("{ns}/{base_name}"),
        None => base_name.clone(),
    };
    let service = a.service_name.clone().unwrap_or_else(|| base_name.clone());
    let image_name = convert::image_ref(
        &a.image_name
            .clone()
            .or_else(|| push_ref.clone())
            .unwrap_or_else(|| format!("{}-sigil", helm::dns_label(&base_name))),
    );
    let cas_pin: SpkiPin = match &a.cas_pin {
        Some(pin) => pin
            .parse()
            .map_err(|e: String| anyhow!("--cas-pin {pin}: {e}"))?,
        None => trusted_cas_pin()?,
    };
    let mode: Mode = a.mode.parse().map_err(|e: String| anyhow!("--mode: {e}"))?;
    let mrenclave = match &a.mrenclave {
        None => None,
        Some(h) => {
            let mut m = [0u8; 32];
            hex::decode_to_slice(h, &mut m)
                .map_err(|_| anyhow!("--mrenclave {h}: expected 64 hex digits"))?;
            Some(m)
        }
    };
    let env: Vec<(String, String)> = a
        .env
        .iter()
        .map(|e| split_kv("--env", e))
        .collect::<anyhow::Result<_>>()?;
    let command = match &a.command {
        None => None,
        Some(c) => {
            let words = shell_words::split(c).map_err(|e| anyhow!("--command: {e}"))?;
            if words.is_empty() {
                bail!("--command is empty");
            }
            Some(words)
        }
    };
    let volumes: Vec<(String, String)> = a
        .k8s_helm_volume
        .iter()
        .map(|v| {
            v.split_once(':')
                .map(|(n, p)| (n.to_string(), p.to_string()))
                .ok_or_else(|| anyhow!("--k8s-helm-volume {v}: expected name:/path"))
        })
        .collect::<anyhow::Result<_>>()?;
    let (compression, level) = match a.compression.as_str() {
        "gzip" => (Compression::Gzip, a.compression_level.unwrap_or(1)),
        "none" => (Compression::None, 0),
        _ => (Compression::Zstd, a.compression_level.unwrap_or(1)),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let opts = ConvertOptions {
        from,
        from_ref: a.from_ref.clone(),
        to: to.clone(),
        format: if a.format == "docker-archive" {
            Format::DockerArchive
        } else {
            Format::OciArchive
        },
        compression: LayerCompression {
            kind: compression,
            level,
            threads,
        },
        image_name: image_name.clone(),
        binary: a.binary.clone(),
        encrypt: a.dirs.clone(),
        authenticate: a.authenticate.clone(),
        plain: a
            .plain
            .iter()
            .chain(a.plain_files.iter())
            .cloned()
            .collect(),
        launcher: find_launcher(a.launcher.clone())?,
        cas_addr: a.cas_addr.clone(),
        cas_pin,
        session: session_name.clone(),
        service: service.clone(),
        mode,
        volume_name: "fs".into(),
        limits: Limits::default(),
        seal_threads: None,
    };
    let session_file = a
        .session_file
        .clone()
        .unwrap_or_else(|| to.with_file_name(format!("{stem}.session.yaml")));
    let (repo, tag) = match image_name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (image_name.clone(), "latest".to_string()),
    };
    let mut chart = ChartOptions {
        name: base_name.clone(),
        image_repository: repo,
        image_tag: tag,
        workload: a
            .k8s_helm_workload
            .parse::<Workload>()
            .map_err(|e| anyhow!("--k8s-helm-workload: {e}"))?,
        cas_addr: a.cas_addr.clone(),
        config_id: format!("{session_name}/{service}"),
        mode: a.mode.clone(),
        log_level: a.log_level.clone(),
        ports: a.k8s_helm_expose.clone(),
        volumes,
        image_pull_secrets: a.k8s_helm_image_pull_secret.clone(),
        use_sgx_dev_plugin: true,
        sets: a.k8s_helm_set.clone(),
    };
    // Cheap checks before the heavy work: chart values and overrides.
    let mut vals = helm::values(&chart);
    for s in &chart.sets {
        helm::apply_set(&mut vals, s).map_err(flat)?;
    }
    if let Some(d) = &a.k8s_helm_output_dir {
        if std::fs::read_dir(d).is_ok_and(|mut r| r.next().is_some()) {
            bail!(
                "--k8s-helm-output-dir {}: exists and is not empty",
                d.display()
            );
        }
    }

    if a.dry_run {
        let plan = convert::plan(&opts).map_err(flat)?;
        println!("would convert {}", plan.source);
        println!(
            "  pinning the CAS key {} at {}",
            opts.cas_pin, opts.cas_addr
        );
        for l in &plan.layers {
            println!("  layer {l}");
        }
        println!(
            "  entrypoint {:?} cmd {:?}",
            plan.run.entrypoint, plan.run.cmd
        );
        println!("would encrypt {:?}, authenticate {:?} + the binary's shared libraries, leave plain {:?}", opts.encrypt, opts.authenticate, opts.plain);
        println!(
            "would write image {} ({}) as {}",
            to.display(),
            a.format,
            image_name
        );
        println!(
            "would write session {} ({session_name}, service {service})",
            session_file.display()
        );
        if let Some(d) = &a.k8s_helm_output_dir {
            println!(
                "would write Helm chart {} ({})",
                d.display(),
                a.k8s_helm_workload
            );
        }
        return Ok(());
    }

    let bar = Bar {
        bar: std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            b
        }),
        timing: a.verbose.then(|| std::sync::Mutex::new(None)),
    };
    let started = std::time::Instant::now();
    let conv = convert::convert_in(&opts, a.work_dir.as_deref(), &bar);
    if let Some(b) = &bar.bar {
        b.finish_and_clear();
    }
    bar.end_stage();
    let conv = conv.map_err(flat)?;
    if a.verbose {
        eprintln!(
            "  total            {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }
    let mut finish = || -> anyhow::Result<Vec<String>> {
        let (session, notes) = build_session(
            &conv,
            &SessionOptions {
                name: session_name.clone(),
                service: service.clone(),
                image: helm::dns_label(&base_name),
                command: command.clone(),
                env: env.clone(),
                allow_debug_mode: a.allow_debug_mode,
                allow_tcb_vulnerabilities: a.allow_tcb_vulnerabilities,
                allow_simulation: a.allow_simulation,
                mrenclave,
            },
        )
        .map_err(flat)?;
        write_private(&session_file, session.to_yaml().as_bytes())?;
        if let Some(d) = &a.k8s_helm_output_dir {
            if chart.ports.is_empty() {
                chart.ports = conv
                    .run
                    .exposed_ports
                    .iter()
                    .filter_map(|p| p.split('/').next()?.parse().ok())
                    .collect();
            }
            if let Err(e) = helm::write_chart(d, &chart) {
                let _ = std::fs::remove_file(&session_file);
                return Err(flat(e));
            }
        }
        Ok(notes)
    };
    let notes = match finish() {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&to);
            return Err(e);
        }
    };
    if let Some(r) = &a.push {
        // The outputs are complete and stay; only the upload can fail here.
        let (auth, ropts) = a.registry.resolve(r, None)?;
        let p = sigil_registry::push(&to, r, &auth, &ropts).map_err(|e| {
            anyhow!(
                "--push {r}: {e} (outputs written; push {} later with `sigil image push`)",
                to.display()
            )
        })?;
        println!(
            "pushed {}@{} ({} blobs uploaded, {} already there)",
            p.reference, p.digest, p.blobs_uploaded, p.blobs_skipped
        );
    }
    if let (Some(url), Some(id_dir)) = (&a.cas, &a.identity) {
        // The outputs are complete and stay; only the upload can fail here.
        // The CAS is the one whose key the image pins.
        let cas = super::cas::CasArgs {
            cas: Some(
                url.trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string(),
            ),
            cas_fingerprint: Some(sigil_client::Fingerprint(cas_pin.0)),
            identity: Some(id_dir.clone()),
        };
        let client = cas.connect().map_err(|e| {
            anyhow!(
                "--cas {url}: {e:#} (outputs written; upload {} later)",
                session_file.display()
            )
        })?;
        let yaml = std::fs::read_to_string(&session_file)?;
        let (w, created) = client
            .run(|c| c.create_or_update_session(&yaml))
            .map_err(|e| {
                anyhow!(
                    "--cas {url}: {e} (outputs written; upload {} later)",
                    session_file.display()
                )
            })?;
        println!(
            "uploaded    {} {} hash {}",
            w.name,
            if created { "created" } else { "updated" },
            w.hash
        );
    }
    println!("image       {} ({})", to.display(), conv.image_name);
    println!("measurement {}", hex::encode(conv.measurement));
    println!("binary      /{}", conv.binary.real);
    if let Some(v) = &conv.volume {
        println!(
            "volume      {} tag {} ({} paths)",
            v.name,
            v.tag,
            v.paths.len()
        );
    }
    println!(
        "session     {} ({session_name}, service {service})",
        session_file.display()
    );
    if let Some(d) = &a.k8s_helm_output_dir {
        println!("chart       {}", d.display());
    }
    for n in &notes {
        println!("security    {n}");
    }
    if a.verbose {
        for (p, r) in &conv.protected {
            println!("  {r:<13} {p}");
        }
        println!("  input       {} bytes of files", conv.input_bytes);
        println!(
            "  root layer  {}",
            if conv.streamed {
                "written while the input was read"
            } else {
                "written from the staged layers"
            }
        );
        println!("  digest      {}", conv.digest);
    }
    Ok(())
}

/// The pin remembered by `sigil cas trust`, so nobody copies it by hand.
fn trusted_cas_pin() -> anyhow::Result<SpkiPin> {
    let dir = sigil_client::config::config_dir()?;
    let trust = sigil_client::config::CasTrust::load(&dir)?.ok_or_else(|| {
        anyhow!(
            "no --cas-pin given and no trusted CAS in {}: run `sigil cas trust HOST:PORT --fingerprint sha256:...` or pass --cas-pin",
            dir.display()
        )
    })?;
    Ok(SpkiPin(trust.fingerprint.0))
}
