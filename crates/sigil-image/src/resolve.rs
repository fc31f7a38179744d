//! Resolving paths inside the image (never on the host): symlinks are
//! followed against the image's own tree, absolute targets start at the
//! image root, and a target that climbs above `/` is refused as leaving the
//! image. Used for `--binary` and for its shared libraries.

use std::collections::{BTreeSet, VecDeque};

use crate::elf;
use crate::flatten::{normalize, Kind, Rootfs};
use crate::{Error, Result};

const MAX_HOPS: usize = 40;

/// Why a path could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Some component does not exist.
    NotFound(String),
    /// A symlink's target climbs above the image root.
    LeavesImage(String),
    /// Too many symlinks (a loop).
    Loop,
    /// A non-directory used as a directory.
    NotDir(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotFound(p) => {
                write!(f, "/{} does not exist in the image", p.escape_debug())
            }
            ResolveError::LeavesImage(t) => {
                write!(f, "symlink target {t:?} leaves the image")
            }
            ResolveError::Loop => write!(f, "too many levels of symbolic links"),
            ResolveError::NotDir(p) => write!(f, "/{} is not a directory", p.escape_debug()),
        }
    }
}

/// Resolves `path` (absolute or relative to `/`) in the image, following
/// every symlink, and returns the normalized path of the final node.
pub fn resolve(root: &Rootfs, path: &str) -> std::result::Result<String, ResolveError> {
    let mut todo: VecDeque<String> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if cur.pop().is_none() {
                return Err(ResolveError::LeavesImage(path.to_string()));
            }
            continue;
        }
        if !cur.is_empty() {
            let here = cur.join("/");
            match root.get(&here).map(|n| &n.kind) {
                Some(Kind::Dir) => {}
                Some(_) => return Err(ResolveError::NotDir(here)),
                None => return Err(ResolveError::NotFound(here)),
            }
        }
        cur.push(c);
        let here = cur.join("/");
        match root.get(&here).map(|n| &n.kind) {
            None => return Err(ResolveError::NotFound(here)),
            Some(Kind::Symlink(t)) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(ResolveError::Loop);
                }
                cur.pop();
                if t.starts_with('/') {
                    cur.clear();
                }
                // A relative target that climbs above `/` leaves the image.
                let mut depth = cur.len() as isize;
                for tc in t.split('/').filter(|c| !c.is_empty() && *c != ".") {
                    depth += if tc == ".." { -1 } else { 1 };
                    if depth < 0 {
                        return Err(ResolveError::LeavesImage(t.clone()));
                    }
                }
                for tc in t.split('/').rev().filter(|c| !c.is_empty() && *c != ".") {
                    todo.push_front(tc.to_string());
                }
            }
            Some(_) => {}
        }
    }
    Ok(cur.join("/"))
}

/// The program to run, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// The path as given (normalized, relative to `/`).
    pub given: String,
    /// The regular file it resolves to in the image.
    pub real: String,
    /// The real paths of its dynamic loader and every shared library it
    /// needs (transitively), sorted.
    pub libs: Vec<String>,
    /// SHA-256 of its content, hashed from the bytes read for the checks
    /// above (the measurement uses it; the file is not read again).
    pub sha256: [u8; 32],
}

fn read_file(root: &Rootfs, real: &str, max: u64) -> Result<Vec<u8>> {
    root.read(real, max)
}

/// Resolves and checks `--binary`: it must resolve inside the image to a
/// regular ELF file. A script is refused with its interpreter named.
pub fn binary(root: &Rootfs, given: &str, max_bytes: u64) -> Result<Binary> {
    let berr = |msg: String| Error::Binary {
        path: given.to_string(),
        msg,
    };
    let norm = normalize(given).ok_or_else(|| berr("must not contain '..'".into()))?;
    let real = resolve(root, &norm).map_err(|e| berr(e.to_string()))?;
    match root.get(&real).map(|n| &n.kind) {
        Some(Kind::File | Kind::Hardlink(_)) => {}
        Some(_) => {
            return Err(berr(format!(
                "/{} is not a regular file",
                real.escape_debug()
            )))
        }
        None => {
            return Err(berr(format!(
                "/{} does not exist in the image",
                real.escape_debug()
            )))
        }
    }
    let data = read_file(root, &real, max_bytes)?;
    if let Some(rest) = data.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line).trim().to_string();
        let mut words = line.split_whitespace();
        let interp = match (words.next(), words.next()) {
            (Some(env), Some(prog)) if env.ends_with("/env") => prog.to_string(),
            (Some(i), _) => i.to_string(),
            _ => "its interpreter".to_string(),
        };
        return Err(berr(format!(
            "is a script (#!{line}); pass its interpreter as --binary (e.g. --binary {interp}) and the script in --command"
        )));
    }
    let info = elf::parse(&data).map_err(|e| berr(format!("/{real}: {e}")))?;
    let libs = libraries(root, &real, &info, max_bytes)?;
    Ok(Binary {
        given: norm,
        real,
        libs,
        sha256: sigil_init::measurement::sha256(&data),
    })
}

/// The real paths of the loader and all shared libraries `info` needs,
/// resolved in the image.
pub fn libraries(
    root: &Rootfs,
    real: &str,
    info: &elf::ElfInfo,
    max_bytes: u64,
) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    let mut queue: VecDeque<(String, elf::ElfInfo)> = VecDeque::new();
    if let Some(i) = &info.interp {
        let r = resolve(root, i).map_err(|e| Error::Binary {
            path: format!("/{real}"),
            msg: format!("program interpreter {i}: {e}"),
        })?;
        out.insert(r);
    }
    queue.push_back((real.to_string(), info.clone()));
    let mut seen_names = BTreeSet::new();
    while let Some((obj, info)) = queue.pop_front() {
        let origin = obj.rsplit_once('/').map(|x| x.0).unwrap_or("").to_string();
        for name in &info.needed {
            if !seen_names.insert(name.clone()) {
                continue;
            }
            let dirs = info.search_dirs(&format!("/{origin}"));
            let found = if name.contains('/') {
                resolve(root, name).ok()
            } else {
                dirs.iter()
                    .filter_map(|d| resolve(root, &format!("{d}/{name}")).ok())
                    .find(|r| {
                        matches!(
                            root.get(r).map(|n| &n.kind),
                            Some(Kind::File | Kind::Hardlink(_))
                        )
                    })
            };
            let Some(lib) = found else {
                return Err(Error::Binary {
                    path: format!("/{real}"),
                    msg: format!("shared library {name} (needed by /{obj}) is not in the image"),
                });
            };
            if out.insert(lib.clone()) {
                let data = read_file(root, &lib, max_bytes)?;
                let li = elf::parse(&data).map_err(|e| Error::Binary {
                    path: format!("/{real}"),
                    msg: format!("shared library /{lib}: {e}"),
                })?;
                queue.push_back((lib, li));
            }
        }
    }
    out.remove(real);
    Ok(out.into_iter().collect())
}
