//! The CAS on Kubernetes: the `charts/sigil-cas` Helm chart rendered with
//! real Helm (PyPI helm-python-sdk, which embeds Helm's Go SDK), `helm lint
//! --strict`, every manifest checked with `kubernetes-validate --strict`;
//! the arguments the chart renders run through the real `sigil cas serve`;
//! and the CAS image of `scripts/build-cas-image.sh` loaded and run with
//! real podman, then used over TLS with the real client.
//!
//! Missing tools (helm_python, kubernetes-validate, podman, the static
//! binary) fail these tests under CI (`CI=true`) and skip them elsewhere.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sigil_client::{CasClient, Fingerprint};

mod cas_support;
use cas_support::sigil;
use sigil_testsupport::cli::assert_success;
use sigil_testsupport::net::free_port;
use sigil_testsupport::podman::output as podman;
use sigil_testsupport::tools::{assert_kubernetes_valid, require, require_chart_tools};

/// Lints and renders the chart with the values given as JSON; prints one
/// JSON object per line: {"path", "text"} for every non-empty template, or
/// {"error"} when lint or render fail.
const RENDER: &str = r#"
import json, sys
import helm_python as helm
chart_dir, values = sys.argv[1], json.loads(sys.argv[2])
try:
    lint = helm.lint(chart_dir, values, strict=True)
    bad = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2] + lint.get("errors", [])
    if bad:
        raise Exception("lint: " + json.dumps(bad))
    out = helm.Chart.load(chart_dir).render(values, name="rel", namespace="ns", is_install=True)
except Exception as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(0)
for path, text in sorted(out.items()):
    if text.strip():
        print(json.dumps({"path": path, "text": text}))
"#;

/// Parses rendered manifests (YAML, possibly several per file) to JSON.
const TO_JSON: &str = r#"
import json, sys, yaml
docs = []
for f in sys.argv[1:]:
    docs += [d for d in yaml.safe_load_all(open(f)) if d]
print(json.dumps(docs))
"#;

/// Helm (with PyYAML for [`TO_JSON`]) and kubernetes-validate; under CI
/// their absence is a failure, elsewhere the test skips.
fn chart_tools() -> bool {
    require_chart_tools(&["yaml"])
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart_dir() -> PathBuf {
    repo().join("charts/sigil-cas")
}

/// Renders the chart; `Err` carries Helm's message (lint, schema or `fail`).
fn try_render(values: &Value) -> Result<Vec<(String, String)>, String> {
    let r = Command::new("python3")
        .arg("-c")
        .arg(RENDER)
        .arg(chart_dir())
        .arg(values.to_string())
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "render script failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&r.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(e) = v["error"].as_str() {
            return Err(e.to_string());
        }
        out.push((
            v["path"].as_str().unwrap().to_string(),
            v["text"].as_str().unwrap().to_string(),
        ));
    }
    Ok(out)
}

/// The rendered objects of a chart that must render, after
/// `kubernetes-validate --strict` accepted every manifest.
struct Rendered {
    objects: Vec<Value>,
    notes: String,
}

impl Rendered {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let v = self.all(kind);
        assert_eq!(v.len(), 1, "expected one {kind}: {:#?}", self.objects);
        v[0]
    }

    fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    }
}

fn render(values: Value) -> Rendered {
    let files = try_render(&values).unwrap_or_else(|e| panic!("helm failed: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut notes = String::new();
    for (i, (path, text)) in files.iter().enumerate() {
        if path.ends_with("NOTES.txt") {
            notes = text.clone();
            continue;
        }
        let p = dir.path().join(format!("{i:02}.yaml"));
        std::fs::write(&p, text).unwrap();
        paths.push(p);
    }
    let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
    assert_kubernetes_valid(&paths, &all);
    let j = Command::new("python3")
        .arg("-c")
        .arg(TO_JSON)
        .args(&paths)
        .output()
        .unwrap();
    assert!(j.status.success(), "{}", String::from_utf8_lossy(&j.stderr));
    let objects: Vec<Value> = serde_json::from_slice(&j.stdout).unwrap();
    Rendered { objects, notes }
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn cas_container(workload: &Value) -> &Value {
    let c = pod_spec(workload)["containers"].as_array().unwrap();
    assert_eq!(c.len(), 1);
    &c[0]
}

fn args(workload: &Value) -> Vec<String> {
    cas_container(workload)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn env<'a>(workload: &'a Value, name: &str) -> Option<&'a Value> {
    cas_container(workload)["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
}

/// The checks every CAS pod must pass, whatever the store.
fn assert_pod_is_hardened(w: &Value) {
    let pod = pod_spec(w);
    let c = cas_container(w);
    // Probes: GET /healthz on the CAS port over TLS.
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let g = &c[probe]["httpGet"];
        assert_eq!(g["path"], "/healthz", "{probe}: {c:#}");
        assert_eq!(g["scheme"], "HTTPS", "{probe}: {c:#}");
        assert_eq!(g["port"], "https", "{probe}: {c:#}");
    }
    assert_eq!(c["ports"][0]["name"], "https");
    assert_eq!(c["ports"][0]["containerPort"], 8443);
    // Non-root, read-only root, no capabilities, no escalation, seccomp.
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert!(psc["runAsUser"].as_i64().unwrap() > 0, "{psc}");
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(c["resources"]["limits"]["memory"].is_string(), "{c:#}");
    // The master key comes from a Secret by reference, never inline.
    let mk = env(w, "SIGIL_CAS_MASTER_KEY").expect("master key env");
    assert!(mk.get("value").is_none(), "{mk}");
    assert!(mk["valueFrom"]["secretKeyRef"]["key"].is_string(), "{mk}");
    // No other variable carries a literal secret.
    for e in c["env"].as_array().unwrap() {
        let n = e["name"].as_str().unwrap();
        if n.contains("KEY") || n.contains("URL") || n.contains("PASSWORD") {
            assert!(e.get("value").is_none(), "{n} must come from a Secret: {e}");
        }
    }
    // Every mount has its volume (or claim template).
    let mut volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    if let Some(t) = w["spec"]["volumeClaimTemplates"].as_array() {
        volumes.extend(t.iter().map(|v| v["metadata"]["name"].as_str().unwrap()));
    }
    for m in c["volumeMounts"].as_array().unwrap() {
        let n = m["name"].as_str().unwrap();
        assert!(volumes.contains(&n), "mount {n} has no volume: {volumes:?}");
    }
    let a = args(w);
    assert!(
        a.contains(&"--data-dir=/var/lib/sigil-cas/data".to_string()),
        "{a:?}"
    );
    assert!(a.contains(&"--listen=0.0.0.0:8443".to_string()), "{a:?}");
    assert!(a.contains(&"--log-format=json".to_string()), "{a:?}");
}

fn same_labels(selector: &Value, w: &Value) {
    let pod_labels = &w["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "selector {k} does not match the pods");
    }
}

fn ha_values() -> Value {
    json!({"store": {"type": "postgres"}, "ha": {"enabled": true}})
}

#[test]
fn default_values_one_cas_on_the_embedded_store() {
    if !chart_tools() {
        return;
    }
    let r = render(json!({}));
    assert_eq!(r.kinds(), ["Service", "Service", "StatefulSet"]);
    // The chart never creates a Secret: key material is the operator's.
    assert!(r.all("Secret").is_empty());
    let sts = r.one("StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_pod_is_hardened(sts);
    // The redb store lives on the pod's own claim.
    let claims = sts["spec"]["volumeClaimTemplates"].as_array().unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["metadata"]["name"], "data");
    assert_eq!(claims[0]["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert!(
        env(sts, "SIGIL_CAS_POSTGRES_URL").is_none(),
        "{:#}",
        cas_container(sts)
    );
    assert_eq!(
        env(sts, "SIGIL_CAS_MASTER_KEY").unwrap()["valueFrom"]["secretKeyRef"]["name"],
        "rel-sigil-cas-master-key"
    );
    assert_eq!(
        env(sts, "SIGIL_CAS_MASTER_KEY").unwrap()["valueFrom"]["secretKeyRef"]["key"],
        "master-key"
    );
    // No session creator list: the chart says so.
    assert!(!args(sts).iter().any(|a| a.starts_with("--session-creator")));
    assert!(r.notes.contains("WARNING: cas.sessionCreators is empty"));
    assert!(r
        .notes
        .contains("kubectl -n ns create secret generic rel-sigil-cas-master-key"));
    // The Services reach the pods.
    let services = r.all("Service");
    for s in &services {
        same_labels(&s["spec"]["selector"], sts);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], "https");
    }
    let headless: Vec<_> = services
        .iter()
        .filter(|s| s["spec"]["clusterIP"] == "None")
        .collect();
    assert_eq!(headless.len(), 1);
    assert_eq!(sts["spec"]["serviceName"], headless[0]["metadata"]["name"]);
}

#[test]
fn ha_values_replicas_share_postgres_and_secrets() {
    if !chart_tools() {
        return;
    }
    let fp = format!("sha256:{}", "ab".repeat(32));
    let mut v = ha_values();
    v["cas"] = json!({"sessionCreators": [fp]});
    v["store"]["postgres"] = json!({"existingSecret": "cas-db", "caSecret": "cas-db-ca"});
    v["masterKey"] = json!({"existingSecret": "cas-master", "key": "k"});
    let r = render(v);
    assert_eq!(
        r.kinds(),
        ["Deployment", "PodDisruptionBudget", "Service"],
        "no StatefulSet, no claim, no headless Service"
    );
    let d = r.one("Deployment");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_pod_is_hardened(d);
    // Every replica reads the same Secrets.
    let mk = &env(d, "SIGIL_CAS_MASTER_KEY").unwrap()["valueFrom"]["secretKeyRef"];
    assert_eq!(mk["name"], "cas-master");
    assert_eq!(mk["key"], "k");
    let pg = env(d, "SIGIL_CAS_POSTGRES_URL").unwrap();
    assert!(pg.get("value").is_none());
    assert_eq!(pg["valueFrom"]["secretKeyRef"]["name"], "cas-db");
    assert_eq!(pg["valueFrom"]["secretKeyRef"]["key"], "url");
    assert_eq!(
        env(d, "SIGIL_CAS_POSTGRES_CA_FILE").unwrap()["value"],
        "/etc/sigil-cas/postgres-ca/ca.crt"
    );
    let pod = pod_spec(d);
    let vols = pod["volumes"].as_array().unwrap();
    let ca = vols.iter().find(|v| v["name"] == "postgres-ca").unwrap();
    assert_eq!(ca["secret"]["secretName"], "cas-db-ca");
    // The data directory is per pod and holds no store.
    let data = vols.iter().find(|v| v["name"] == "data").unwrap();
    assert!(data["emptyDir"].is_object(), "{data}");
    // Spread over nodes and zones; at most one down in a disruption.
    let aff =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        aff["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    same_labels(&aff["podAffinityTerm"]["labelSelector"]["matchLabels"], d);
    let ts = &pod["topologySpreadConstraints"][0];
    assert_eq!(ts["topologyKey"], "topology.kubernetes.io/zone");
    same_labels(&ts["labelSelector"]["matchLabels"], d);
    let pdb = r.one("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    same_labels(&pdb["spec"]["selector"]["matchLabels"], d);
    assert!(args(d).contains(&format!("--session-creator={fp}")));
    assert!(!r.notes.contains("WARNING"), "{}", r.notes);

    // More replicas, hard anti-affinity.
    let mut v = ha_values();
    v["ha"]["replicas"] = json!(5);
    v["ha"]["antiAffinity"] = json!("hard");
    let r = render(v);
    let d = r.one("Deployment");
    assert_eq!(d["spec"]["replicas"], 5);
    let req = &pod_spec(d)["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(req["topologyKey"], "kubernetes.io/hostname");
}

#[test]
fn network_policy_and_collateral_options() {
    if !chart_tools() {
        return;
    }
    let r = render(json!({
        "networkPolicy": {
            "enabled": true,
            "ingressFrom": [{"namespaceSelector": {"matchLabels": {"sigil/workloads": "true"}}}],
            "egress": {"enabled": true, "rules": [{"ports": [{"port": 5432, "protocol": "TCP"}]}]}
        },
        "attestation": {"collateralConfigMap": "collateral", "snp": {"kdsUrl": "https://kdsintf.amd.com"}}
    }));
    let np = r.one("NetworkPolicy");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let ing = &np["spec"]["ingress"][0];
    assert_eq!(ing["ports"][0]["port"], "https");
    assert_eq!(
        ing["from"][0]["namespaceSelector"]["matchLabels"]["sigil/workloads"],
        "true"
    );
    let egress = np["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress[0]["ports"][0]["port"], 53);
    assert_eq!(egress[1]["ports"][0]["port"], 5432);
    let sts = r.one("StatefulSet");
    same_labels(&np["spec"]["podSelector"]["matchLabels"], sts);
    let a = args(sts);
    assert!(a.contains(&"--collateral-dir=/etc/sigil-cas/collateral".to_string()));
    assert!(a.contains(&"--snp-kds-url=https://kdsintf.amd.com".to_string()));
    assert!(a.contains(&"--snp-cert-dir=/var/cache/sigil-cas/snp".to_string()));
    assert!(!a.iter().any(|x| x.starts_with("--pccs-url")));
    let vols = pod_spec(sts)["volumes"].as_array().unwrap();
    let coll = vols.iter().find(|v| v["name"] == "collateral").unwrap();
    assert_eq!(coll["configMap"]["name"], "collateral");
}

#[test]
fn bad_values_are_refused_with_the_reason() {
    if !chart_tools() {
        return;
    }
    let refused = |v: Value| -> String {
        match try_render(&v) {
            Ok(files) => panic!("{v} rendered: {files:#?}"),
            Err(e) => e,
        }
    };
    // Several replicas on the one redb file.
    let e = refused(json!({"replicaCount": 3}));
    assert!(
        e.contains("3 replicas with store.type=embedded")
            && e.contains("set store.type=postgres and ha.enabled=true"),
        "{e}"
    );
    let e = refused(json!({"ha": {"enabled": true}}));
    assert!(e.contains("ha.enabled needs store.type=postgres"), "{e}");
    let e = refused(json!({"ha": {"enabled": true, "replicas": 3}, "store": {"type": "embedded"}}));
    assert!(e.contains("ha.enabled needs store.type=postgres"), "{e}");
    // Both collateral sources.
    let e = refused(
        json!({"attestation": {"pccsUrl": "https://pccs:8081", "collateralConfigMap": "c"}}),
    );
    assert!(e.contains("exclude each other"), "{e}");
    // values.schema.json: wrong types, unknown keys, bad fingerprints,
    // and no place for key material in the values.
    for (v, names) in [
        (json!({"replicaCount": "three"}), "replicaCount"),
        (json!({"store": {"type": "sqlite"}}), "store/type"),
        (json!({"ha": {"enable": true}}), "enable"),
        (json!({"ha": {"enabled": "yes"}}), "ha/enabled"),
        (
            json!({"cas": {"sessionCreators": ["alice"]}}),
            "sessionCreators",
        ),
        (json!({"cas": {"port": 70000}}), "cas/port"),
        (json!({"cas": {"limits": {"attestRate": 0}}}), "attestRate"),
        (
            json!({"masterKey": {"value": "33".repeat(32)}}),
            "additional properties 'value'",
        ),
        (json!({"attestation": {"pccsUrl": "ftp://x"}}), "pccsUrl"),
    ] {
        let e = refused(v.clone());
        assert!(e.contains(names), "{v}: {e}");
    }
}

/// A client certificate for PostgreSQL (`store.postgres.clientCertSecret`):
/// the certificate and key stay in a read-only Secret volume the CAS's
/// group may read (root-owned, 0440), and only their paths reach the CAS,
/// as `sigil cas serve` arguments.
#[test]
fn postgres_client_certificate_from_a_secret() {
    if !chart_tools() {
        return;
    }
    let mut v = ha_values();
    v["store"]["postgres"] = json!({"clientCertSecret": "cas-db-client"});
    let r = render(v);
    let d = r.one("Deployment");
    assert_pod_is_hardened(d);
    let dir = "/etc/sigil-cas/postgres-client";
    let a = args(d);
    for (flag, file) in [
        ("--postgres-client-cert", "tls.crt"),
        ("--postgres-client-key", "tls.key"),
    ] {
        assert!(a.contains(&format!("{flag}={dir}/{file}")), "{flag}: {a:?}");
    }
    assert!(env(d, "SIGIL_CAS_POSTGRES_CLIENT_KEY").is_none());
    // The entry of a list of named objects (volumes, mounts).
    let named = |list: &Value| -> Option<Value> {
        let found = list
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "postgres-client");
        found.cloned()
    };
    let vol = named(&pod_spec(d)["volumes"]).unwrap();
    assert_eq!(vol["secret"]["secretName"], "cas-db-client");
    assert_eq!(vol["secret"]["defaultMode"], 0o440);
    let items: Vec<(&str, &str)> = vol["secret"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap(), i["path"].as_str().unwrap()))
        .collect();
    assert_eq!(items, [("tls.crt", "tls.crt"), ("tls.key", "tls.key")]);
    let mount = named(&cas_container(d)["volumeMounts"]).unwrap();
    assert_eq!(mount["mountPath"], dir);
    assert_eq!(mount["readOnly"], true);
    // Other Secret keys.
    let mut v = ha_values();
    v["store"]["postgres"] =
        json!({"clientCertSecret": "c", "clientCertKey": "cert.pem", "clientKeyKey": "key.pem"});
    let r = render(v);
    let d = r.one("Deployment");
    assert!(args(d).contains(&format!("--postgres-client-key={dir}/key.pem")));
    // Without it: no variable, no volume.
    let r = render(ha_values());
    let d = r.one("Deployment");
    assert!(!args(d).iter().any(|a| a.starts_with("--postgres-client")));
    assert!(named(&pod_spec(d)["volumes"]).is_none());
    // Refused: on the embedded store, one Secret key for both, a bad name.
    let e = try_render(&json!({"store": {"postgres": {"clientCertSecret": "c"}}})).unwrap_err();
    assert!(
        e.contains("clientCertSecret needs store.type=postgres"),
        "{e}"
    );
    let mut v = ha_values();
    v["store"]["postgres"] =
        json!({"clientCertSecret": "c", "clientCertKey": "pem", "clientKeyKey": "pem"});
    let e = try_render(&v).unwrap_err();
    assert!(e.contains("name the same Secret key"), "{e}");
    let mut v = ha_values();
    v["store"]["postgres"] = json!({"clientCertSecret": "Not_A_Name"});
    let e = try_render(&v).unwrap_err();
    assert!(e.contains("clientCertSecret"), "{e}");
}

/// The arguments the chart gives `sigil cas serve` are accepted by the real
/// binary (flag names and value formats cannot drift apart): the rendered
/// argument list, with the pod's paths mapped to temporary directories and
/// the address to loopback, starts a CAS that answers.
#[test]
fn rendered_arguments_start_the_real_cas() {
    if !chart_tools() {
        return;
    }
    let r = render(json!({
        "cas": {
            "sessionCreators": [format!("sha256:{}", "cd".repeat(32))],
            "auditReaders": [format!("sha256:{}", "ef".repeat(32))],
            "limits": {"maxBodyBytes": 2097152, "maxConnections": 64, "attestRate": 0.5, "attestBurst": 7}
        },
        "attestation": {"pccsUrl": "https://pccs.example:8081", "snp": {"kdsUrl": "https://kdsintf.amd.com"}}
    }));
    let a = args(r.one("StatefulSet"));
    assert!(a.contains(&"--attest-rate=0.5".to_string()), "{a:?}");
    assert!(a.contains(&"--max-body-bytes=2097152".to_string()), "{a:?}");
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let mapped: Vec<String> = a
        .iter()
        .map(|x| {
            if x.starts_with("--listen=") {
                return "--listen=127.0.0.1:0".to_string();
            }
            let x = x.replace("/var/lib/sigil-cas", &root.join("data").to_string_lossy());
            x.replace(
                "/var/cache/sigil-cas",
                &root.join("cache").to_string_lossy(),
            )
        })
        .collect();
    for d in ["data", "cache/collateral", "cache/snp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["cas", "serve"])
        .args(&mapped)
        .env("SIGIL_CAS_MASTER_KEY", "5".repeat(64))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addr, mut fp) = (None, None);
    while addr.is_none() || fp.is_none() {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "sigil cas serve {mapped:?} exited: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if let Some(x) = line.strip_prefix("listening on ") {
            addr = Some(x.to_string());
        } else if let Some(x) = line.strip_prefix("fingerprint ") {
            fp = Some(x.parse::<Fingerprint>().unwrap());
        }
    }
    let (addr, fp) = (addr.unwrap(), fp.unwrap());
    let health = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            CasClient::connect(&addr, fp, None)
                .await
                .unwrap()
                .health()
                .await
                .unwrap()
        });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health.status, "ok");
    assert!(root.join("data/data/store.redb").is_file());
}

// ---- the CAS image with real podman ----

fn ok(o: Output, what: &str) -> String {
    assert_success(&o, what)
}

/// Removes the container (and an image this test loaded) however the test ends.
struct Cleanup {
    container: String,
    image: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.container]);
        if let Some(i) = &self.image {
            let _ = podman(&["rmi", "-f", i]);
        }
    }
}

/// The archive to load: `SIGIL_CAS_IMAGE` (an archive of
/// scripts/build-cas-image.sh), else one built now by that script from the
/// static binary in `SIGIL_BINARY_STATIC` (cheap: no compilation). Returns
/// the archive and whether this test made it.
fn image_archive(dir: &Path) -> Option<(PathBuf, bool)> {
    if let Ok(p) = std::env::var("SIGIL_CAS_IMAGE") {
        return Some((PathBuf::from(p), false));
    }
    let Ok(bin) = std::env::var("SIGIL_BINARY_STATIC") else {
        require(
            false,
            "SIGIL_BINARY_STATIC (scripts/build-cas-image.sh --binary-only) or SIGIL_CAS_IMAGE",
        );
        return None;
    };
    let out = dir.join("sigil-cas.oci.tar");
    let tag = format!("cas-chart-test-{}", std::process::id());
    let r = Command::new("bash")
        .arg(repo().join("scripts/build-cas-image.sh"))
        .args(["--tag", &tag, "--out"])
        .arg(&out)
        .env("SIGIL_BINARY_STATIC", bin)
        .output()
        .unwrap();
    let printed = ok(r, "scripts/build-cas-image.sh");
    assert_eq!(printed.trim(), out.to_str().unwrap());
    // Drop the image the build left in local storage, so what runs below is
    // what `podman load` read from the archive.
    ok(
        podman(&["rmi", &format!("localhost/sigil-cas:{tag}")]),
        "podman rmi",
    );
    Some((out, true))
}

#[test]
fn cas_image_runs_with_podman_and_serves_the_real_client() {
    let have_podman = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require(have_podman, "podman") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let Some((archive, built)) = image_archive(t.path()) else {
        return;
    };
    let loaded = ok(
        podman(&["load", "-q", "-i", archive.to_str().unwrap()]),
        "podman load",
    );
    let image = loaded
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .or_else(|| {
            loaded
                .lines()
                .find_map(|l| l.strip_prefix("Loaded image(s): "))
        })
        .unwrap_or_else(|| panic!("podman load said: {loaded}"))
        .trim()
        .to_string();
    let container = format!("sigil-cas-chart-test-{}", std::process::id());
    let _cleanup = Cleanup {
        container: container.clone(),
        image: built.then(|| image.clone()),
    };
    // The image's own configuration: non-root, `sigil cas serve`.
    let user = ok(
        podman(&["image", "inspect", "--format", "{{.Config.User}}", &image]),
        "inspect",
    );
    assert_eq!(user.trim(), "65532:65532");
    let ep = ok(
        podman(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}}",
            &image,
        ]),
        "inspect",
    );
    assert_eq!(ep.trim(), r#"["/usr/local/bin/sigil","cas","serve"]"#);

    // Two client identities; only the first may create top-level sessions.
    let cfg = t.path().join("config");
    let (admin, other) = (t.path().join("admin"), t.path().join("other"));
    let fp_of = |dir: &Path| -> String {
        let o = sigil(
            &cfg,
            &[
                "identity",
                "create",
                "--json",
                "--dir",
                dir.to_str().unwrap(),
            ],
        );
        let v: Value = serde_json::from_str(&ok(o, "identity create")).unwrap();
        v["fingerprint"].as_str().unwrap().to_string()
    };
    let admin_fp = fp_of(&admin);
    fp_of(&other);

    // Run it as the chart does: read-only root, no capabilities, the data
    // directory a writable scratch volume, the key from the environment.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // The data volume, owned by the image's user as fsGroup makes it in a pod.
    let vol = t.path().join("volume");
    std::fs::create_dir(&vol).unwrap();
    std::os::unix::fs::chown(&vol, Some(65532), Some(65532))
        .expect("chown the data volume to 65532 (run as root, as CI does)");
    let volume = format!("{}:/var/lib/sigil-cas", vol.display());
    ok(
        podman(&[
            "run",
            "-d",
            "--name",
            &container,
            "--network=host",
            "--read-only",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "-v",
            &volume,
            "-e",
            &format!("SIGIL_CAS_MASTER_KEY={}", "6".repeat(64)),
            &image,
            "--data-dir=/var/lib/sigil-cas/data",
            &format!("--listen={listen}"),
            "--log-format=json",
            &format!("--session-creator={admin_fp}"),
        ]),
        "podman run",
    );
    // The fingerprint, from the container's log (as docs/kubernetes.md says).
    let deadline = Instant::now() + Duration::from_secs(60);
    let fp = loop {
        let logs = podman(&["logs", &container]);
        let text = String::from_utf8_lossy(&logs.stdout).into_owned();
        if let Some(f) = text.lines().find_map(|l| l.strip_prefix("fingerprint ")) {
            break f.trim().to_string();
        }
        let running = ok(
            podman(&["inspect", "--format", "{{.State.Running}}", &container]),
            "inspect",
        );
        assert!(
            running.trim() == "true" && Instant::now() < deadline,
            "the CAS container did not start: {text}{}",
            String::from_utf8_lossy(&logs.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let pin: Fingerprint = fp.parse().unwrap();
    // /healthz over TLS, pinned, as the probes (unpinned) and clients see it.
    let health = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { CasClient::connect(&listen, pin, None).await?.health().await })
        .unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(health.fingerprint, fp);

    // The real CLI over TLS with client identities.
    let session = t.path().join("s.yaml");
    std::fs::write(
        &session,
        "name: k8s-demo\nservices:\n  - name: app\n    command: [run]\naccess_policy:\n  read: [CREATOR]\n  update: [CREATOR]\n",
    )
    .unwrap();
    let create = |id: &Path| {
        sigil(
            &cfg,
            &[
                "session",
                "create",
                session.to_str().unwrap(),
                "--cas",
                &listen,
                "--cas-fingerprint",
                &fp,
                "--identity",
                id.to_str().unwrap(),
            ],
        )
    };
    let refused = create(&other);
    assert!(!refused.status.success());
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(e.contains("may not create top-level sessions"), "{e}");
    ok(create(&admin), "sigil session create");
    let list = ok(
        sigil(
            &cfg,
            &[
                "session",
                "list",
                "--cas",
                &listen,
                "--cas-fingerprint",
                &fp,
                "--identity",
                admin.to_str().unwrap(),
            ],
        ),
        "sigil session list",
    );
    assert!(list.contains("k8s-demo"), "{list}");
    // A wrong pin is refused by the client: the pin is what protects it.
    let wrong = sigil(
        &cfg,
        &[
            "session",
            "list",
            "--cas",
            &listen,
            "--cas-fingerprint",
            &format!("sha256:{}", "00".repeat(32)),
            "--identity",
            admin.to_str().unwrap(),
        ],
    );
    assert!(!wrong.status.success());
}
