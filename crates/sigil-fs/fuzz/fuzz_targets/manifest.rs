//! The manifest plaintext decoder (what an authenticated manifest turns
//! into): must never panic, and whatever it accepts must re-encode to the
//! same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_fs::format::{FileHeader, Manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(h) = FileHeader::decode(data) {
        assert_eq!(&h.encode()[..], &data[..40]);
    }
});
