//! Fuzzes placeholder scanning and substitution: no panics; found ranges are
//! ordered, in bounds and cover exactly a placeholder; substitution with the
//! placeholder's own canonical text finds the same placeholders again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_session::placeholder::{find_bytes, substitute_bytes};

fuzz_target!(|data: &[u8]| {
    let Ok(found) = find_bytes(data) else {
        return;
    };
    let mut last = 0;
    for (range, ph) in &found {
        assert!(range.start >= last && range.end <= data.len() && range.start < range.end);
        assert!(data[range.clone()].starts_with(b"$$") && data[range.clone()].ends_with(b"$$"));
        assert!(!ph.secret.is_empty());
        last = range.end;
    }
    let rewritten = substitute_bytes(data, |p| Ok::<_, ()>(p.to_string().into_bytes()))
        .expect("scan succeeded before");
    let again = find_bytes(&rewritten).expect("canonical placeholders scan");
    let a: Vec<_> = found.into_iter().map(|(_, p)| p).collect();
    let b: Vec<_> = again.into_iter().map(|(_, p)| p).collect();
    assert_eq!(a, b);
});
