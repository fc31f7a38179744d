//! Real podman with the flags this kind of machine needs: runc (crun fails
//! on hybrid cgroups) and the cgroupfs manager (no systemd session).

use std::process::{Command, Output};

/// The global flags every podman invocation of the tests passes.
pub const FLAGS: [&str; 3] = ["--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs"];

/// A `podman` command with [`FLAGS`], to add arguments to.
pub fn command() -> Command {
    let mut c = Command::new("podman");
    c.args(FLAGS);
    c
}

/// Runs `podman FLAGS args…` and returns its output, whatever the status.
pub fn output(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .expect("run podman (installed by scripts/setup.sh)")
}

/// Runs `podman FLAGS args…`, fails the test with podman's output unless it
/// succeeds, and returns its stdout.
pub fn podman(args: &[&str]) -> String {
    let o = output(args);
    crate::cli::assert_success(&o, &format!("podman {args:?}"))
}
