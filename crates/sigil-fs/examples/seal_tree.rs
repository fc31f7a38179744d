//! Seals a directory with a fresh key and prints the time: a quick way to
//! profile `seal` without the CLI (`perf record`, `perf stat`).
//! Usage: seal_tree SRC DST [THREADS]
use std::path::Path;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: seal_tree SRC DST [THREADS]".into());
    }
    let opts = sigil_fs::SealOptions {
        threads: args.get(3).map(|t| t.parse()).transpose()?,
        ..Default::default()
    };
    let regions = sigil_fs::Regions::with_default(sigil_fs::Region::Encrypted);
    let t = Instant::now();
    let s = sigil_fs::seal(Path::new(&args[1]), Path::new(&args[2]), &regions, &opts)?;
    eprintln!(
        "sealed in {:.3} s, tag {}",
        t.elapsed().as_secs_f64(),
        s.tag
    );
    Ok(())
}
