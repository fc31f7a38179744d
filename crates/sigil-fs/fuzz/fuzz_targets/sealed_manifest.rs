//! `manifest.sigil` as read from disk by `Volume::open`, with the tag made
//! to match (so the header checks and the authentication run on hostile
//! bytes). Must never panic.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigil_fs::{Volume, VolumeKey, VolumeTag, MANIFEST_FILE};

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join(MANIFEST_FILE), data).unwrap();
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut tag = [0u8; 32];
    tag.copy_from_slice(d.as_ref());
    let key = VolumeKey::from_bytes([7; 32]);
    let _ = Volume::open(dir.path(), &key, &VolumeTag(tag));
});
