//! `--binary` and its shared libraries resolved inside a hostile image:
//! symlinks (relative, absolute, climbing with `..`, loops, chains through
//! directories), hard links, scripts and ELF files, all from the image,
//! never the host.
//!
//! Byte 0 bit 0 chooses the input form: a raw layer tar, or a small script
//! that builds one (one entry per line: `d PATH`, `f PATH CONTENT...`,
//! `l PATH TARGET`, `h PATH TARGET`), which reaches deep symlink
//! structures far sooner. The remaining bits pick the path to resolve.
//! Invariants: no panic or hang; a resolved path is the image root ("")
//! or is normalized (no `..`, no empty component) and names a node of the
//! image; a resolved binary is a regular file and so are its libraries;
//! errors are one line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_image::flatten::Rootfs;
use sigil_image::resolve::{binary, resolve};
use sigil_image::Limits;

fn script_tar(text: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for line in text.split(|c| *c == b'\n').take(64) {
        let line = String::from_utf8_lossy(line);
        let mut w = line.splitn(3, ' ');
        let (Some(k), Some(path)) = (w.next(), w.next()) else {
            continue;
        };
        let arg = w.next().unwrap_or("");
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        let r = match k {
            "d" => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..])
            }
            "l" | "h" => {
                h.set_entry_type(if k == "l" {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, path, arg)
            }
            _ => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(arg.len() as u64);
                b.append_data(&mut h, path, arg.as_bytes())
            }
        };
        if r.is_err() {
            continue;
        }
    }
    b.into_inner().unwrap_or_default()
}

fn one_line(e: &impl std::fmt::Display) {
    let m = e.to_string();
    assert!(!m.contains('\n'), "{m:?}");
}

fuzz_target!(|data: &[u8]| {
    let [ctl, rest @ ..] = data else { return };
    let tarball = if ctl & 1 == 1 {
        script_tar(rest)
    } else {
        rest.to_vec()
    };
    let t = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_entries: 1_000,
        max_layer_bytes: 1 << 20,
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    let mut root = Rootfs::new(&t.path().join("root"), &limits).unwrap();
    if root.apply_layer("fuzz", &tarball[..], &mut |_| {}).is_err() {
        return;
    }
    let mut paths: Vec<String> = root.nodes().keys().take(32).cloned().collect();
    paths.push("bin/app".into());
    paths.push("/usr/../bin/./app".into());
    let pick = usize::from(ctl >> 1) % paths.len();
    for (i, p) in paths.iter().enumerate() {
        match resolve(&root, p) {
            // "" is the image root itself (a link to "/").
            Ok(r) if r.is_empty() => {}
            Ok(r) => {
                assert!(
                    !r.split('/').any(|c| c == ".." || c.is_empty() || c == "."),
                    "{p} -> {r}"
                );
                assert!(root.get(&r).is_some(), "{p} -> {r} is not in the image");
            }
            Err(e) => one_line(&e),
        }
        if i == pick || p == "bin/app" {
            match binary(&root, p, 1 << 20) {
                Ok(b) => {
                    assert!(root.get(&b.real).is_some());
                    for l in &b.libs {
                        assert!(root.get(l).is_some(), "library {l}");
                    }
                }
                Err(e) => one_line(&e),
            }
        }
    }
});
