//! Round trips of real trees through seal / open / verify / Volume.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use sigil_fs::*;

fn write(p: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A tree with every kind of entry the format supports.
fn rich_tree(src: &Path) {
    write(&src.join("app/main.py"), b"print('hi')\n", 0o644);
    write(&src.join("app/model.bin"), &pattern(300_001, 7), 0o600);
    write(&src.join("app/empty"), b"", 0o640);
    write(&src.join("usr/bin/python3"), &pattern(70_000, 1), 0o755);
    write(&src.join("etc/hosts"), b"127.0.0.1 localhost\n", 0o644);
    write(&src.join("setuid"), b"x", 0o4755);
    fs::create_dir_all(src.join("empty/dir/deep")).unwrap();
    fs::set_permissions(src.join("empty/dir"), fs::Permissions::from_mode(0o555)).unwrap();
    symlink("main.py", src.join("app/link")).unwrap();
    symlink("/etc/passwd", src.join("app/abs-link")).unwrap();
    symlink("../../outside", src.join("app/escape-link")).unwrap();
    fs::hard_link(src.join("app/main.py"), src.join("usr/main-hardlink.py")).unwrap();
    let weird = std::ffi::OsStr::from_bytes(b"app/non-utf8-\xff\xfe");
    write(&src.join(weird), b"bytes", 0o644);
}

fn regions() -> Regions {
    Regions::new()
        .encrypt("app")
        .authenticate("usr")
        .encrypt("setuid")
        .plain("etc")
}

#[test]
fn seal_open_round_trips_every_kind_of_entry() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rich_tree(&src);
    for cs in [16u32, 1000, 65536] {
        let vol = t.path().join(format!("vol-{cs}"));
        let out = t.path().join(format!("out-{cs}"));
        let opts = SealOptions {
            chunk_size: cs,
            threads: Some(2),
        };
        let s = seal(&src, &vol, &regions(), &opts).unwrap();
        open(&vol, &out, &s.key, &s.tag).unwrap();
        assert_eq!(
            common::snapshot(&src),
            common::snapshot(&out),
            "chunk size {cs}"
        );
        let r = verify(&vol, &s.key, &s.tag).unwrap();
        assert_eq!(r.hard_links, 1);
        assert_eq!(r.symlinks, 3);
        assert_eq!(r.plain_files, 1);
        assert_eq!(r.sealed_files, 6);
        assert_eq!(r.bytes, 12 + 300_001 + 70_000 + 1 + 5);
    }
}

#[test]
fn encrypted_content_and_names_do_not_appear_in_the_volume() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let secret = b"TOP-SECRET-MODEL-WEIGHTS-0123456789";
    write(&src.join("app/secret-name.txt"), secret, 0o600);
    write(
        &src.join("usr/clear.txt"),
        b"AUTHENTICATED-CLEAR-TEXT",
        0o644,
    );
    let vol = t.path().join("vol");
    seal(&src, &vol, &regions(), &SealOptions::default()).unwrap();
    let mut all = Vec::new();
    for e in walk_files(&vol) {
        all.extend(fs::read(e).unwrap());
    }
    let contains = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(secret));
    assert!(!contains(b"secret-name"));
    assert!(!contains(b"clear.txt"));
    // Authenticated means stored in clear.
    assert!(contains(b"AUTHENTICATED-CLEAR-TEXT"));
}

fn walk_files(p: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            v.extend(walk_files(&e));
        } else {
            v.push(e);
        }
    }
    v
}

#[test]
fn reader_gives_random_access_by_chunk() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let data = pattern(100_003, 3);
    write(&src.join("app/big"), &data, 0o644);
    write(&src.join("usr/auth"), &data, 0o644);
    let vol = t.path().join("vol");
    let opts = SealOptions {
        chunk_size: 4096,
        threads: None,
    };
    let s = seal(&src, &vol, &regions(), &opts).unwrap();
    let v = Volume::open(&vol, &s.key, &s.tag).unwrap();
    for name in ["app/big", "/usr/auth"] {
        let mut r = v.reader(name).unwrap();
        assert_eq!(r.len(), data.len() as u64);
        for &pos in &[99_999u64, 0, 4095, 4096, 50_000, 100_002] {
            r.seek(SeekFrom::Start(pos)).unwrap();
            let mut buf = vec![0u8; 5000];
            let mut got = Vec::new();
            let mut n = r.read(&mut buf).unwrap();
            while n > 0 && got.len() < 5000 {
                got.extend_from_slice(&buf[..n]);
                n = r.read(&mut buf).unwrap();
            }
            let end = (pos as usize + 5000).min(data.len());
            assert_eq!(
                &got[..end - pos as usize],
                &data[pos as usize..end],
                "{name} at {pos}"
            );
        }
        r.seek(SeekFrom::End(-3)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &data[data.len() - 3..]);
    }
    assert!(matches!(v.reader("app"), Err(FsError::NotAFile { .. })));
    assert!(matches!(v.reader("nope"), Err(FsError::NotFound { .. })));
}

#[test]
fn entries_list_the_tree() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rich_tree(&src);
    let vol = t.path().join("vol");
    let s = seal(&src, &vol, &regions(), &SealOptions::default()).unwrap();
    let v = Volume::open(&vol, &s.key, &s.tag).unwrap();
    let e = v.entries();
    let find = |p: &str| e.iter().find(|x| x.path == Path::new(p)).unwrap().clone();
    assert_eq!(
        find("app/model.bin").kind,
        EntryKind::File {
            region: Region::Encrypted,
            size: 300_001
        }
    );
    assert_eq!(find("app/model.bin").mode, 0o600);
    assert_eq!(
        find("usr/bin/python3").kind,
        EntryKind::File {
            region: Region::Authenticated,
            size: 70_000
        }
    );
    assert_eq!(
        find("etc/hosts").kind,
        EntryKind::File {
            region: Region::Plain,
            size: 20
        }
    );
    assert_eq!(
        find("usr/main-hardlink.py").kind,
        EntryKind::HardLink {
            target: "app/main.py".into()
        }
    );
    assert_eq!(
        find("app/escape-link").kind,
        EntryKind::Symlink {
            target: "../../outside".into()
        }
    );
    assert_eq!(find("empty/dir").kind, EntryKind::Dir);
    assert_eq!(find("empty/dir").mode, 0o555);
}

#[test]
fn failed_seal_leaves_nothing_behind() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rich_tree(&src);
    let fifo = src.join("app/zz-fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    // A new destination is removed again.
    let vol = t.path().join("vol");
    let err = seal(&src, &vol, &regions(), &SealOptions::default()).unwrap_err();
    assert!(matches!(err, FsError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("zz-fifo"), "{err}");
    assert!(!vol.exists());
    // An existing empty destination is emptied again.
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    seal(&src, &empty, &regions(), &SealOptions::default()).unwrap_err();
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
    fs::remove_file(&fifo).unwrap();
    seal(&src, &vol, &regions(), &SealOptions::default()).unwrap();
}

#[test]
fn a_volume_inside_its_own_source_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    rich_tree(&src);
    let err = seal(
        &src,
        &src.join("app/vol"),
        &regions(),
        &SealOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("inside the source"), "{err}");
    assert!(!src.join("app/vol").exists());
    // The source itself, empty, as the destination.
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let err = seal(&empty, &empty, &regions(), &SealOptions::default()).unwrap_err();
    assert!(err.to_string().contains("inside the source"), "{err}");
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}
