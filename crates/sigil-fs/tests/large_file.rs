//! A file larger than 4 GiB round-trips (64-bit sizes and offsets, chunk
//! counters past 2^32 bytes). Needs ~4.3 GB of free disk and a few seconds
//! of both cores, so it is ignored by default; run it with
//! `cargo test -p sigil-fs --test large_file -- --ignored`.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use sigil_fs::*;

#[test]
#[ignore = "writes 4.3 GB; run by hand (see module docs)"]
fn file_over_4_gib_round_trips_with_random_access() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let size: u64 = (4 << 30) + 12_345;
    let f = File::create(src.join("huge")).unwrap();
    f.set_len(size).unwrap();
    // Markers just below and above 4 GiB and at the very end; the rest is a hole.
    let marks: [(u64, &[u8]); 3] = [
        ((4 << 30) - 8, b"BELOW-4G-MARK+ABOVE"),
        (3 << 30, b"three gib"),
        (size - 6, b"THEEND"),
    ];
    for (off, m) in marks {
        f.write_all_at(m, off).unwrap();
    }
    drop(f);
    let vol = t.path().join("vol");
    let opts = SealOptions {
        chunk_size: 1 << 24,
        threads: None,
    };
    let s = seal(&src, &vol, &Regions::with_default(Region::Encrypted), &opts).unwrap();
    fs::remove_file(src.join("huge")).unwrap();
    let r = verify(&vol, &s.key, &s.tag).unwrap();
    assert_eq!(r.bytes, size);
    let v = Volume::open(&vol, &s.key, &s.tag).unwrap();
    let mut rd = v.reader("huge").unwrap();
    assert_eq!(rd.len(), size);
    for (off, m) in marks {
        rd.seek(SeekFrom::Start(off)).unwrap();
        let mut got = vec![0u8; m.len()];
        rd.read_exact(&mut got).unwrap();
        assert_eq!(got, m, "at {off}");
    }
    rd.seek(SeekFrom::Start(100)).unwrap();
    let mut zeros = [1u8; 64];
    rd.read_exact(&mut zeros).unwrap();
    assert_eq!(zeros, [0u8; 64]);
    let mut tail = Vec::new();
    rd.seek(SeekFrom::End(-6)).unwrap();
    rd.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, b"THEEND");
}
