//! Applies arbitrary bytes as a layer tar (twice, so whiteouts and
//! replacements see a populated tree), then writes the flattened tree as a
//! layer (reading contents back from the staged layers) and parses that
//! again. Must never panic, never write outside the staging directory.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_image::archive::append_rootfs;
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
    let ok1 = root.apply_layer("fuzz", data, &mut |_| {}).is_ok();
    let ok2 = root.apply_layer("fuzz2", data, &mut |_| {}).is_ok();
    for p in root.nodes().keys() {
        assert!(!p.split('/').any(|c| c == ".." || c.is_empty()), "{p}");
    }
    if ok1 && ok2 {
        // A tree that was accepted must be writable, and what is written
        // must be a layer we accept again with the same paths.
        let mut tarb = tar::Builder::new(Vec::new());
        append_rootfs(&mut tarb, &root, &|_| false, &mut |_| {}).unwrap();
        let out = tarb.into_inner().unwrap();
        // Implicit parents are written as entries: allow more of them.
        let more = Limits {
            max_entries: 1 << 20,
            ..limits.clone()
        };
        let mut again = Rootfs::new(&t.path().join("again"), &more).unwrap();
        again.apply_layer("out", &out[..], &mut |_| {}).unwrap();
        let a: Vec<&String> = root.nodes().keys().collect();
        let b: Vec<&String> = again.nodes().keys().collect();
        assert_eq!(a, b);
    }
});
