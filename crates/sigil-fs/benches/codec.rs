//! Single-core throughput of the in-memory chunk codec (AES-256-GCM STREAM
//! and the authenticated region's tags), 64 KiB chunks. Prints MB/s (10^6
//! bytes per second); run by `bench/fs.sh`, which prints OpenSSL's figure
//! beside it.
//!
//! `cargo bench -p sigil-fs --bench codec [-- MIB [CHUNK]]`

use std::time::Instant;

use sigil_fs::bench_support::Codec;
use sigil_fs::{Region, VolumeKey};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mib: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(64);
    let chunk: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(65536);
    let rounds = 1024 / mib.clamp(1, 1024) + 2;
    let size = mib << 20;
    let key = VolumeKey::from_bytes([5; 32]);
    let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let orig = buf.clone();
    for region in [Region::Encrypted, Region::Authenticated] {
        let codec = Codec::new(&key, region, chunk, size as u64, b"bench/file").unwrap();
        let mut tags = vec![[0u8; 16]; size.div_ceil(chunk as usize)];
        // Warm up once, then measure.
        buf.copy_from_slice(&orig);
        codec.seal(&mut buf, &mut tags).unwrap();
        codec.open(&mut buf, &tags).unwrap();
        let t = Instant::now();
        for _ in 0..rounds {
            // Sealing the ciphertext again is as much work as sealing
            // plaintext; only the last round's output is kept.
            codec.seal(&mut buf, &mut tags).unwrap();
        }
        let seal = (size * rounds) as f64 / t.elapsed().as_secs_f64() / 1e6;
        buf.copy_from_slice(&orig);
        codec.seal(&mut buf, &mut tags).unwrap();
        // Open needs the sealed bytes back each round: the refill copy is
        // included in the timing (pessimistic by one memcpy).
        let sealed = buf.clone();
        let t = Instant::now();
        for _ in 0..rounds {
            buf.copy_from_slice(&sealed);
            codec.open(&mut buf, &tags).unwrap();
        }
        let open = (size * rounds) as f64 / t.elapsed().as_secs_f64() / 1e6;
        assert!(buf == orig, "codec did not round-trip");
        println!("codec {region} chunk={chunk} seal_MBps={seal:.0} open_MBps={open:.0}");
    }
}
