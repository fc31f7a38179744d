//! `cargo run -p sigil-session --example session_hash -- [--canonical] FILE`:
//! parses a session and prints every error, or its hash (what `sigil session
//! hash` does). `--canonical` prints the canonical JSON instead; it contains
//! secret values, so use it on test sessions only.

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let canonical = args.first().is_some_and(|a| a == "--canonical");
    if canonical {
        args.remove(0);
    }
    let [path] = args.as_slice() else {
        eprintln!("usage: session_hash [--canonical] FILE");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    match sigil_session::Session::parse(&text) {
        Ok(s) if canonical => println!("{}", String::from_utf8_lossy(&s.canonical_form())),
        Ok(s) => println!("{}", s.hash()),
        Err(errors) => {
            for e in &errors {
                eprintln!("{path}:{e}");
            }
            std::process::exit(1);
        }
    }
}
