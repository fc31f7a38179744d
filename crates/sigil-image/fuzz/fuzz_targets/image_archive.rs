//! Opens arbitrary bytes as an image archive (OCI archive or docker-archive)
//! and flattens every layer it names, with small limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_image::flatten::Rootfs;
use sigil_image::source::SourceImage;
use sigil_image::Limits;

fuzz_target!(|data: &[u8]| {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("in.tar");
    std::fs::write(&p, data).unwrap();
    let limits = Limits {
        max_json_bytes: 64 << 10,
        max_layers: 8,
        max_entries: 10_000,
        max_layer_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
        ..Limits::default()
    };
    let Ok(src) = SourceImage::open(&p, None, &limits) else { return };
    let Ok(mut root) = Rootfs::new(&t.path().join("root"), &limits) else { return };
    for i in 0..src.layers.len() {
        let Ok(mut r) = src.open_layer(i) else { return };
        if root.apply_layer("l", &mut r, &mut |_| {}).is_err() {
            return;
        }
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    }
});
