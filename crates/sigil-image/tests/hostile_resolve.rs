//! `--binary` resolved inside a hostile image (`resolve::resolve`,
//! `resolve::binary`): symlink loops and long chains, links that climb
//! out of the image, absolute links that must resolve in the image and
//! never on the host, non-directories used as directories, scripts,
//! directories and garbage given as the binary, names with control
//! characters. Every refusal is one line naming the path; nothing is read
//! from the host. Real layer tars applied to a real staging directory.

use sigil_image::flatten::Rootfs;
use sigil_image::resolve::{binary, resolve, ResolveError};
use sigil_image::Limits;

enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

fn image(entries: &[E]) -> (tempfile::TempDir, Rootfs) {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                b.append_data(&mut h, p, *c).unwrap();
            }
            E::Link(p, t) | E::Hard(p, t) => {
                h.set_entry_type(if matches!(e, E::Link(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    let tarball = b.into_inner().unwrap();
    let t = tempfile::tempdir().unwrap();
    let mut root = Rootfs::new(&t.path().join("root"), &Limits::default()).unwrap();
    root.apply_layer("hostile", &tarball[..], &mut |_| {})
        .unwrap();
    (t, root)
}

fn binary_err(root: &Rootfs, given: &str) -> String {
    let m = match binary(root, given, 1 << 20) {
        Ok(b) => panic!("{given} accepted as {}", b.real),
        Err(e) => e.to_string(),
    };
    assert!(!m.contains('\n'), "not one line: {m:?}");
    m
}

#[test]
fn loops_and_long_chains_are_refused() {
    let (_t, root) = image(&[
        E::Link("a", "b"),
        E::Link("b", "a"),
        E::Link("bin/app", "/a"),
    ]);
    assert_eq!(resolve(&root, "bin/app"), Err(ResolveError::Loop));
    assert!(binary_err(&root, "/bin/app").contains("too many levels of symbolic links"));

    // A chain of 41 links is a loop as far as resolution goes; 39 resolve.
    let names: Vec<String> = (0..=41).map(|i| format!("l{i}")).collect();
    let mut entries = vec![E::File("target", b"x")];
    for i in 0..41 {
        entries.push(E::Link(
            &names[i],
            if i == 40 { "target" } else { &names[i + 1] },
        ));
    }
    let (_t, root) = image(&entries);
    assert_eq!(resolve(&root, "l0"), Err(ResolveError::Loop));
    assert_eq!(resolve(&root, "l2").as_deref(), Ok("target"));
}

#[test]
fn links_that_climb_out_are_refused_and_absolute_links_stay_inside() {
    let (_t, root) = image(&[
        E::Link("bin/up", "../../../../etc/passwd"),
        E::Link("bin/abs", "/etc/passwd"),
        E::Link("bin/mine", "/etc/shadow"),
        E::File("etc/shadow", b"#!/bin/sh\n"),
        E::Link("usr/lib", "../../.."),
    ]);
    assert!(matches!(
        resolve(&root, "bin/up"),
        Err(ResolveError::LeavesImage(_))
    ));
    assert!(binary_err(&root, "/bin/up").contains("leaves the image"));
    // The host has /etc/passwd; the image does not: not found.
    assert!(matches!(
        resolve(&root, "bin/abs"),
        Err(ResolveError::NotFound(_))
    ));
    assert!(binary_err(&root, "/bin/abs").contains("does not exist in the image"));
    // An absolute target starts at the image root.
    assert_eq!(resolve(&root, "bin/mine").as_deref(), Ok("etc/shadow"));
    // A directory link that climbs out, used as a directory.
    assert!(matches!(
        resolve(&root, "usr/lib/x"),
        Err(ResolveError::LeavesImage(_))
    ));
    // `..` in what the user gives is refused before anything is looked up.
    assert!(binary_err(&root, "/bin/../etc/shadow").contains("must not contain '..'"));
}

#[test]
fn wrong_kinds_of_binary_are_refused_naming_the_problem() {
    let (_t, root) = image(&[
        E::File("usr", b"a file, not a directory"),
        E::Dir("opt/dir"),
        E::File("bin/script", b"#!/usr/bin/env python3\nprint(1)\n"),
        E::File("bin/garbage", b"\x7fELF\x02\x01\x01garbage"),
        E::Hard("bin/hard", "bin/garbage"),
    ]);
    assert!(matches!(
        resolve(&root, "usr/bin/app"),
        Err(ResolveError::NotDir(_))
    ));
    assert!(binary_err(&root, "/usr/bin/app").contains("is not a directory"));
    assert!(binary_err(&root, "/opt/dir").contains("is not a regular file"));
    let m = binary_err(&root, "/bin/script");
    assert!(
        m.contains("is a script") && m.contains("--binary python3"),
        "{m}"
    );
    assert!(!binary_err(&root, "/bin/garbage").is_empty());
    // A hard link is the file it links to: refused for the same reason.
    assert!(!binary_err(&root, "/bin/hard").is_empty());
}

#[test]
fn control_characters_in_names_do_not_break_the_error_line() {
    // Names come from the image; the path given on the command line does not.
    let (_t, root) = image(&[
        E::Link("bin/app", "/no\nsuch\rfile"),
        E::Link("bin/up", "../..\n/x"),
        E::Dir("a\nb"),
        E::Link("bin/dir", "/a\nb"),
    ]);
    binary_err(&root, "/bin/app");
    binary_err(&root, "/bin/up");
    binary_err(&root, "/bin/dir");
}
