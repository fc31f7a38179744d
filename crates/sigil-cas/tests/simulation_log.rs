//! Simulation evidence carries no hardware guarantee: the CAS accepts it
//! only for sessions in `attestation.mode: simulation`, and says so at
//! WARN level on every acceptance (not once per process), with the config
//! id and the peer. A refusal of simulation evidence for a hardware
//! session logs no acceptance.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use sigil_attest::simulation::SimulationVerifier;
use sigil_attest::Verifiers;
use sigil_cas::ConnInfo;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const M: [u8; 32] = [4; 32];

/// Collects (level, message) of every event.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<(Level, String)>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut m = Message(String::new());
        e.record(&mut m);
        if let Ok(mut v) = self.0.lock() {
            v.push((*e.metadata().level(), m.0));
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn yaml(name: &str, mode: &str) -> String {
    format!(
        "name: {name}\nservices:\n  - name: app\n    command: [/bin/app]\n    attestation:\n      - simulation_measurement: {}\nsecurity:\n  attestation:\n    mode: {mode}\n",
        hex::encode(M)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_simulation_acceptance_is_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let who = id("dev").fingerprint();
    s.state
        .create_session(&who, &yaml("sim", "simulation"))
        .unwrap();
    s.state
        .create_session(&who, &yaml("hw", "hardware"))
        .unwrap();
    let exporter = [6u8; 64];
    let conn = ConnInfo {
        peer: "192.0.2.7:4000".parse().unwrap(),
        client: None,
        exporter: Some(exporter),
    };
    let verifiers = Verifiers::new().with(Box::new(SimulationVerifier));
    let log = Collect::default();
    let st = s.state.clone();
    let sub = log.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        tracing::subscriber::with_default(sub, || {
            ["sim/app", "sim/app", "hw/app"]
                .iter()
                .map(|c| {
                    sigil_cas::attest_api::handle_with(
                        &st,
                        &conn,
                        &sim_attest_body(c, M, exporter),
                        &verifiers,
                    )
                    .status()
                    .as_u16()
                })
                .collect::<Vec<_>>()
        })
    })
    .await
    .unwrap();
    assert_eq!(statuses, vec![200, 200, 403]);
    let events = log.0.lock().unwrap().clone();
    let warnings: Vec<&String> = events
        .iter()
        .filter(|(l, m)| *l == Level::WARN && m.contains("SIMULATION attestation accepted"))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(warnings.len(), 2, "{events:?}");
    for w in &warnings {
        assert!(w.contains("sim/app") && w.contains("192.0.2.7:4000"), "{w}");
        assert!(w.contains("no hardware protection"), "{w}");
    }
    assert!(
        !events
            .iter()
            .any(|(_, m)| m.contains("accepted for hw/app")),
        "{events:?}"
    );
    s.shutdown().await;
}
