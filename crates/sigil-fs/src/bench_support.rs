//! The in-memory chunk codec, exposed only for the `codec` benchmark
//! (`benches/codec.rs`). Not a stable API.

use crate::crypto::{FileCrypto, FileKeys};
use crate::format::{FileHeader, Layout, TAG_LEN};
use crate::{FsError, Region, VolumeKey};

/// Per-file codec, exactly as used when sealing and opening files.
pub struct Codec {
    fc: FileCrypto,
    layout: Layout,
}

impl Codec {
    /// Codec of a file of `size` bytes at `path`.
    pub fn new(
        key: &VolumeKey,
        region: Region,
        chunk_size: u32,
        size: u64,
        path: &[u8],
    ) -> Result<Self, FsError> {
        let header = FileHeader {
            region,
            chunk_size,
            file_id: [1; 16],
            size,
        };
        let layout = header.layout().map_err(FsError::InvalidOptions)?;
        Ok(Codec {
            fc: FileCrypto::new(&FileKeys::new(key), &header, path)?,
            layout,
        })
    }

    /// Seals `buf` (the whole plaintext) chunk by chunk in place, writing
    /// the tags into `tags` (one per chunk).
    pub fn seal(&self, buf: &mut [u8], tags: &mut [[u8; TAG_LEN]]) -> Result<(), FsError> {
        let n = self.layout.chunks;
        for (i, (chunk, tag)) in buf
            .chunks_mut(self.layout.chunk_size as usize)
            .zip(tags.iter_mut())
            .enumerate()
        {
            *tag = self.fc.seal_chunk(i as u64, i as u64 + 1 == n, chunk)?;
        }
        Ok(())
    }

    /// Opens what [`Codec::seal`] produced; returns the failing chunk.
    pub fn open(&self, buf: &mut [u8], tags: &[[u8; TAG_LEN]]) -> Result<(), u64> {
        let n = self.layout.chunks;
        for (i, (chunk, tag)) in buf
            .chunks_mut(self.layout.chunk_size as usize)
            .zip(tags.iter())
            .enumerate()
        {
            self.fc
                .open_chunk(i as u64, i as u64 + 1 == n, chunk, tag)
                .map_err(|_| i as u64)?;
        }
        Ok(())
    }
}
