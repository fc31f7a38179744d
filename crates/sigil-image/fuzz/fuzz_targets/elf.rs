//! Parses arbitrary bytes as an ELF file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sigil_image::elf::parse(data);
});
