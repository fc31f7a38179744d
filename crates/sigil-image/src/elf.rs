//! A minimal, bounds-checked ELF reader: just enough to tell a static
//! executable from a dynamic one and to list the shared libraries it needs
//! (`PT_INTERP`, `DT_NEEDED`, `DT_RUNPATH`/`DT_RPATH`). The input is outside
//! input (a file of the image), so every offset is checked.

/// What we learn from an ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfInfo {
    /// The program interpreter (`PT_INTERP`), absent for static executables.
    pub interp: Option<String>,
    /// `DT_NEEDED` library names, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` (or `DT_RPATH`) directories, split on `:`.
    pub runpath: Vec<String>,
}

/// Library directories searched after `DT_RUNPATH`, like the default
/// `ld.so` configuration on Debian/Ubuntu/Fedora.
pub const LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

impl ElfInfo {
    /// The directories the dynamic loader searches for this object's
    /// `DT_NEEDED` libraries, in order: its `DT_RUNPATH` with `$ORIGIN` and
    /// `${ORIGIN}` replaced by `origin` (the object's absolute directory),
    /// then [`LIB_DIRS`]. Used for the image (`resolve`) and the host (`build`).
    pub fn search_dirs(&self, origin: &str) -> Vec<String> {
        self.runpath
            .iter()
            .map(|d| d.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))
            .chain(LIB_DIRS.iter().map(|d| d.to_string()))
            .collect()
    }
}

/// Why a file is not a usable ELF file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// No ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// 32-bit or big-endian.
    #[error("unsupported ELF class or byte order (only 64-bit little-endian)")]
    Unsupported,
    /// Offsets point outside the file.
    #[error("malformed ELF file ({0})")]
    Malformed(&'static str),
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const MAX_NEEDED: usize = 4096;

/// Whether `data` starts with the ELF magic.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

fn u16_at(d: &[u8], off: usize) -> Result<u16, ElfError> {
    d.get(off..off.checked_add(2).ok_or(ElfError::Malformed("offset"))?)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(ElfError::Malformed("truncated"))
}
fn u32_at(d: &[u8], off: usize) -> Result<u32, ElfError> {
    d.get(off..off.checked_add(4).ok_or(ElfError::Malformed("offset"))?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(ElfError::Malformed("truncated"))
}
fn u64_at(d: &[u8], off: usize) -> Result<u64, ElfError> {
    d.get(off..off.checked_add(8).ok_or(ElfError::Malformed("offset"))?)
        .map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
        .ok_or(ElfError::Malformed("truncated"))
}
fn usize_of(v: u64) -> Result<usize, ElfError> {
    usize::try_from(v).map_err(|_| ElfError::Malformed("offset too large"))
}

fn cstr(d: &[u8], off: usize, end: usize) -> Result<String, ElfError> {
    let s = d
        .get(off..end.min(d.len()))
        .ok_or(ElfError::Malformed("string offset"))?;
    let n = s
        .iter()
        .position(|&b| b == 0)
        .ok_or(ElfError::Malformed("unterminated string"))?;
    String::from_utf8(s[..n].to_vec()).map_err(|_| ElfError::Malformed("non-UTF-8 string"))
}

struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Parses the program headers and dynamic section of a 64-bit little-endian ELF file.
pub fn parse(d: &[u8]) -> Result<ElfInfo, ElfError> {
    if !is_elf(d) {
        return Err(ElfError::NotElf);
    }
    if d.len() < 64 {
        return Err(ElfError::Malformed("truncated header"));
    }
    if d[4] != 2 || d[5] != 1 {
        return Err(ElfError::Unsupported);
    }
    let phoff = usize_of(u64_at(d, 0x20)?)?;
    let phentsize = u16_at(d, 0x36)? as usize;
    let phnum = u16_at(d, 0x38)? as usize;
    if phentsize < 56 {
        return Err(ElfError::Malformed("program header size"));
    }
    let mut phdrs = Vec::with_capacity(phnum);
    for i in 0..phnum {
        let base = i
            .checked_mul(phentsize)
            .and_then(|x| x.checked_add(phoff))
            .ok_or(ElfError::Malformed("program header offset"))?;
        phdrs.push(Phdr {
            p_type: u32_at(d, base)?,
            offset: u64_at(d, base + 8)?,
            vaddr: u64_at(d, base + 16)?,
            filesz: u64_at(d, base + 32)?,
        });
    }
    let mut info = ElfInfo::default();
    for p in &phdrs {
        if p.p_type == PT_INTERP {
            let off = usize_of(p.offset)?;
            let end = off
                .checked_add(usize_of(p.filesz)?)
                .ok_or(ElfError::Malformed("interp"))?;
            info.interp = Some(cstr(d, off, end)?);
        }
    }
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else {
        return Ok(info);
    };
    let vaddr_to_off = |va: u64| -> Result<usize, ElfError> {
        for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
            if va >= p.vaddr && va - p.vaddr < p.filesz {
                return usize_of(
                    p.offset
                        .checked_add(va - p.vaddr)
                        .ok_or(ElfError::Malformed("vaddr"))?,
                );
            }
        }
        Err(ElfError::Malformed("address outside loaded segments"))
    };
    let doff = usize_of(dynamic.offset)?;
    let dcount = usize_of(dynamic.filesz)? / 16;
    let (mut strtab, mut strsz) = (None, None);
    let mut needed_offs = Vec::new();
    let mut runpath_off = None;
    for i in 0..dcount {
        let at = doff
            .checked_add(i * 16)
            .ok_or(ElfError::Malformed("dynamic offset"))?;
        let tag = u64_at(d, at)?;
        let val = u64_at(d, at + 8)?;
        match tag {
            DT_NULL => break,
            DT_NEEDED => {
                if needed_offs.len() >= MAX_NEEDED {
                    return Err(ElfError::Malformed("too many DT_NEEDED"));
                }
                needed_offs.push(val)
            }
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_RUNPATH => runpath_off = Some(val),
            DT_RPATH if runpath_off.is_none() => runpath_off = Some(val),
            _ => {}
        }
    }
    if needed_offs.is_empty() && runpath_off.is_none() {
        return Ok(info);
    }
    let strtab = vaddr_to_off(strtab.ok_or(ElfError::Malformed("no DT_STRTAB"))?)?;
    let strend = strtab
        .checked_add(usize_of(
            strsz.unwrap_or(u64::MAX >> 1).min(d.len() as u64),
        )?)
        .ok_or(ElfError::Malformed("string table size"))?;
    for o in needed_offs {
        let at = strtab
            .checked_add(usize_of(o)?)
            .ok_or(ElfError::Malformed("DT_NEEDED offset"))?;
        info.needed.push(cstr(d, at, strend)?);
    }
    if let Some(o) = runpath_off {
        let at = strtab
            .checked_add(usize_of(o)?)
            .ok_or(ElfError::Malformed("DT_RUNPATH offset"))?;
        info.runpath = cstr(d, at, strend)?
            .split(':')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_python_is_dynamic_with_libc() {
        let Ok(data) = std::fs::read("/usr/bin/python3.11").or_else(|_| std::fs::read("/bin/ls"))
        else {
            panic!("no ELF binary on this host")
        };
        let info = parse(&data).unwrap();
        assert!(info.interp.as_deref().unwrap().contains("ld-linux"));
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{info:?}"
        );
    }

    #[test]
    fn refuses_garbage_and_truncation() {
        assert_eq!(parse(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let data = std::fs::read("/bin/ls").unwrap();
        for cut in [10usize, 63, 100, 1000] {
            assert!(parse(&data[..cut]).is_err() || cut > 64, "cut {cut}");
        }
        let mut evil = data[..64].to_vec();
        evil[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&evil).is_err());
    }
}
