//! The `sigil-init` launcher binary.

fn main() {
    eprintln!("sigil-init: not built yet");
    std::process::exit(1);
}
