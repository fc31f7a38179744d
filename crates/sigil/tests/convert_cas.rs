//! `sigil convert --cas ADDR --identity DIR` against a real `sigil cas serve`:
//! the first conversion creates the session, the second updates it (the
//! predecessor is fetched automatically), and the CAS holds the hash printed.
//! The host's static `ldconfig` stands in for the launcher (layout only).

#[path = "cas_support/mod.rs"]
mod cas_support;

use cas_support::{ok, sigil, Cas};
use sigil_image::build::ImageBuilder;
use sigil_testsupport::cli::static_elf as launcher;

#[test]
fn convert_uploads_then_updates_the_session() {
    let t = tempfile::tempdir().unwrap();
    let cas = Cas::start(&t.path().join("cas"));
    let config = t.path().join("config");
    let id = t.path().join("id");
    ok(&sigil(
        &config,
        &["identity", "create", "--dir", id.to_str().unwrap()],
    ));
    let img = t.path().join("in.tar");
    ImageBuilder::new()
        .layer(|l| {
            l.add_host_elf("/usr/bin/python3.11", "usr/bin/python3.11")
                .add_bytes("app/main.py", b"print(1)\n", 0o644)
        })
        .entrypoint(["/usr/bin/python3.11", "/app/main.py"])
        .write_oci_archive(&img)
        .unwrap();
    let mut hashes = Vec::new();
    for (i, verb) in ["created", "updated"].iter().enumerate() {
        let out = t.path().join(format!("out{i}.tar"));
        let stdout = ok(&sigil(
            &config,
            &[
                "convert",
                "--from",
                img.to_str().unwrap(),
                "--to",
                out.to_str().unwrap(),
                "--dir",
                "/app",
                "--launcher",
                launcher(),
                "--cas-pin",
                &cas.fingerprint,
                "--name",
                "uploaded",
                "--allow-simulation",
                "--cas",
                &cas.addr,
                "--identity",
                id.to_str().unwrap(),
            ],
        ));
        let line = stdout
            .lines()
            .find(|l| l.starts_with("uploaded"))
            .unwrap_or_else(|| panic!("no upload line: {stdout}"));
        assert!(line.contains(verb), "{line}");
        hashes.push(line.rsplit(' ').next().unwrap().to_string());
    }
    assert_ne!(
        hashes[0], hashes[1],
        "a new volume key and tag make a new session"
    );
    // The CAS serves the latest one.
    let show = ok(&sigil(
        &config,
        &[
            "session",
            "show",
            "uploaded",
            "--cas",
            &cas.addr,
            "--cas-fingerprint",
            &cas.fingerprint,
            "--identity",
            id.to_str().unwrap(),
        ],
    ));
    assert!(show.contains(&hashes[1]), "{show}");
}
