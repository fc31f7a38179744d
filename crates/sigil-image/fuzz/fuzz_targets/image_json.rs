//! Parses arbitrary bytes as every JSON document an image contains.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_image::spec::{parse_json, DockerManifestEntry, Index, Manifest, RunConfig};

fuzz_target!(|data: &[u8]| {
    let _ = parse_json::<Index>("index.json", data);
    if let Ok(m) = parse_json::<Manifest>("manifest", data) {
        for l in &m.layers {
            let _ = l.digest();
        }
    }
    let _ = parse_json::<Vec<DockerManifestEntry>>("manifest.json", data);
    if let Ok(v) = parse_json::<serde_json::Value>("config", data) {
        let _ = RunConfig::from_image_config(&v);
    }
});
