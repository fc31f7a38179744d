//! Running real programs (the `sigil` binary, the launcher, podman) and
//! checking what they printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `cmd` to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()))
}

/// Stdout, then stderr, as text (for messages and `contains` checks).
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails the test, showing stdout and stderr, unless `what` exited 0;
/// returns its stdout.
pub fn assert_success(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// [`assert_success`] for the program under test.
pub fn ok(o: &Output) -> String {
    assert_success(o, "the command")
}

/// Fails the test unless the command failed (non-zero exit); returns its
/// stderr.
pub fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "the command should have failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    stderr(o)
}

/// The value of the first `name: value` line of `out`; fails the test if
/// there is none.
pub fn field(out: &str, name: &str) -> String {
    let prefix = format!("{name}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .to_string()
}

/// A static ELF to stand in for the launcher where only an image's layout
/// is tested, not the launcher's behaviour: the host's static-pie
/// `ldconfig`.
pub fn static_elf() -> &'static str {
    ["/usr/sbin/ldconfig", "/sbin/ldconfig"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("a static ldconfig on this host")
}

/// The static launcher `sigil convert` installs (`SIGIL_INIT_BINARY`,
/// built and exported by scripts/test.sh); fails the test when unset.
pub fn launcher_binary() -> PathBuf {
    std::env::var_os("SIGIL_INIT_BINARY").map(PathBuf::from).expect(
        "SIGIL_INIT_BINARY is not set: run the tests with scripts/test.sh (it builds the static launcher)",
    )
}

/// Fails the test unless the command failed and its stderr contains
/// `expect`; returns the stderr.
pub fn fails_with(o: &Output, expect: &str) -> String {
    let err = fails(o);
    assert!(err.contains(expect), "expected {expect:?} in: {err}");
    err
}

/// The address and the SPKI fingerprint that `sigil cas serve` prints
/// first (`listening on ADDR`, `fingerprint sha256:…`), read from the
/// `lines` of its stdout (which the caller keeps open); `None` if the
/// output ends before both were printed.
pub fn cas_serve_banner<B: std::io::BufRead>(
    lines: &mut std::io::Lines<B>,
) -> Option<(String, String)> {
    let (mut addr, mut fingerprint) = (None, None);
    while addr.is_none() || fingerprint.is_none() {
        let line = lines.next()?.ok()?;
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.trim().to_string());
        } else if let Some(f) = line.strip_prefix("fingerprint ") {
            fingerprint = Some(f.trim().to_string());
        }
    }
    Some((addr?, fingerprint?))
}
