//! `cargo run -p sigil-session --example session_hash -- FILE`: parses a
//! session, prints every error or its hash (what `sigil session hash` does).

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: session_hash FILE");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    match sigil_session::Session::parse(&text) {
        Ok(s) => println!("{}", s.hash()),
        Err(errors) => {
            for e in &errors {
                eprintln!("{path}:{e}");
            }
            std::process::exit(1);
        }
    }
}
