//! Applying the CAS's answer: memory-only directory check, volumes opened
//! into memory (rollback refused), injected files, environment, arguments,
//! working directory; then `exec` of the verified binary bytes.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sigil_client::{ResolvedFile, ResolvedService};
use zeroize::Zeroize;

use crate::config::InitConfig;

/// `statfs` magic numbers of memory-backed file systems.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;
/// ramfs.
pub const RAMFS_MAGIC: i64 = 0x8584_58f6u32 as i64;
/// Largest single injected file.
pub const MAX_INJECTED_FILE: usize = 4 * 1024 * 1024;
/// Most injected files.
pub const MAX_INJECTED_FILES: usize = 256;

/// Why the configuration could not be applied. Messages never contain
/// secret values (only names and paths).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The memory directory is on a disk-backed file system.
    #[error("{dir} is not memory-backed (file system type {fstype:#x}); refusing to write secrets there. Give the container a tmpfs there (podman: --tmpfs {dir}; Kubernetes: an emptyDir with medium: Memory)")]
    NotMemoryBacked {
        /// The directory.
        dir: String,
        /// Its `f_type`.
        fstype: i64,
    },
    /// The volume the CAS describes is not the one in the image.
    #[error("volume {name}: the CAS expects tag {cas_tag} but this image carries {image_tag} (an older or different volume: rollback refused)")]
    Rollback {
        /// Volume name.
        name: String,
        /// Tag the CAS holds.
        cas_tag: String,
        /// Tag in init.toml.
        image_tag: String,
    },
    /// The session lacks what the image needs.
    #[error("{0}")]
    Missing(String),
    /// Opening a volume failed (tampered, wrong key, ...).
    #[error("volume {name}: {source}")]
    Volume {
        /// Volume name.
        name: String,
        /// The sigil-fs error.
        source: sigil_fs::FsError,
    },
    /// Something in the CAS's answer is not acceptable.
    #[error("invalid configuration from the CAS: {0}")]
    Invalid(String),
    /// File system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// Refuses unless `dir` is on tmpfs or ramfs.
pub fn check_memory_backed(dir: &Path) -> Result<(), ApplyError> {
    let c = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| ApplyError::Invalid("memory_dir contains NUL".into()))?;
    // SAFETY: c is NUL-terminated and st a valid out-parameter for the call.
    ensure_memory_fs("statfs", dir, |st| unsafe { libc::statfs(c.as_ptr(), st) })
}

/// Refuses unless the open file `f` lives on tmpfs or ramfs. Checked on
/// the descriptor itself, so a directory swapped for a symlink to disk
/// between the directory check and the write is caught too.
fn check_fd_memory_backed(f: &fs::File, path: &Path) -> Result<(), ApplyError> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid fd, and st a valid out-parameter for the call.
    ensure_memory_fs("fstatfs", path, |st| unsafe {
        libc::fstatfs(f.as_raw_fd(), st)
    })
}

/// The one rule both checks share: tmpfs or ramfs, nothing else. `stat`
/// is the `statfs`/`fstatfs` call (named `op` in errors) that fills in the
/// file system of `path`.
fn ensure_memory_fs(
    op: &'static str,
    path: &Path,
    stat: impl FnOnce(&mut libc::statfs) -> libc::c_int,
) -> Result<(), ApplyError> {
    // SAFETY: zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if stat(&mut st) != 0 {
        return Err(io_err(op, path)(std::io::Error::last_os_error()));
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by libc
    let t = st.f_type as i64;
    if t == TMPFS_MAGIC || t == RAMFS_MAGIC {
        Ok(())
    } else {
        Err(ApplyError::NotMemoryBacked {
            dir: path.display().to_string(),
            fstype: t,
        })
    }
}

/// Everything `execve` needs. Secret-bearing: argv and env are wiped on drop.
pub struct Launch {
    /// Arguments (argv[0] included).
    pub argv: Vec<CString>,
    /// Environment, `NAME=value`.
    pub env: Vec<CString>,
    /// Working directory.
    pub pwd: Option<PathBuf>,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .env
            .iter()
            .map(|e| {
                let b = e.as_bytes();
                let n = b.iter().position(|&c| c == b'=').unwrap_or(b.len());
                String::from_utf8_lossy(&b[..n]).into_owned()
            })
            .collect();
        f.debug_struct("Launch")
            .field("argc", &self.argv.len())
            .field("env_names", &names)
            .field("pwd", &self.pwd)
            .finish()
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        for c in self.argv.drain(..).chain(self.env.drain(..)) {
            let mut v = c.into_bytes();
            v.zeroize();
        }
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn cstring(what: &str, s: &str) -> Result<CString, ApplyError> {
    CString::new(s.as_bytes())
        .map_err(|_| ApplyError::Invalid(format!("{what} contains a NUL byte")))
}

/// Absolute and normalised (no `.`, `..` or empty components).
fn check_abs(what: &str, p: &str) -> Result<(), ApplyError> {
    if !p.starts_with('/') || p.len() > 4096 || p.contains('\0') {
        return Err(ApplyError::Invalid(format!(
            "{what} {p:?} is not an absolute path"
        )));
    }
    if p != "/"
        && p[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(ApplyError::Invalid(format!(
            "{what} {p:?} is not normalised"
        )));
    }
    Ok(())
}

/// Builds argv, environment and working directory. The environment is
/// exactly the session's, plus the host variables init.toml allows to pass
/// through (the session wins on conflicts).
pub fn build_launch(
    cfg: &InitConfig,
    svc: &ResolvedService,
    host_env: impl Fn(&str) -> Option<String>,
) -> Result<Launch, ApplyError> {
    let mut env: BTreeMap<&str, String> = BTreeMap::new();
    for name in &cfg.allow_env_passthrough {
        if let Some(v) = host_env(name) {
            env.insert(name, v);
        }
    }
    for (k, v) in &svc.environment {
        if !is_env_name(k) {
            return Err(ApplyError::Invalid(format!(
                "environment variable name {k:?} is not valid"
            )));
        }
        env.insert(k, v.clone());
    }
    let mut envs = Vec::with_capacity(env.len());
    for (k, mut v) in env {
        let mut kv = format!("{k}={v}");
        v.zeroize();
        let c = CString::new(kv.as_bytes()).map_err(|_| {
            ApplyError::Invalid(format!(
                "value of environment variable {k} contains a NUL byte"
            ))
        });
        kv.zeroize();
        envs.push(c?);
    }
    let mut argv = Vec::new();
    if svc.command.is_empty() {
        argv.push(cstring("binary", &cfg.binary)?);
    }
    for (i, a) in svc.command.iter().enumerate() {
        argv.push(cstring(&format!("argument {i}"), a)?);
    }
    let pwd = match &svc.pwd {
        Some(p) if !p.is_empty() => {
            check_abs("working directory", p)?;
            Some(PathBuf::from(p))
        }
        _ => None,
    };
    Ok(Launch {
        argv,
        env: envs,
        pwd,
    })
}

/// Creates `dir` (and parents) with mode 0755 if missing.
fn mkdirs(dir: &Path) -> Result<(), ApplyError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io_err("create directory", dir))
}

/// Makes `link` a symlink to `target`, replacing nothing but an empty
/// directory or an existing symlink (conversion removed protected paths;
/// anything else there means the image is not what was converted).
fn place_symlink(target: &Path, link: &Path) -> Result<(), ApplyError> {
    if let Some(parent) = link.parent() {
        mkdirs(parent)?;
    }
    match fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => fs::remove_file(link).map_err(io_err("remove", link))?,
        Ok(m) if m.is_dir() => fs::remove_dir(link).map_err(|_| {
            ApplyError::Invalid(format!(
                "{} exists in the image and is not empty; a protected path must have been removed by sigil convert",
                link.display()
            ))
        })?,
        Ok(_) => {
            return Err(ApplyError::Invalid(format!(
                "{} exists in the image as a file; refusing to shadow it",
                link.display()
            )))
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, link).map_err(io_err("symlink", link))
}

/// Opens every volume of init.toml with the key and tag from the CAS into
/// `memory_dir/volumes/<name>` and links each restored path into it.
pub fn open_volumes(
    cfg: &InitConfig,
    svc: &ResolvedService,
    root: &Path,
) -> Result<Vec<String>, ApplyError> {
    let mem = rooted(root, &cfg.memory_dir);
    let mut opened = Vec::new();
    for v in &cfg.volumes {
        let rv = svc
            .volumes
            .iter()
            .find(|r| r.name == v.name)
            .ok_or_else(|| {
                ApplyError::Missing(format!(
                    "the session gives no key for volume {:?} of this image",
                    v.name
                ))
            })?;
        let (Some(key_hex), Some(tag_hex)) = (rv.key.as_deref(), rv.tag.as_deref()) else {
            return Err(ApplyError::Missing(format!(
                "the session has no key or no tag for volume {:?}",
                v.name
            )));
        };
        // The image's tag is measured (it is in init.toml); the CAS's tag is
        // the latest the session knows. Both must agree, else the image
        // carries an older (or different) volume than the session expects.
        if !tag_hex.eq_ignore_ascii_case(&v.tag) {
            return Err(ApplyError::Rollback {
                name: v.name.clone(),
                cas_tag: tag_hex.to_string(),
                image_tag: v.tag.clone(),
            });
        }
        let key = sigil_fs::VolumeKey::from_hex(key_hex).map_err(|source| ApplyError::Volume {
            name: v.name.clone(),
            source,
        })?;
        let mut tag = [0u8; 32];
        hex::decode_to_slice(tag_hex, &mut tag).map_err(|_| {
            ApplyError::Invalid(format!("tag of volume {:?} is not 64 hex digits", v.name))
        })?;
        let dst = mem.join("volumes").join(&v.name);
        mkdirs(&mem.join("volumes"))?;
        // statfs follows symlinks: a volumes directory redirected to disk
        // is refused before any plaintext is written.
        check_memory_backed(&mem.join("volumes"))?;
        sigil_fs::open(
            &rooted(root, &v.sealed_dir),
            &dst,
            &key,
            &sigil_fs::VolumeTag(tag),
        )
        .map_err(|source| ApplyError::Volume {
            name: v.name.clone(),
            source,
        })?;
        for p in &v.paths {
            // The volume holds the paths relative to the image root.
            let target = dst.join(p.trim_start_matches('/'));
            let target_in_image = Path::new(&cfg.memory_dir)
                .join("volumes")
                .join(&v.name)
                .join(p.trim_start_matches('/'));
            if fs::symlink_metadata(&target).is_err() {
                return Err(ApplyError::Invalid(format!(
                    "volume {:?} does not contain {p}",
                    v.name
                )));
            }
            place_symlink(&target_in_image, &rooted(root, p))?;
        }
        opened.push(v.name.clone());
    }
    Ok(opened)
}

/// `root` + absolute `p` (root is `/` in production, a tempdir in tests).
pub fn rooted(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

/// Writes the injected files. A file whose path lies inside the memory
/// directory is written there; any other path gets its content in
/// `memory_dir/files/<path>` and a symlink at the path, so secrets never
/// touch a disk-backed file system.
pub fn write_injected_files(
    cfg: &InitConfig,
    files: &[ResolvedFile],
    root: &Path,
) -> Result<usize, ApplyError> {
    if files.len() > MAX_INJECTED_FILES {
        return Err(ApplyError::Invalid(format!(
            "more than {MAX_INJECTED_FILES} injected files"
        )));
    }
    let mem_abs = cfg.memory_dir.as_str();
    for f in files {
        check_abs("injected file", &f.path)?;
        if f.content.len() > MAX_INJECTED_FILE {
            return Err(ApplyError::Invalid(format!(
                "injected file {} is larger than {MAX_INJECTED_FILE} bytes",
                f.path
            )));
        }
        if f.mode & !0o7777 != 0 || f.mode & 0o6000 != 0 {
            return Err(ApplyError::Invalid(format!(
                "injected file {} has mode {:o}; setuid/setgid and file-type bits are not allowed",
                f.path, f.mode
            )));
        }
        let inside =
            f.path.starts_with(mem_abs) && f.path.as_bytes().get(mem_abs.len()) == Some(&b'/');
        let (real, link) = if inside {
            (rooted(root, &f.path), None)
        } else {
            let rel = format!("{}/files{}", mem_abs, f.path);
            (
                rooted(root, &rel),
                Some((PathBuf::from(rel), rooted(root, &f.path))),
            )
        };
        if let Some(parent) = real.parent() {
            mkdirs(parent)?;
        }
        if fs::symlink_metadata(&real).is_ok() {
            fs::remove_file(&real).map_err(io_err("replace", &real))?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(f.mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&real)
            .map_err(io_err("create", &real))?;
        if let Err(e) = check_fd_memory_backed(&out, &real) {
            drop(out);
            let _ = fs::remove_file(&real);
            return Err(e);
        }
        out.write_all(&f.content).map_err(io_err("write", &real))?;
        // create_new applied the umask; set the session's mode exactly.
        fs::set_permissions(&real, std::os::unix::fs::PermissionsExt::from_mode(f.mode))
            .map_err(io_err("chmod", &real))?;
        if let Some((target, link)) = link {
            place_symlink(&target, &link)?;
        }
    }
    Ok(files.len())
}

/// Why exec failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The binary is not an ELF executable.
    #[error("{0}")]
    NotElf(String),
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        /// Which.
        op: &'static str,
        /// errno.
        source: std::io::Error,
    },
}

fn sys(op: &'static str) -> ExecError {
    ExecError::Sys {
        op,
        source: std::io::Error::last_os_error(),
    }
}

/// Copies the verified bytes into a sealed memfd (no one can change them
/// after the measurement), and returns the fd.
pub fn sealed_memfd(bytes: &[u8]) -> Result<std::os::fd::OwnedFd, ExecError> {
    use std::os::fd::FromRawFd;
    let name = c"sigil-app";
    // SAFETY: valid NUL-terminated name.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(sys("memfd_create"));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut file = fs::File::from(owned);
    file.write_all(bytes).map_err(|source| ExecError::Sys {
        op: "write memfd",
        source,
    })?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on our own fd.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(sys("seal memfd"));
    }
    Ok(file.into())
}

/// Checks the bytes are an ELF executable: a `#!` script would have its
/// interpreter loaded by path, outside the measurement.
pub fn check_elf(binary: &str, bytes: &[u8]) -> Result<(), ExecError> {
    if bytes.starts_with(b"#!") {
        return Err(ExecError::NotElf(format!(
            "{binary} is a script; its interpreter would not be measured. Set binary in init.toml to the interpreter (e.g. /usr/bin/python3.11) and put the script in the command"
        )));
    }
    if !bytes.starts_with(b"\x7fELF") {
        return Err(ExecError::NotElf(format!(
            "{binary} is not an ELF executable"
        )));
    }
    Ok(())
}

/// Replaces this process with the verified binary: `fexecve` of a sealed
/// memfd holding exactly the measured bytes. Returns only on failure.
pub fn exec_verified(binary: &str, bytes: &[u8], launch: &Launch) -> ExecError {
    if let Err(e) = check_elf(binary, bytes) {
        return e;
    }
    let fd = match sealed_memfd(bytes) {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    if let Some(pwd) = &launch.pwd {
        if let Err(source) = std::env::set_current_dir(pwd) {
            return ExecError::Sys {
                op: "chdir to the working directory",
                source,
            };
        }
    }
    let mut argv: Vec<*const libc::c_char> = launch.argv.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = launch.env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    use std::os::fd::AsRawFd;
    // SAFETY: argv/envp are NUL-terminated arrays of valid C strings that
    // outlive the call; fd is a valid sealed memfd.
    unsafe { libc::fexecve(fd.as_raw_fd(), argv.as_ptr(), envp.as_ptr()) };
    sys("fexecve")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigId, InitConfig, Mode, SpkiPin, VolumeSpec};
    use sigil_client::ResolvedVolume;

    fn cfg(volumes: Vec<VolumeSpec>) -> InitConfig {
        InitConfig {
            version: 1,
            cas_addr: "127.0.0.1:1".into(),
            cas_fingerprint: SpkiPin([0; 32]),
            config_id: ConfigId {
                session: "s".into(),
                service: "web".into(),
            },
            binary: "/usr/bin/python3".into(),
            volumes,
            memory_dir: "/run/sigil".into(),
            allow_env_passthrough: vec!["TZ".into(), "LANG".into()],
            mode: Mode::Sim,
        }
    }

    fn svc() -> ResolvedService {
        ResolvedService {
            session: "s".into(),
            session_hash: "00".repeat(32),
            service: "web".into(),
            command: vec![
                "python3".into(),
                "/app/main.py".into(),
                "--token=t0p".into(),
            ],
            environment: [
                ("API_KEY".to_string(), "k3y".to_string()),
                ("TZ".to_string(), "UTC".to_string()),
            ]
            .into(),
            pwd: Some("/app".into()),
            injection_files: vec![],
            volumes: vec![],
        }
    }

    #[test]
    fn memory_check_accepts_tmpfs_and_refuses_disk() {
        check_memory_backed(Path::new("/dev/shm")).unwrap();
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let e = check_memory_backed(d.path()).unwrap_err();
        assert!(matches!(e, ApplyError::NotMemoryBacked { .. }), "{e}");
        assert!(e.to_string().contains("--tmpfs"), "{e}");
        assert!(check_memory_backed(Path::new("/nonexistent/x")).is_err());
    }

    #[test]
    fn environment_is_session_plus_allowed_passthrough_only() {
        let c = cfg(vec![]);
        let l = build_launch(&c, &svc(), |k| match k {
            "TZ" => Some("Europe/Berlin".into()),
            "LANG" => Some("C.UTF-8".into()),
            "AWS_SECRET" => Some("leak".into()),
            _ => None,
        })
        .unwrap();
        let env: Vec<String> = l
            .env
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        assert_eq!(env, vec!["API_KEY=k3y", "LANG=C.UTF-8", "TZ=UTC"]);
        let argv: Vec<&str> = l.argv.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(argv, ["python3", "/app/main.py", "--token=t0p"]);
        assert_eq!(l.pwd.as_deref(), Some(Path::new("/app")));
        let dbg = format!("{l:?}");
        assert!(!dbg.contains("k3y") && !dbg.contains("t0p"), "{dbg}");

        let mut s = svc();
        s.command.clear();
        let l = build_launch(&c, &s, |_| None).unwrap();
        assert_eq!(l.argv[0].to_str().unwrap(), "/usr/bin/python3");
        let mut s = svc();
        s.environment.insert("BAD=NAME".into(), "x".into());
        assert!(build_launch(&c, &s, |_| None).is_err());
        let mut s = svc();
        s.command.push("a\0b".into());
        assert!(build_launch(&c, &s, |_| None)
            .unwrap_err()
            .to_string()
            .contains("argument 3"));
        let mut s = svc();
        s.pwd = Some("app".into());
        assert!(build_launch(&c, &s, |_| None).is_err());
    }

    #[test]
    fn injected_files_go_to_memory_with_their_mode() {
        let root = tempfile::tempdir_in("/dev/shm").unwrap();
        let c = cfg(vec![]);
        let files = vec![
            ResolvedFile {
                path: "/run/sigil/secret.txt".into(),
                content: b"s3cret".to_vec(),
                mode: 0o400,
            },
            ResolvedFile {
                path: "/etc/app/config.ini".into(),
                content: b"[db]\npass=x".to_vec(),
                mode: 0o640,
            },
        ];
        fs::create_dir_all(root.path().join("etc/app")).unwrap();
        fs::write(root.path().join("etc/app/config.ini"), "old").unwrap();
        // an existing file outside the memory dir is not silently shadowed
        let e = write_injected_files(&c, &files, root.path()).unwrap_err();
        assert!(e.to_string().contains("refusing to shadow"), "{e}");
        fs::remove_file(root.path().join("etc/app/config.ini")).unwrap();
        assert_eq!(write_injected_files(&c, &files, root.path()).unwrap(), 2);
        use std::os::unix::fs::PermissionsExt;
        let p = root.path().join("run/sigil/secret.txt");
        assert_eq!(fs::read(&p).unwrap(), b"s3cret");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o400
        );
        let link = root.path().join("etc/app/config.ini");
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("/run/sigil/files/etc/app/config.ini")
        );
        let real = root.path().join("run/sigil/files/etc/app/config.ini");
        assert_eq!(fs::read(&real).unwrap(), b"[db]\npass=x");
        assert_eq!(
            fs::metadata(&real).unwrap().permissions().mode() & 0o7777,
            0o640
        );

        for (path, mode, want) in [
            ("rel/x", 0o600, "absolute"),
            ("/run/../etc/x", 0o600, "normalised"),
            ("/run/sigil/x", 0o4755, "setuid"),
        ] {
            let f = vec![ResolvedFile {
                path: path.into(),
                content: vec![],
                mode,
            }];
            let e = write_injected_files(&c, &f, root.path())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{path}: {e}");
        }
    }

    #[test]
    fn secrets_never_follow_a_symlink_out_of_memory() {
        let root = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let c = cfg(vec![]);
        fs::create_dir_all(root.path().join("run/sigil")).unwrap();
        std::os::unix::fs::symlink(disk.path(), root.path().join("run/sigil/files")).unwrap();
        let files = vec![ResolvedFile {
            path: "/etc/app/secret".into(),
            content: b"s3cret".to_vec(),
            mode: 0o600,
        }];
        let e = write_injected_files(&c, &files, root.path()).unwrap_err();
        assert!(matches!(e, ApplyError::NotMemoryBacked { .. }), "{e}");
        assert!(fs::read_dir(disk.path().join("etc/app"))
            .unwrap()
            .next()
            .is_none());
        // the same for the volumes directory
        std::os::unix::fs::symlink(disk.path(), root.path().join("run/sigil/volumes")).unwrap();
        let c = cfg(vec![VolumeSpec {
            name: "app".into(),
            sealed_dir: "/sigil/volumes/app".into(),
            paths: vec!["/app".into()],
            tag: "00".repeat(32),
        }]);
        let mut s = svc();
        s.volumes = vec![ResolvedVolume {
            name: "app".into(),
            path: "/app".into(),
            key: Some("11".repeat(32)),
            tag: Some("00".repeat(32)),
        }];
        let e = open_volumes(&c, &s, root.path()).unwrap_err();
        assert!(matches!(e, ApplyError::NotMemoryBacked { .. }), "{e}");
    }

    #[test]
    fn volumes_open_into_memory_and_rollback_is_refused() {
        let root = tempfile::tempdir_in("/dev/shm").unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("app")).unwrap();
        fs::write(src.path().join("app/main.py"), "print('hi')").unwrap();
        let regions = sigil_fs::Regions::new().encrypt("app");
        let sealed_dir = root.path().join("sigil/volumes/app");
        let sealed = sigil_fs::seal(
            src.path(),
            &sealed_dir,
            &regions,
            &sigil_fs::SealOptions::default(),
        )
        .unwrap();
        let tag_hex = hex::encode(sealed.tag.0);
        let c = cfg(vec![VolumeSpec {
            name: "app".into(),
            sealed_dir: "/sigil/volumes/app".into(),
            paths: vec!["/app".into()],
            tag: tag_hex.clone(),
        }]);
        let mut s = svc();
        // no key in the session
        assert!(matches!(
            open_volumes(&c, &s, root.path()),
            Err(ApplyError::Missing(_))
        ));
        // the CAS knows a newer tag than the image carries: rollback
        s.volumes = vec![ResolvedVolume {
            name: "app".into(),
            path: "/app".into(),
            key: Some(sealed.key.to_hex().to_string()),
            tag: Some("ab".repeat(32)),
        }];
        let e = open_volumes(&c, &s, root.path()).unwrap_err();
        assert!(matches!(e, ApplyError::Rollback { .. }), "{e}");
        assert!(e.to_string().contains("rollback"));
        s.volumes[0].tag = Some(tag_hex);
        assert_eq!(open_volumes(&c, &s, root.path()).unwrap(), vec!["app"]);
        assert_eq!(
            fs::read_link(root.path().join("app")).unwrap(),
            Path::new("/run/sigil/volumes/app/app")
        );
        assert_eq!(
            fs::read(root.path().join("run/sigil/volumes/app/app/main.py")).unwrap(),
            b"print('hi')"
        );
        assert!(!format!("{e:?}").contains(&*sealed.key.to_hex()));
    }

    #[test]
    fn tampered_volume_is_refused() {
        let root = tempfile::tempdir_in("/dev/shm").unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("app")).unwrap();
        fs::write(src.path().join("app/main.py"), "print('hi')".repeat(100)).unwrap();
        let sealed_dir = root.path().join("sigil/volumes/app");
        let sealed = sigil_fs::seal(
            src.path(),
            &sealed_dir,
            &sigil_fs::Regions::new().encrypt("app"),
            &sigil_fs::SealOptions::default(),
        )
        .unwrap();
        // flip the last byte of main.py's sealed bytes (small files share
        // packs under data/: its range in its blob)
        let (blob, range) = sigil_fs::Volume::open(&sealed_dir, &sealed.key, &sealed.tag)
            .unwrap()
            .data_range("app/main.py")
            .unwrap();
        let mut b = fs::read(&blob).unwrap();
        b[range.end as usize - 1] ^= 1;
        fs::write(&blob, b).unwrap();
        let tag_hex = hex::encode(sealed.tag.0);
        let c = cfg(vec![VolumeSpec {
            name: "app".into(),
            sealed_dir: "/sigil/volumes/app".into(),
            paths: vec!["/app".into()],
            tag: tag_hex.clone(),
        }]);
        let mut s = svc();
        s.volumes = vec![ResolvedVolume {
            name: "app".into(),
            path: "/app".into(),
            key: Some(sealed.key.to_hex().to_string()),
            tag: Some(tag_hex),
        }];
        let e = open_volumes(&c, &s, root.path()).unwrap_err();
        assert!(matches!(e, ApplyError::Volume { .. }), "{e}");
        assert!(fs::symlink_metadata(root.path().join("app")).is_err());
    }

    #[test]
    fn memfd_is_sealed_and_scripts_are_refused() {
        let fd = sealed_memfd(b"\x7fELFabc").unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on our fd.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(seals & libc::F_SEAL_WRITE, libc::F_SEAL_WRITE);
        let mut f = fs::File::from(fd);
        assert!(f.write_all(b"x").is_err());
        assert!(check_elf("/x", b"#!/bin/sh\n")
            .unwrap_err()
            .to_string()
            .contains("script"));
        assert!(check_elf("/x", b"MZ").is_err());
        assert!(check_elf("/x", b"\x7fELF\x02").is_ok());
    }
}
