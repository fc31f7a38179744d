//! Whether the external tools a test drives are installed, with one rule
//! for their absence: fail under CI, skip elsewhere.

use std::process::{Command, Stdio};

/// Whether this is a CI run (`CI=true`): there every tool the tests use
/// must be installed (scripts/setup.sh), so a missing one is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Returns `present`; when it is false, fails the test under CI (naming
/// `what` is missing) and otherwise prints that the test skips. Use as
/// `if !require(have_x(), "x (scripts/setup.sh)") { return; }`.
pub fn require(present: bool, what: &str) -> bool {
    if !present {
        assert!(!in_ci(), "{what} is required in CI (CI=true)");
        eprintln!("skipping: {what} is missing");
    }
    present
}

/// Whether `program args…` runs and exits 0 (its output is discarded).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether podman is installed (`podman --version` works).
pub fn podman_present() -> bool {
    runs("podman", &["--version"])
}

/// Whether `python3` can import every module in `modules` (e.g.
/// `["helm_python", "yaml"]`).
pub fn python_modules_present(modules: &[&str]) -> bool {
    runs(
        "python3",
        &["-c", &format!("import {}", modules.join(", "))],
    )
}

/// Whether `kubernetes-validate` (PyPI) is installed.
pub fn kubernetes_validate_present() -> bool {
    runs("kubernetes-validate", &["--version"])
}

/// The chart tools: PyPI's helm-python-sdk (`helm_python`) plus the extra
/// Python `modules`, and kubernetes-validate; under [`require`]'s rule.
pub fn require_chart_tools(modules: &[&str]) -> bool {
    let mut all = vec!["helm_python"];
    all.extend_from_slice(modules);
    require(
        python_modules_present(&all) && kubernetes_validate_present(),
        "helm-python-sdk and kubernetes-validate (scripts/setup.sh)",
    )
}

/// Runs `kubernetes-validate --strict` on the rendered manifest `files`
/// and fails the test, showing its report and `rendered` (the manifests'
/// text), unless every manifest is valid.
pub fn assert_kubernetes_valid(files: &[std::path::PathBuf], rendered: &str) {
    let v = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files)
        .output()
        .expect("run kubernetes-validate (scripts/setup.sh)");
    assert!(
        v.status.success(),
        "kubernetes-validate --strict failed:\n{}{}\n{rendered}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}
