//! Building OCI images from host files and in-memory files, for tests, the
//! demo and benchmarks. Several layers, whiteouts, opaque directories and a
//! full image config are supported:
//!
//! ```no_run
//! use sigil_image::build::ImageBuilder;
//! ImageBuilder::new()
//!     .layer(|l| l.add_host_elf("/usr/bin/python3.11", "usr/bin/python3")
//!                 .add_host_dir("/usr/lib/python3.11", "usr/lib/python3.11")
//!                 .add_bytes("app/main.py", b"print('hi')\n", 0o644))
//!     .layer(|l| l.whiteout("usr/lib/python3.11/test"))
//!     .entrypoint(["/usr/bin/python3"]).cmd(["/app/main.py"])
//!     .env("PORT", "8080").working_dir("/app").expose("8080/tcp")
//!     .write_oci_archive("/tmp/app.tar".as_ref())
//!     .unwrap();
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::archive::{Format, ImageWriter, LayerCompression};
use crate::error::IoContext;
use crate::flatten::normalize;
use crate::spec::Compression;
use crate::{elf, Error, Result};

#[derive(Debug, Clone)]
enum Entry {
    HostFile {
        src: PathBuf,
        dst: String,
    },
    HostDir {
        src: PathBuf,
        dst: String,
    },
    HostElf {
        src: PathBuf,
        dst: String,
    },
    Bytes {
        dst: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        dst: String,
        mode: u32,
    },
    Symlink {
        dst: String,
        target: String,
    },
    Whiteout(String),
    Opaque(String),
}

/// The entries of one layer, in order.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: Vec<Entry>,
    raw: Option<Vec<u8>>,
}

impl LayerBuilder {
    /// Copies a host file (following host symlinks) to `dst` in the image,
    /// keeping its permission bits.
    pub fn add_host_file(mut self, src: impl Into<PathBuf>, dst: &str) -> Self {
        self.entries.push(Entry::HostFile {
            src: src.into(),
            dst: dst.to_string(),
        });
        self
    }

    /// Copies a host directory tree to `dst` (symlinks kept as symlinks).
    pub fn add_host_dir(mut self, src: impl Into<PathBuf>, dst: &str) -> Self {
        self.entries.push(Entry::HostDir {
            src: src.into(),
            dst: dst.to_string(),
        });
        self
    }

    /// Copies a host ELF executable to `dst` together with its dynamic loader
    /// and every shared library it needs (transitively, from `DT_NEEDED`),
    /// each at the host path it was found at, so it runs in the image.
    pub fn add_host_elf(mut self, src: impl Into<PathBuf>, dst: &str) -> Self {
        self.entries.push(Entry::HostElf {
            src: src.into(),
            dst: dst.to_string(),
        });
        self
    }

    /// Adds an in-memory file.
    pub fn add_bytes(mut self, dst: &str, data: &[u8], mode: u32) -> Self {
        self.entries.push(Entry::Bytes {
            dst: dst.to_string(),
            data: data.to_vec(),
            mode,
        });
        self
    }

    /// Adds a directory.
    pub fn add_dir(mut self, dst: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir {
            dst: dst.to_string(),
            mode,
        });
        self
    }

    /// Adds a symlink `dst -> target` (target verbatim).
    pub fn add_symlink(mut self, dst: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            dst: dst.to_string(),
            target: target.to_string(),
        });
        self
    }

    /// Deletes `path` of lower layers (a `.wh.` whiteout entry).
    pub fn whiteout(mut self, path: &str) -> Self {
        self.entries.push(Entry::Whiteout(path.to_string()));
        self
    }

    /// Hides everything lower layers put in `dir` (an opaque whiteout).
    pub fn opaque(mut self, dir: &str) -> Self {
        self.entries.push(Entry::Opaque(dir.to_string()));
        self
    }
}

/// Builds an image; see the module documentation.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    layers: Vec<LayerBuilder>,
    config: BTreeMap<String, serde_json::Value>,
    env: Vec<String>,
    labels: BTreeMap<String, String>,
    ports: BTreeSet<String>,
    compression: LayerCompression,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// An empty image (gzip layers, the most common kind in the wild).
    pub fn new() -> Self {
        ImageBuilder {
            layers: Vec::new(),
            config: BTreeMap::new(),
            env: Vec::new(),
            labels: BTreeMap::new(),
            ports: BTreeSet::new(),
            compression: LayerCompression {
                kind: Compression::Gzip,
                level: 1,
                threads: 0,
            },
        }
    }

    /// Adds a layer built by `f`.
    pub fn layer(mut self, f: impl FnOnce(LayerBuilder) -> LayerBuilder) -> Self {
        self.layers.push(f(LayerBuilder::default()));
        self
    }

    /// Adds a layer whose uncompressed tar is given verbatim (for tests with
    /// hostile or unusual layers).
    pub fn raw_layer(mut self, tar_bytes: Vec<u8>) -> Self {
        self.layers.push(LayerBuilder {
            entries: Vec::new(),
            raw: Some(tar_bytes),
        });
        self
    }

    /// Layer compression (default gzip level 1).
    pub fn compression(mut self, c: LayerCompression) -> Self {
        self.compression = c;
        self
    }

    fn strings<I: IntoIterator<Item = S>, S: Into<String>>(v: I) -> serde_json::Value {
        serde_json::Value::Array(
            v.into_iter()
                .map(|s| serde_json::Value::String(s.into()))
                .collect(),
        )
    }

    /// `Entrypoint`.
    pub fn entrypoint<I: IntoIterator<Item = S>, S: Into<String>>(mut self, v: I) -> Self {
        self.config.insert("Entrypoint".into(), Self::strings(v));
        self
    }

    /// `Cmd`.
    pub fn cmd<I: IntoIterator<Item = S>, S: Into<String>>(mut self, v: I) -> Self {
        self.config.insert("Cmd".into(), Self::strings(v));
        self
    }

    /// Adds `K=V` to `Env`.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push(format!("{k}={v}"));
        self
    }

    /// `WorkingDir`.
    pub fn working_dir(mut self, d: &str) -> Self {
        self.config.insert("WorkingDir".into(), d.into());
        self
    }

    /// `User`.
    pub fn user(mut self, u: &str) -> Self {
        self.config.insert("User".into(), u.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    /// Adds an exposed port (`8080/tcp`).
    pub fn expose(mut self, port: &str) -> Self {
        self.ports.insert(port.into());
        self
    }

    fn config_json(&self) -> serde_json::Value {
        let mut c = serde_json::Map::new();
        for (k, v) in &self.config {
            c.insert(k.clone(), v.clone());
        }
        if !self.env.is_empty() {
            c.insert("Env".into(), Self::strings(self.env.clone()));
        }
        if !self.labels.is_empty() {
            c.insert("Labels".into(), serde_json::json!(self.labels));
        }
        if !self.ports.is_empty() {
            let p: serde_json::Map<String, serde_json::Value> = self
                .ports
                .iter()
                .map(|p| (p.clone(), serde_json::json!({})))
                .collect();
            c.insert("ExposedPorts".into(), serde_json::Value::Object(p));
        }
        serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": c,
            "rootfs": {"type": "layers", "diff_ids": []},
        })
    }

    fn write(&self, dest: &Path, format: Format, name: &str) -> Result<()> {
        let mut w = ImageWriter::create(dest, format)?;
        for layer in &self.layers {
            match &layer.raw {
                Some(raw) => w.add_raw_layer(self.compression, raw)?,
                None => w.add_layer(self.compression, |t| write_layer(t, layer))?,
            };
        }
        w.finish(self.config_json(), name)?;
        Ok(())
    }

    /// Writes an OCI archive named `localhost/sigil-test:latest`.
    pub fn write_oci_archive(&self, dest: &Path) -> Result<()> {
        self.write(dest, Format::OciArchive, "localhost/sigil-test:latest")
    }

    /// Writes an OCI archive with the given reference name.
    pub fn write_oci_archive_named(&self, dest: &Path, name: &str) -> Result<()> {
        self.write(dest, Format::OciArchive, name)
    }

    /// Writes a docker-archive (like `docker save`).
    pub fn write_docker_archive(&self, dest: &Path, name: &str) -> Result<()> {
        self.write(dest, Format::DockerArchive, name)
    }

    /// Writes an OCI image layout directory (`dest` must not exist).
    pub fn write_oci_dir(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(Error::Usage(format!("{} already exists", dest.display())));
        }
        let parent = dest.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".sigil-build-")
            .tempdir_in(parent)
            .at(parent)?;
        let ar = tmp.path().join("image.tar");
        self.write_oci_archive(&ar)?;
        let out = tmp.path().join("layout");
        fs::create_dir(&out).at(&out)?;
        let f = File::open(&ar).at(&ar)?;
        tar::Archive::new(f).unpack(&out).at(&out)?;
        fs::rename(&out, dest).at(dest)
    }
}

fn mode_of(m: &fs::Metadata) -> u32 {
    m.permissions().mode() & 0o7777
}

fn header(et: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(et);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

struct LayerState<'a, W: io::Write> {
    t: &'a mut tar::Builder<W>,
    dirs: HashSet<String>,
}

impl<W: io::Write> LayerState<'_, W> {
    fn werr(path: &str) -> impl Fn(io::Error) -> Error + '_ {
        move |e| Error::image(format!("building layer entry {path}: {e}"))
    }

    fn norm(path: &str) -> Result<String> {
        normalize(path)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::Usage(format!("bad image path {path:?}")))
    }

    fn parents(&mut self, path: &str) -> Result<()> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let anc = path[..end + i].to_string();
            if self.dirs.insert(anc.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                self.t
                    .append_data(&mut h, format!("{anc}/"), io::empty())
                    .map_err(Self::werr(&anc))?;
            }
            end += i + 1;
        }
        Ok(())
    }

    fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        self.parents(path)?;
        if self.dirs.insert(path.to_string()) {
            let mut h = header(tar::EntryType::Directory, mode, 0);
            self.t
                .append_data(&mut h, format!("{path}/"), io::empty())
                .map_err(Self::werr(path))?;
        }
        Ok(())
    }

    fn file(&mut self, path: &str, src: &Path) -> Result<()> {
        self.parents(path)?;
        let f = File::open(src).at(src)?;
        let m = f.metadata().at(src)?;
        let mut h = header(tar::EntryType::Regular, mode_of(&m), m.len());
        self.t
            .append_data(&mut h, path, f)
            .map_err(Self::werr(path))
    }

    fn bytes(&mut self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        self.parents(path)?;
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        self.t
            .append_data(&mut h, path, data)
            .map_err(Self::werr(path))
    }

    fn symlink(&mut self, path: &str, target: &Path) -> Result<()> {
        self.parents(path)?;
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        self.t
            .append_link(&mut h, path, target)
            .map_err(Self::werr(path))
    }

    fn host_dir(&mut self, src: &Path, dst: &str) -> Result<()> {
        let m = fs::metadata(src).at(src)?;
        self.dir(dst, mode_of(&m))?;
        for n in crate::archive::sorted_names(src)? {
            let Some(name) = n.to_str() else { continue };
            let p = src.join(name);
            let d = format!("{dst}/{name}");
            let m = fs::symlink_metadata(&p).at(&p)?;
            if m.file_type().is_symlink() {
                let t = fs::read_link(&p).at(&p)?;
                self.symlink(&d, &t)?;
            } else if m.is_dir() {
                self.host_dir(&p, &d)?;
            } else if m.is_file() {
                self.file(&d, &p)?;
            }
        }
        Ok(())
    }

    fn host_elf(&mut self, src: &Path, dst: &str) -> Result<()> {
        self.file(dst, src)?;
        for (host, path) in host_elf_closure(src)? {
            self.file(&path, &host)?;
        }
        Ok(())
    }
}

/// The dynamic loader and shared libraries a host ELF file needs, as
/// (host file, path in the image) pairs, found like `ld.so` does on the host.
pub fn host_elf_closure(src: &Path) -> Result<Vec<(PathBuf, String)>> {
    let parse = |p: &Path| -> Result<elf::ElfInfo> {
        let data = fs::read(p).at(p)?;
        elf::parse(&data).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let first = parse(src)?;
    if let Some(i) = &first.interp {
        out.push((PathBuf::from(i), i.trim_start_matches('/').to_string()));
    }
    let mut queue = vec![(src.to_path_buf(), first)];
    while let Some((obj, info)) = queue.pop() {
        let origin = obj.parent().unwrap_or(Path::new("/")).to_path_buf();
        for name in &info.needed {
            if !seen.insert(name.clone()) {
                continue;
            }
            let found = info
                .search_dirs(&origin.to_string_lossy())
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file());
            let Some(lib) = found else {
                return Err(Error::Usage(format!(
                    "{}: shared library {name} not found on this host",
                    src.display()
                )));
            };
            let info = parse(&lib)?;
            out.push((
                lib.clone(),
                lib.to_string_lossy().trim_start_matches('/').to_string(),
            ));
            queue.push((lib, info));
        }
    }
    Ok(out)
}

fn write_layer<W: io::Write>(t: &mut tar::Builder<W>, layer: &LayerBuilder) -> Result<()> {
    t.mode(tar::HeaderMode::Complete);
    let mut st = LayerState {
        t,
        dirs: HashSet::new(),
    };
    for e in &layer.entries {
        match e {
            Entry::HostFile { src, dst } => st.file(&LayerState::<W>::norm(dst)?, src)?,
            Entry::HostDir { src, dst } => st.host_dir(src, &LayerState::<W>::norm(dst)?)?,
            Entry::HostElf { src, dst } => st.host_elf(src, &LayerState::<W>::norm(dst)?)?,
            Entry::Bytes { dst, data, mode } => {
                st.bytes(&LayerState::<W>::norm(dst)?, data, *mode)?
            }
            Entry::Dir { dst, mode } => st.dir(&LayerState::<W>::norm(dst)?, *mode)?,
            Entry::Symlink { dst, target } => {
                st.symlink(&LayerState::<W>::norm(dst)?, Path::new(target))?
            }
            Entry::Whiteout(p) => {
                let p = LayerState::<W>::norm(p)?;
                let (dir, base) = p.rsplit_once('/').unwrap_or(("", &p));
                let wh = if dir.is_empty() {
                    format!(".wh.{base}")
                } else {
                    format!("{dir}/.wh.{base}")
                };
                st.bytes(&wh, b"", 0o644)?;
            }
            Entry::Opaque(d) => {
                let d = LayerState::<W>::norm(d)?;
                st.dir(&d, 0o755)?;
                st.bytes(&format!("{d}/.wh..wh..opq"), b"", 0o644)?;
            }
        }
    }
    Ok(())
}
