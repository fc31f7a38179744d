//! DCAP verification throughput: a plain `dcap_qvl` verify per quote versus
//! Sigil's cached path, on the real SGX and TDX quotes of the shared test
//! data, in the same run; plus the ceiling set by ring's ECDSA P-256 speed.
//! Also checks that both give identical verdicts on every row of
//! EXPECTED_DCAP.tsv. Run with `bench/attest.sh`.

use sigil_attest::collateral::{Collateral, StaticCollateral};
use sigil_attest::dcap::{DcapVerifier, INTEL_ROOT_CA_DER};
use sigil_attest::time_util::parse_time;
use sigil_testsupport::attestation::{path, read_evidence, tsv};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Row {
    name: String,
    quote: Vec<u8>,
    coll: Collateral,
    time: u64,
    allow_debug: bool,
    allow_service_td: bool,
}

fn qvl_verdict(r: &Row) -> String {
    let v = dcap_qvl::verify::QuoteVerifier::new(INTEL_ROOT_CA_DER.to_vec())
        .with_config::<dcap_qvl::configs::RingConfig>()
        .allow_debug(r.allow_debug)
        .allow_service_td(r.allow_service_td);
    match v.verify(&r.quote, &r.coll.inner, r.time) {
        Ok(x) => format!("OK {} {:?}", x.status, x.advisory_ids),
        Err(_) => "ERR".into(),
    }
}

/// Sigil's verdict under the policy dcap-qvl's `verify` applies: every TCB
/// status reported, debug / service TD only if allowed, SEPT_VE required.
fn sigil_verdict(v: &DcapVerifier, r: &Row) -> String {
    match v.verify_quote(&r.quote, r.time) {
        Ok(c) => {
            if (c.debug && !r.allow_debug)
                || (c.has_service_td() && !r.allow_service_td)
                || c.sept_ve_disabled == Some(false)
            {
                "ERR".into()
            } else {
                format!("OK {} {:?}", c.tcb_status, c.advisory_ids)
            }
        }
        Err(_) => "ERR".into(),
    }
}

fn rate(mut f: impl FnMut(), min: Duration) -> f64 {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < min {
        for _ in 0..10 {
            f();
        }
        n += 10;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let min = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2000),
    );
    let rows: Vec<Row> = tsv("EXPECTED_DCAP.tsv")
        .into_iter()
        .map(|f| Row {
            name: f[0].clone(),
            quote: read_evidence(&f[0]),
            coll: Collateral::from_file(&path(&f[1])).expect("collateral"),
            time: parse_time(&f[2]).expect("time"),
            allow_debug: f[3].contains("ALLOW_DEBUG=1"),
            allow_service_td: f[3].contains("ALLOW_SERVICE_TD=1"),
        })
        .collect();

    // Identical verdicts on every row.
    let mut mismatches = 0;
    for r in &rows {
        let v = DcapVerifier::new(Arc::new(StaticCollateral(Arc::new(r.coll.clone()))));
        let (a, b) = (qvl_verdict(r), sigil_verdict(&v, r));
        if a != b {
            mismatches += 1;
            println!("VERDICT MISMATCH {}: dcap-qvl {a} / sigil {b}", r.name);
        }
    }
    println!(
        "verdicts: {} rows of EXPECTED_DCAP.tsv, {} identical, {} different\n",
        rows.len(),
        rows.len() - mismatches,
        mismatches
    );

    // ring ECDSA P-256 verification rate: the hardware ceiling.
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .expect("keygen");
    let kp = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .expect("key");
    use ring::signature::KeyPair as _;
    let msg = vec![7u8; 632];
    let sig = kp.sign(&rng, &msg).expect("sign");
    let pk = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        kp.public_key().as_ref().to_vec(),
    );
    let p256 = rate(
        || {
            pk.verify(&msg, sig.as_ref()).expect("verify");
        },
        min,
    );
    // Per quote, at least the QE report and the quote signatures.
    let ceiling = p256 / 2.0;

    println!(
        "{:<56} {:>12} {:>12} {:>7} {:>9}",
        "quote (verifications/s, 1 core)", "dcap-qvl", "sigil", "ratio", "of ceil."
    );
    let mut seen = std::collections::HashSet::new();
    let mut ratios = Vec::new();
    for r in &rows {
        if !seen.insert(r.name.clone()) || !qvl_verdict(r).starts_with("OK") {
            continue;
        }
        let qv = dcap_qvl::verify::QuoteVerifier::new(INTEL_ROOT_CA_DER.to_vec())
            .with_config::<dcap_qvl::configs::RingConfig>()
            .allow_debug(r.allow_debug)
            .allow_service_td(r.allow_service_td);
        let plain = rate(
            || {
                qv.verify(&r.quote, &r.coll.inner, r.time)
                    .expect("dcap-qvl");
            },
            min,
        );
        let v = DcapVerifier::new(Arc::new(StaticCollateral(Arc::new(r.coll.clone()))));
        let cached = rate(
            || {
                v.verify_quote(&r.quote, r.time).expect("sigil");
            },
            min,
        );
        ratios.push(cached / plain);
        println!(
            "{:<56} {:>12.0} {:>12.0} {:>6.2}x {:>8.0}%",
            r.name,
            plain,
            cached,
            cached / plain,
            100.0 * cached / ceiling
        );
    }
    let geo = ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len().max(1) as f64;
    println!(
        "\ngeometric mean ratio sigil / dcap-qvl: {:.2}x (target >= 3x)",
        geo.exp()
    );
    println!(
        "ceiling: ring ECDSA P-256 {:.0} verifications/s / 2 signatures per quote = {:.0} quotes/s",
        p256, ceiling
    );
    if mismatches > 0 {
        std::process::exit(1);
    }
}
