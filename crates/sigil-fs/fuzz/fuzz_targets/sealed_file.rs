//! A sealed file as read by `Volume::reader` and `verify`: a real volume is
//! sealed once, then the fuzzer's bytes replace the byte range of one of its
//! files inside its blob (byte 0 picks which: encrypted or authenticated,
//! both packed into one blob, or plain, alone in its blob), so lengths and
//! neighbours in a pack are hostile too. Reading and verifying must fail
//! cleanly or, for unchanged input, succeed; never panic.
#![no_main]
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigil_fs::{seal_with_key, verify, Regions, SealOptions, Volume, VolumeKey, VolumeTag};

struct Fixture {
    _dir: tempfile::TempDir,
    vol: PathBuf,
    tag: VolumeTag,
    key: VolumeKey,
    /// (blob, its range for the file, volume path, original blob bytes)
    blobs: Vec<(PathBuf, std::ops::Range<usize>, &'static str, Vec<u8>)>,
}

static FIX: OnceLock<Fixture> = OnceLock::new();

fn fixture() -> &'static Fixture {
    FIX.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("enc")).unwrap();
        std::fs::create_dir_all(src.join("auth")).unwrap();
        std::fs::write(src.join("enc/f"), b"encrypted content spanning a few chunks").unwrap();
        std::fs::write(src.join("auth/f"), b"authenticated content spanning chunks").unwrap();
        std::fs::write(src.join("plain"), b"plain").unwrap();
        let key = VolumeKey::from_bytes([9; 32]);
        let vol = dir.path().join("vol");
        let regions = Regions::new().encrypt("enc").authenticate("auth");
        let opts = SealOptions { chunk_size: 16, threads: Some(1) };
        let tag = seal_with_key(&src, &vol, &regions, &opts, &key).unwrap();
        let v = Volume::open(&vol, &key, &tag).unwrap();
        let blobs = ["enc/f", "auth/f", "plain"]
            .into_iter()
            .map(|p| {
                let (b, r) = v.data_range(p).unwrap();
                let orig = std::fs::read(&b).unwrap();
                (b, r.start as usize..r.end as usize, p, orig)
            })
            .collect();
        Fixture { _dir: dir, vol, tag, key, blobs }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&which, body)) = data.split_first() else { return };
    let (blob, range, path, orig) = &f.blobs[usize::from(which) % f.blobs.len()];
    let mut bytes = orig.clone();
    bytes.splice(range.clone(), body.iter().copied());
    std::fs::write(blob, &bytes).unwrap();
    let v = Volume::open(&f.vol, &f.key, &f.tag).unwrap();
    let read = v.reader(path).and_then(|mut r| {
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| sigil_fs::FsError::NotFound { path: e.to_string().into() })?;
        Ok(out)
    });
    let verified = verify(&f.vol, &f.key, &f.tag);
    if *path != "plain" && body != &orig[range.clone()] {
        assert!(read.is_err() && verified.is_err(), "tampered sealed file accepted");
    }
    std::fs::write(blob, orig).unwrap();
});
