//! Builds a one-layer gzip OCI archive from host directories, for the
//! benchmark (`bench/convert.sh`):
//! `build_image OUT.tar /usr/bin /usr/lib/x86_64-linux-gnu /usr/lib/python3.11`.

use sigil_image::archive::LayerCompression;
use sigil_image::build::ImageBuilder;
use sigil_image::spec::Compression;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: build_image OUT.tar DIR...")?);
    let dirs: Vec<String> = args.collect();
    let b = ImageBuilder::new()
        .compression(LayerCompression {
            kind: Compression::Gzip,
            level: 6,
            threads: 0,
        })
        .layer(|mut l| {
            for d in &dirs {
                l = l.add_host_dir(d, d.trim_start_matches('/'));
            }
            // Merged-/usr layout, so the dynamic loader path /lib64/... resolves.
            l.add_symlink("lib64", "usr/lib64")
                .add_symlink("lib", "usr/lib")
        })
        .entrypoint(["/usr/bin/python3.11"])
        .cmd(["-c", "print('hello')"])
        .env("PATH", "/usr/bin:/bin");
    b.write_oci_archive_named(&out, "localhost/sigil-bench:latest")?;
    Ok(())
}
