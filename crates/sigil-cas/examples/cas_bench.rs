//! CAS benchmark (run by `bench/cas.sh`): an in-process CAS on loopback and
//! N concurrent clients, each on its own keep-alive TLS 1.3 connection.
//! Measures session create (durable write), session read, and `/healthz`
//! (the protocol floor, as reference) — throughput and p50/p99 latency.
//!
//! Usage: `cas_bench [CLIENTS] [OPS_PER_CLIENT]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_cas::{Config, MasterKeySource, Server};
use sigil_client::{CasClient, Identity};

fn yaml(name: &str) -> String {
    format!(
        "name: {name}\nservices:\n  - name: app\n    command: [run]\n    environment:\n      PW: \"$$SIGIL::pw$$\"\nsecrets:\n  - name: pw\n    kind: ascii\n    size: 24\n  - name: key\n    kind: binary\n    size: 32\naccess_policy:\n  read: [CREATOR]\n  update: [CREATOR]\n  create_sessions: [CREATOR]\n"
    )
}

#[derive(Clone, Copy)]
enum Op {
    Health,
    Create,
    Read,
}

async fn phase(
    clients: &[Arc<CasClient>],
    ops: usize,
    op: Op,
    tag: &str,
) -> (f64, Duration, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (ci, c) in clients.iter().enumerate() {
        let c = c.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(ops);
            for i in 0..ops {
                let t = Instant::now();
                match op {
                    Op::Health => {
                        c.health().await.expect("healthz");
                    }
                    Op::Create => {
                        c.create_session(&yaml(&format!("{tag}-{ci}-{i}")))
                            .await
                            .expect("create");
                    }
                    Op::Read => {
                        c.get_session(&format!("create-{ci}-{}", i % ops))
                            .await
                            .expect("read");
                    }
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let wall = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / wall.as_secs_f64(), pct(0.50), pct(0.99))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let ops: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::new(dir.path(), "127.0.0.1:0".parse().expect("addr"));
        cfg.master_key = Some(MasterKeySource::Hex(zeroize::Zeroizing::new("44".repeat(32))));
        let server = Server::start(cfg).await.expect("start CAS");
        let id = Identity::generate("bench", &[]).expect("identity");
        let mut cs = Vec::new();
        for _ in 0..clients {
            cs.push(Arc::new(
                CasClient::connect(&server.addr.to_string(), server.fingerprint, Some(&id))
                    .await
                    .expect("connect"),
            ));
        }
        // Warm-up.
        phase(&cs, 5, Op::Health, "warm").await;
        let h = phase(&cs, ops, Op::Health, "health").await;
        let c = phase(&cs, ops, Op::Create, "create").await;
        let r = phase(&cs, ops, Op::Read, "create").await;
        println!("CAS benchmark: {clients} clients x {ops} ops, keep-alive TLS 1.3 on loopback, redb store with fsync");
        println!("| operation        | ops/s    | p50 ms | p99 ms | ops/s vs /healthz |");
        println!("|------------------|----------|--------|--------|-------------------|");
        for (name, (tput, p50, p99)) in [
            ("GET /healthz", h),
            ("session create", c),
            ("session read", r),
        ] {
            println!(
                "| {name:<16} | {tput:>8.0} | {:>6.2} | {:>6.2} | {:>17.3} |",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                tput / h.0
            );
        }
        server.shutdown().await;
    });
}
