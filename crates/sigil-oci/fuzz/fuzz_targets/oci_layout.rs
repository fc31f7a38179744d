//! Opens arbitrary bytes as an OCI archive (a tar of an OCI layout) with
//! small limits, reads `index.json` and every blob it names, and parses the
//! bytes as a descriptor, a digest and a platform. Nothing may panic, and
//! every error is one line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_oci::layout::Layout;
use sigil_oci::spec::{Descriptor, Index, Manifest, Platform};
use sigil_oci::Digest;

fn one_line<T>(r: sigil_oci::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "{e}");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = one_line(Digest::parse_checked(s));
        let _ = one_line(s.parse::<Platform>());
    }
    if let Ok(d) = serde_json::from_slice::<Descriptor>(data) {
        let _ = one_line(d.digest());
    }
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("in.tar");
    std::fs::write(&p, data).unwrap();
    let Some(layout) = one_line(Layout::open(&p, 64)) else {
        return;
    };
    let Some(bytes) = one_line(layout.read_small("index.json", 64 << 10)) else {
        return;
    };
    let Ok(index) = serde_json::from_slice::<Index>(&bytes) else {
        return;
    };
    for d in index.manifests.iter().take(8) {
        let Some(b) = one_line(layout.read_blob(d, 64 << 10, "manifest")) else {
            continue;
        };
        if let Ok(m) = serde_json::from_slice::<Manifest>(&b) {
            let _ = one_line(layout.read_blob(&m.config, 64 << 10, "config"));
            for l in m.layers.iter().take(8) {
                if let Some(d) = one_line(l.digest()) {
                    let _ = one_line(layout.open_member(&d.blob_path()));
                }
            }
        }
    }
});
