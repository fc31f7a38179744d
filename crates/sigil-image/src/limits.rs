//! Size limits for everything read from an input image. The defaults accept
//! any real image seen in practice (multi-GB layers, 10^6 files) and refuse
//! absurd or hostile ones before they exhaust memory or disk.

/// Limits applied while reading an image.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest JSON document (index, manifest, config, docker manifest.json).
    pub max_json_bytes: u64,
    /// Largest number of layers in a manifest.
    pub max_layers: usize,
    /// Largest number of entries in an input archive or in all layers together.
    pub max_entries: u64,
    /// Largest uncompressed size of one layer (guards against decompression bombs).
    pub max_layer_bytes: u64,
    /// Largest total unpacked size of the image.
    pub max_total_bytes: u64,
    /// Longest path inside an image.
    pub max_path_len: usize,
    /// Largest file read whole into memory (ELF headers of the binary and libraries).
    pub max_elf_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_bytes: 4 << 20,
            max_layers: 256,
            max_entries: 4_000_000,
            max_layer_bytes: 64 << 30,
            max_total_bytes: 128 << 30,
            max_path_len: 4096,
            max_elf_bytes: 1 << 30,
        }
    }
}
