//! Benchmark driver for `bench/init.sh` (not a test; prints a table).
//!
//! 1. Start-to-exec overhead: N starts of `sh -c :` through the launcher
//!    (simulation mode, real CAS on loopback, one sealed volume, one injected
//!    file) against N plain starts of the same program in the same run.
//! 2. CAS attestation throughput: C concurrent launchers (the library's
//!    attestation path: TLS 1.3 handshake, exporter, evidence, POST) doing
//!    M attestations in total; attestations/s and latency percentiles.
//!
//! Usage: bench_launch LAUNCHER [STARTS] [CONCURRENCY] [ATTESTATIONS]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sigil_init::attest::{run_attestation, AttestParams};
use sigil_init::config::ConfigId;
use sigil_init::evidence::Provider;

#[path = "../tests/support/mod.rs"]
mod support;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let launcher = args
        .get(1)
        .expect("usage: bench_launch LAUNCHER [STARTS] [CONCURRENCY] [ATTESTATIONS]")
        .clone();
    let starts: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let conc: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let total: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(400);

    let cas = support::Cas::start(&"33".repeat(32), "bench", |c| {
        c.limits.attest_rate_per_sec = 1e9;
        c.limits.attest_burst = u32::MAX;
    });

    // The image tree on tmpfs.
    let (root, sealed) = support::image_tree(
        Path::new("/dev/shm"),
        "sigil-bench-",
        "main.txt",
        &[b'x'; 64 * 1024],
    );
    let r = root.path();
    let tag = hex::encode(sealed.tag.0);
    let init = support::init_config(&cas, "bench", "app", &tag, vec![]);
    fs::write(r.join("sigil/init.toml"), init.to_toml().unwrap()).unwrap();
    let m = sigil_init::measurement::from_paths(
        Path::new(&launcher),
        &r.join("sigil/init.toml"),
        &r.join("usr/bin/sh"),
    )
    .unwrap();
    let yaml = format!(
        "name: bench\nservices:\n  - name: app\n    image_name: img\n    command: [\"sh\", \"-c\", \":\"]\n    environment:\n      KEY: \"$$SIGIL::k$$\"\n    attestation:\n      - simulation_measurement: {}\nsecrets:\n  - name: k\n    kind: ascii\n    size: 32\nvolumes:\n  - name: app\n    key: {}\n    tag: {}\nimages:\n  - name: img\n    volumes:\n      - name: app\n        path: /app\n    injection_files:\n      - path: /run/sigil/secret\n        content: \"$$SIGIL::k$$\"\nsecurity:\n  attestation:\n    mode: simulation\n",
        hex::encode(m),
        &*sealed.key.to_hex(),
        tag
    );
    cas.create(&yaml);

    // 1. Start-to-exec.
    let run_plain = || {
        let t = Instant::now();
        let st = Command::new(r.join("usr/bin/sh"))
            .args(["-c", ":"])
            .env_clear()
            .status()
            .unwrap();
        assert!(st.success());
        t.elapsed()
    };
    let run_launcher = || {
        // The volume is opened afresh each start, as in a new container.
        let _ = fs::remove_dir_all(r.join("run/sigil/volumes"));
        let _ = fs::remove_file(r.join("app"));
        let t = Instant::now();
        let out = Command::new(&launcher)
            .env_clear()
            .env("SIGIL_ROOT", r)
            .env("SIGIL_MODE", "sim")
            .env("SIGIL_LOG", "quiet")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let e = t.elapsed();
        assert!(
            out.status.success(),
            "launcher failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        e
    };
    // Warm up both paths (page cache, CAS session cache).
    for _ in 0..5 {
        run_plain();
        run_launcher();
    }
    let mut plain = Vec::with_capacity(starts);
    let mut launched = Vec::with_capacity(starts);
    // Interleave so that both see the same machine load.
    for _ in 0..starts {
        plain.push(ms(run_plain()));
        launched.push(ms(run_launcher()));
    }
    plain.sort_by(|a, b| a.total_cmp(b));
    launched.sort_by(|a, b| a.total_cmp(b));
    let (p50p, p99p) = (pct(&plain, 0.5), pct(&plain, 0.99));
    let (p50l, p99l) = (pct(&launched, 0.5), pct(&launched, 0.99));
    println!("## start-to-exit of `sh -c :` ({starts} starts each, interleaved)");
    println!();
    println!("| run | p50 ms | p99 ms | p50 ratio |");
    println!("|---|---:|---:|---:|");
    println!("| plain start (reference) | {p50p:.2} | {p99p:.2} | 1.00 |");
    println!(
        "| sigil-init sim + CAS loopback | {p50l:.2} | {p99l:.2} | {:.2} |",
        p50l / p50p
    );
    println!(
        "| added by the launcher | {:.2} | {:.2} | target < 20 ms at p50 |",
        p50l - p50p,
        p99l - p99p
    );
    println!();

    // 2. Throughput.
    let params = AttestParams {
        cas_addr: cas.addr(),
        pin: cas.pin(),
        config_id: ConfigId {
            session: "bench".into(),
            service: "app".into(),
        },
        provider: Provider::Simulation { measurement: m },
        deadline: Duration::from_secs(30),
        io_timeout: Duration::from_secs(30),
    };
    let single = {
        let mut v = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            run_attestation(&params, |_, _| {}).unwrap();
            v.push(ms(t.elapsed()));
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let lat = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..conc)
        .map(|_| {
            let (p, lat, next) = (params.clone(), lat.clone(), next.clone());
            std::thread::spawn(move || {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    let t = Instant::now();
                    run_attestation(&p, |_, _| {}).unwrap();
                    lat.lock().unwrap().push(ms(t.elapsed()));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let mut lat = lat.lock().unwrap().clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("## CAS attestation throughput ({cores} cores shared by CAS and launchers)");
    println!();
    println!("| clients | attestations | per second | p50 ms | p99 ms |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| 1 (sequential, reference) | 50 | {:.0} | {:.2} | {:.2} |",
        50.0 / (single.iter().sum::<f64>() / 1e3),
        pct(&single, 0.5),
        pct(&single, 0.99)
    );
    println!(
        "| {conc} | {total} | {:.0} | {:.2} | {:.2} |",
        total as f64 / wall,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    drop(cas);
}
