//! `cargo bench -p sigil-session`: parse, validate, hash and emit speed,
//! as ratios against a reference measured in the same run: `serde_json`
//! parsing the session's canonical JSON into a generic value (same content,
//! a simpler grammar and no validation, so a lower bound). Prints a table.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sigil_session::Session;

/// Median time per call over several rounds of ~200 ms.
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let mut iters = 1u32;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() > Duration::from_millis(20) {
            break;
        }
        iters *= 2;
    }
    let mut rounds: Vec<Duration> = (0..9)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed() / iters
        })
        .collect();
    rounds.sort();
    rounds[rounds.len() / 2]
}

fn large_session(n: usize) -> String {
    let mut y = String::from("name: bench/large\nsecrets:\n");
    for i in 0..n {
        y.push_str(&format!("  - {{name: s{i}, kind: ascii, size: 16}}\n"));
    }
    y.push_str("services:\n");
    for i in 0..n / 10 {
        y.push_str(&format!(
            "  - name: svc{i}\n    command: /bin/app --id {i} --secret $$SIGIL::s{i}$$\n    environment:\n      A: \"$$SIGIL::s{}:hex$$\"\n    attestation:\n      - mrenclave: {}\n",
            i + 1,
            "ab".repeat(32)
        ));
    }
    y
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let docs = [
        (
            "5gzorro example",
            include_str!("../tests/data/monitoring-aggregator.yaml").to_owned(),
        ),
        ("large (1000 secrets, 100 services)", large_session(1000)),
    ];
    println!(
        "{:<36} {:<22} {:>10} {:>12} {:>9}",
        "document", "operation", "bytes", "time/op", "ratio"
    );
    for (label, yaml) in &docs {
        let s = Session::parse(yaml).expect("benchmark document is valid");
        let json = String::from_utf8(s.canonical_form()).expect("utf8");
        let reference = time(|| {
            black_box(serde_json::from_str::<serde_json::Value>(black_box(&json)).expect("json"));
        });
        let rows = [
            ("serde_json (reference)", json.len(), reference),
            (
                "Session::parse",
                yaml.len(),
                time(|| {
                    black_box(Session::parse(black_box(yaml)).expect("valid"));
                }),
            ),
            (
                "Session::hash",
                json.len(),
                time(|| {
                    black_box(black_box(&s).hash());
                }),
            ),
            (
                "Session::to_yaml",
                yaml.len(),
                time(|| {
                    black_box(black_box(&s).to_yaml());
                }),
            ),
        ];
        for (op, bytes, t) in rows {
            println!(
                "{:<36} {:<22} {:>10} {:>10.1}µs {:>8.2}x",
                label,
                op,
                bytes,
                t.as_secs_f64() * 1e6,
                t.as_secs_f64() / reference.as_secs_f64()
            );
        }
    }
}
