//! The bytes of sealed files match FORMAT.md §3, recomputed here directly
//! from the specification with `ring` (not through the crate's code): the
//! header, the key derivation, the STREAM nonces, encrypted chunks and the
//! tags of authenticated chunks (the tag of the chunk's AES-256-GCM
//! encryption, the chunk itself stored in clear).

use std::fs;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::{digest, hkdf};
use sigil_fs::*;

const CS: usize = 16;

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The sealed form of `content` at `path` per FORMAT.md §3, given the
/// header that the sealer wrote (its file id is random).
fn expected_sealed(key: &[u8; 32], header: &[u8], path: &[u8], content: &[u8]) -> Vec<u8> {
    let mut a = header.to_vec();
    a.extend_from_slice(digest::digest(&digest::SHA256, path).as_ref());
    assert_eq!(a.len(), 72);
    let mut okm = [0u8; 39];
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"sigil-fs/v1")
        .extract(key)
        .expand(&[b"sigil-fs/v1/file", &a], Len(39))
        .unwrap()
        .fill(&mut okm)
        .unwrap();
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap());
    let authenticated = header[9] == 2;
    let chunks: Vec<&[u8]> = if content.is_empty() {
        vec![&[]]
    } else {
        content.chunks(CS).collect()
    };
    let mut out = header.to_vec();
    for (i, c) in chunks.iter().enumerate() {
        let mut nonce = [0u8; 12];
        nonce[..7].copy_from_slice(&okm[32..]);
        nonce[7..11].copy_from_slice(&(i as u32).to_be_bytes());
        nonce[11] = u8::from(i + 1 == chunks.len());
        let mut data = c.to_vec();
        let tag = k
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&a),
                &mut data,
            )
            .unwrap();
        // Authenticated: clear chunk, the ciphertext is thrown away.
        out.extend_from_slice(if authenticated { c } else { &data });
        out.extend_from_slice(tag.as_ref());
    }
    out
}

#[test]
fn sealed_files_match_the_specification() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("enc")).unwrap();
    fs::create_dir_all(src.join("auth")).unwrap();
    let content: Vec<u8> = (0..40u8).collect(); // 3 chunks, the last one short
    let files: [(&str, &[u8], u8); 4] = [
        ("enc/f", &content, 1),
        ("enc/empty", b"", 1),
        ("auth/f", &content, 2),
        ("auth/one", b"exactly sixteen!", 2),
    ];
    for (p, c, _) in files {
        fs::write(src.join(p), c).unwrap();
    }
    let key_bytes = [7u8; 32];
    let key = VolumeKey::from_bytes(key_bytes);
    let vol = t.path().join("vol");
    let regions = Regions::new().encrypt("enc").authenticate("auth");
    let opts = SealOptions {
        chunk_size: CS as u32,
        threads: Some(2),
    };
    let tag = seal_with_key(&src, &vol, &regions, &opts, &key).unwrap();
    let v = Volume::open(&vol, &key, &tag).unwrap();
    // blob -> ranges of the files in it (FORMAT.md §1: they tile the blob).
    let mut blobs: std::collections::BTreeMap<_, Vec<std::ops::Range<u64>>> = Default::default();
    for (p, c, region_code) in files {
        let (blob, range) = v.data_range(p).unwrap();
        blobs.entry(blob.clone()).or_default().push(range.clone());
        let whole = fs::read(&blob).unwrap();
        let sealed = &whole[range.start as usize..range.end as usize];
        let header = &sealed[..40];
        assert_eq!(&header[..8], b"SIGILFSF", "{p}");
        assert_eq!(header[8], 1, "{p}: version");
        assert_eq!(header[9], region_code, "{p}: region");
        assert_eq!(&header[12..16], &(CS as u32).to_le_bytes(), "{p}");
        assert_eq!(&header[32..40], &(c.len() as u64).to_le_bytes(), "{p}");
        let want = expected_sealed(&key_bytes, header, p.as_bytes(), c);
        assert_eq!(sealed, want, "{p}: sealed bytes differ from FORMAT.md §3");
        assert_eq!(&header[16..32], &sealed[16..32]);
        if region_code == 2 {
            // Stored in clear.
            assert_eq!(&sealed[40..40 + c.len().min(CS)], &c[..c.len().min(CS)]);
        }
    }
    // Small files are packed: fewer blobs than files, each exactly tiled.
    assert!(blobs.len() < files.len(), "small files were not packed");
    for (blob, mut ranges) in blobs {
        ranges.sort_by_key(|r| r.start);
        let mut end = 0;
        for r in &ranges {
            assert_eq!(r.start, end, "{}: gap or overlap", blob.display());
            end = r.end;
        }
        assert_eq!(
            fs::metadata(&blob).unwrap().len(),
            end,
            "{}",
            blob.display()
        );
    }
    verify(&vol, &key, &tag).unwrap();
}
