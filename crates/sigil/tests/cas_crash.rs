//! Crash safety: SIGKILL the CAS during concurrent updates, restart it on
//! the same data directory, and find every acknowledged update present and
//! the audit chain intact.

mod cas_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cas_support::*;
use sigil_client::{BlockingCasClient, Fingerprint, Identity};

const WRITERS: usize = 4;

struct Outcome {
    name: String,
    acked: Vec<String>,
    in_flight: Option<String>,
}

#[test]
fn sigkill_during_concurrent_updates_loses_no_acknowledged_write() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("cas");
    let cas = Cas::start(&data);
    let pin: Fingerprint = cas.fingerprint.parse().unwrap();
    let id = Identity::generate("writer", &[]).unwrap();
    let acks = Arc::new(AtomicUsize::new(0));

    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (addr, id, acks) = (cas.addr.clone(), id.clone(), acks.clone());
        handles.push(std::thread::spawn(move || {
            let name = format!("crash-{w}");
            let c = BlockingCasClient::connect(&addr, pin, Some(&id)).unwrap();
            let yaml = session_yaml(&name, 8, CREATOR_ONLY);
            let first = c.run(|c| c.create_session(&yaml)).unwrap();
            let mut out = Outcome {
                name: name.clone(),
                acked: vec![first.hash.clone()],
                in_flight: None,
            };
            acks.fetch_add(1, Ordering::SeqCst);
            let mut head = first.hash;
            for i in 0u32.. {
                // Alternate sizes so that secrets are regenerated too.
                let body = format!(
                    "predecessor: {head}\n{}",
                    session_yaml(&name, 8 + (i % 5), CREATOR_ONLY)
                );
                let expected = sigil_session::Session::parse(&body)
                    .unwrap()
                    .hash()
                    .to_string();
                out.in_flight = Some(expected.clone());
                match c.run(|c| c.update_session_exact(&body)) {
                    Ok(w) => {
                        assert_eq!(w.hash, expected);
                        out.acked.push(w.hash.clone());
                        out.in_flight = None;
                        head = w.hash;
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    // The CAS is gone: the in-flight update may or may not have landed.
                    Err(_) => return out,
                }
            }
            out
        }));
    }
    // Kill once enough updates were acknowledged, while writers are busy.
    while acks.load(Ordering::SeqCst) < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cas.kill();
    let outcomes: Vec<Outcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        outcomes.iter().all(|o| o.acked.len() > 1),
        "every writer got updates in"
    );

    // Restart on the same data directory (the audit log is verified at start).
    let cas = Cas::start(&data);
    let c = BlockingCasClient::connect(&cas.addr, pin, Some(&id)).unwrap();
    let log = c.run(|c| c.audit()).unwrap();
    sigil_client::audit::verify_chain(&log, 0, [0; 32]).unwrap();
    let recorded: HashSet<&str> = log.iter().filter_map(|e| e.new_hash.as_deref()).collect();
    for o in &outcomes {
        let stored = c.run(|c| c.get_session(&o.name)).unwrap().hash;
        let last = o.acked.last().unwrap();
        assert!(
            &stored == last || Some(&stored) == o.in_flight.as_ref(),
            "{}: stored {stored}, last acknowledged {last}, in flight {:?}",
            o.name,
            o.in_flight
        );
        for h in &o.acked {
            assert!(
                recorded.contains(h.as_str()),
                "{}: acknowledged {h} not in the audit log",
                o.name
            );
        }
    }
    let cfg = d.path().join("config");
    let idd = cfg.join("identity");
    id.save(&idd).unwrap();
    let v = ok(&sigil(
        &cfg,
        &[
            "audit",
            "verify",
            "--cas",
            &cas.addr,
            "--cas-fingerprint",
            &cas.fingerprint,
        ],
    ));
    assert!(v.contains("audit log intact"), "{v}");
    cas.stop();
}
