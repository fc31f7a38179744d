//! Applies arbitrary bytes as a layer tar (twice, so whiteouts and
//! replacements see a populated tree). Must never panic, never write
//! outside the staging directory.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_image::flatten::Rootfs;
use sigil_image::Limits;

fuzz_target!(|data: &[u8]| {
    let t = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_entries: 10_000,
        max_layer_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
        ..Limits::default()
    };
    let mut root = Rootfs::new(&t.path().join("root"), &limits).unwrap();
    let _ = root.apply_layer("fuzz", data, &mut |_| {});
    let _ = root.apply_layer("fuzz2", data, &mut |_| {});
    for p in root.nodes().keys() {
        assert!(!p.split('/').any(|c| c == ".." || c.is_empty()), "{p}");
    }
});
