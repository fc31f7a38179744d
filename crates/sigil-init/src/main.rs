//! The `sigil-init` launcher: the entrypoint of a converted image. It
//! attests to the CAS, applies the service's configuration and `execve`s
//! the application (see `docs/protocol.md`). On any failure it prints one
//! clear line and exits 1; the application never starts.

use std::path::PathBuf;

use sigil_init::launcher::{self, Level, Log, Paths};

fn main() {
    let env = |k: &str| std::env::var(k).ok();
    let log = Log::new(Level::from_env(env(launcher::ENV_LOG).as_deref()));
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("{}", sigil_init::attest::LAUNCHER_VERSION);
        return;
    }
    let mut paths = Paths::default();
    if let Some(root) = env(launcher::ENV_ROOT).filter(|r| !r.is_empty()) {
        paths.root = PathBuf::from(root);
    }
    let err = launcher::run(&paths, &env, &log);
    eprintln!("sigil-init: error: {err}");
    eprintln!("sigil-init: the application was not started");
    std::process::exit(1);
}
