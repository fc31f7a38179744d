//! The OCI JSON documents on their own (index, manifest, descriptor,
//! platform), as `sigil-image` and `sigil-registry` read them since they
//! share sigil-oci's types, plus digests and the hashing reader's limit.
//! Invariants: no panic; errors one line; what parses re-serialises to a
//! document that parses to the same value; an accepted digest is
//! `sha256:` and 64 lowercase hex digits and its blob path stays inside
//! `blobs/sha256/`; a platform's text form parses back to itself; the
//! hashing reader never yields more than its limit.
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;
use sigil_oci::digest::HashReader;
use sigil_oci::spec::{Descriptor, Index, Manifest, Platform};
use sigil_oci::Digest;

fn check_descriptor(d: &Descriptor) {
    match d.digest() {
        Ok(g) => {
            let hex = g.hex();
            assert!(
                hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            assert_eq!(g.blob_path(), format!("blobs/sha256/{hex}"));
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
    let _ = d.has_ref_name("latest");
    if let Some(p) = &d.platform {
        let _ = p.satisfies(&Platform::default());
        // A platform read from JSON need not be well-formed text; if its
        // text form parses, it is the same platform.
        if let Ok(again) = p.to_string().parse::<Platform>() {
            assert_eq!(&again, p);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(i) = serde_json::from_slice::<Index>(data) {
        i.manifests.iter().take(64).for_each(check_descriptor);
        let again: Index = serde_json::from_slice(&serde_json::to_vec(&i).unwrap()).unwrap();
        assert_eq!(again.manifests, i.manifests);
    }
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        check_descriptor(&m.config);
        m.layers.iter().take(64).for_each(check_descriptor);
        let again: Manifest = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!((again.config, again.layers), (m.config, m.layers));
    }
    if let Ok(d) = serde_json::from_slice::<Descriptor>(data) {
        check_descriptor(&d);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        match s.parse::<Platform>() {
            Ok(p) => assert_eq!(p.to_string(), s),
            Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
        }
        if let Some(d) = Digest::parse(s) {
            assert_eq!(d.as_str(), s);
        }
    }
    // The hashing reader: the limit is the first byte (or so), the data the rest.
    if let Some((&lim, rest)) = data.split_first() {
        let mut r = HashReader::new(rest, u64::from(lim));
        let mut out = Vec::new();
        let res = r.read_to_end(&mut out);
        assert!(out.len() as u64 <= u64::from(lim));
        if rest.len() as u64 > u64::from(lim) {
            assert!(res.is_err(), "read past the limit without an error");
        }
        let (d, n) = r.finish();
        if res.is_ok() {
            assert_eq!(n, out.len() as u64);
            assert_eq!(d, Some(Digest::of(&out)));
        }
    }
});
