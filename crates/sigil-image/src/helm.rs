//! The Helm chart written by `sigil convert --k8s-helm-output-dir`.
//!
//! Templates live in `crates/sigil-image/chart/` and are compiled in; only
//! `Chart.yaml` (name, appVersion) and `values.yaml` are generated. The
//! values are documented in `docs/image-format.md`.

use std::fs;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::IoContext;
use crate::{Error, Result};

const CHART_YAML: &str = include_str!("../chart/Chart.yaml.in");
const HELPERS: &str = include_str!("../chart/templates/_helpers.tpl");
const WORKLOAD: &str = include_str!("../chart/templates/workload.yaml");
const SERVICE: &str = include_str!("../chart/templates/service.yaml");
const SCHEMA: &str = include_str!("../chart/values.schema.json");

/// Kubernetes workload kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `Deployment`.
    Deployment,
    /// `StatefulSet` (volumes become volume claim templates).
    StatefulSet,
    /// `DaemonSet`.
    DaemonSet,
    /// `Job`.
    Job,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "deployment" => Ok(Workload::Deployment),
            "statefulset" => Ok(Workload::StatefulSet),
            "daemonset" => Ok(Workload::DaemonSet),
            "job" => Ok(Workload::Job),
            o => Err(format!(
                "unknown workload {o:?} (expected deployment, statefulset, daemonset or job)"
            )),
        }
    }
}

impl Workload {
    fn as_str(self) -> &'static str {
        match self {
            Workload::Deployment => "deployment",
            Workload::StatefulSet => "statefulset",
            Workload::DaemonSet => "daemonset",
            Workload::Job => "job",
        }
    }
}

/// What goes into the chart.
#[derive(Debug, Clone)]
pub struct ChartOptions {
    /// Chart name (made a DNS-1123 label).
    pub name: String,
    /// Image repository (`localhost/app-sigil`).
    pub image_repository: String,
    /// Image tag.
    pub image_tag: String,
    /// Workload kind.
    pub workload: Workload,
    /// CAS address for `SIGIL_CAS_ADDR`.
    pub cas_addr: String,
    /// `session/service` for `SIGIL_CONFIG_ID`.
    pub config_id: String,
    /// Launcher mode (`hw`, `sim`, `auto`).
    pub mode: String,
    /// Launcher log level.
    pub log_level: String,
    /// Exposed ports (`--k8s-helm-expose`).
    pub ports: Vec<u16>,
    /// Volumes `name:path` (`--k8s-helm-volume`).
    pub volumes: Vec<(String, String)>,
    /// Image pull secret names.
    pub image_pull_secrets: Vec<String>,
    /// Use Intel's SGX device plugin resources (else mount host device nodes).
    pub use_sgx_dev_plugin: bool,
    /// `--k8s-helm-set key=value` overrides, applied last.
    pub sets: Vec<String>,
}

/// Makes a DNS-1123 label (lowercase alphanumerics and '-', ≤ 53 chars so
/// release-chart names fit in 63).
pub fn dns_label(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(53);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "sigil-app".to_string()
    } else {
        out
    }
}

/// The values document before `--k8s-helm-set` overrides.
pub fn values(o: &ChartOptions) -> Value {
    json!({
        "workload": o.workload.as_str(),
        "replicaCount": 1,
        "image": {
            "repository": o.image_repository,
            "tag": o.image_tag,
            "pullPolicy": "IfNotPresent",
        },
        "imagePullSecrets": o.image_pull_secrets,
        "sigil": {
            "casAddr": o.cas_addr,
            "configId": o.config_id,
            "mode": o.mode,
            "logLevel": o.log_level,
        },
        "useSGXDevPlugin": if o.use_sgx_dev_plugin { "enabled" } else { "disabled" },
        "sgx": {"epc": "64Mi", "enclave": 1, "provision": 1, "aesmd": true},
        "ports": o.ports,
        "service": {"type": "ClusterIP"},
        "volumes": o.volumes.iter().map(|(n, p)| json!({"name": n, "mountPath": p})).collect::<Vec<_>>(),
        "resources": {},
        "nodeSelector": {},
        "tolerations": [],
        "job": {"backoffLimit": 0, "restartPolicy": "Never"},
    })
}

/// Applies one `key.path=value` override. Values `true`/`false`, integers
/// and `null` are typed; everything else is a string.
pub fn apply_set(values: &mut Value, set: &str) -> Result<()> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| Error::Usage(format!("--k8s-helm-set {set}: expected key=value")))?;
    if key.is_empty() || key.split('.').any(|k| k.is_empty()) {
        return Err(Error::Usage(format!("--k8s-helm-set {set}: empty key")));
    }
    let v = match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        r => match r.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => Value::String(r.to_string()),
        },
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = values;
    for (i, p) in parts.iter().enumerate() {
        let obj = cur.as_object_mut().ok_or_else(|| {
            Error::Usage(format!(
                "--k8s-helm-set {set}: {} is not a map",
                parts[..i].join(".")
            ))
        })?;
        if i + 1 == parts.len() {
            obj.insert(p.to_string(), v);
            return Ok(());
        }
        cur = obj
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(k, "true" | "false" | "null" | "yes" | "no" | "on" | "off")
    {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// Emits a JSON value as block-style YAML (scalars in JSON syntax, which YAML
/// reads identically).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit_map_or_list(v, 0, &mut out);
    out
}

fn inline(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) if m.is_empty() => Some("{}".into()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(_) | Value::Array(_) => None,
        s => Some(s.to_string()),
    }
}

fn emit_map_or_list(v: &Value, ind: usize, out: &mut String) {
    let pad = " ".repeat(ind);
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match inline(val) {
                    Some(s) => out.push_str(&format!("{pad}{}: {s}\n", key(k))),
                    None => {
                        out.push_str(&format!("{pad}{}:\n", key(k)));
                        emit_map_or_list(val, ind + 2, out);
                    }
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                match inline(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        let mut sub = String::new();
                        emit_map_or_list(item, ind + 2, &mut sub);
                        // Put the first line of the nested block after "- ".
                        let sub = sub.replacen(&" ".repeat(ind + 2), &format!("{pad}- "), 1);
                        out.push_str(&sub);
                    }
                }
            }
        }
        s => out.push_str(&format!("{pad}{s}\n")),
    }
}

/// Writes the chart into `dir` (must not exist or be empty). The chart is
/// assembled in a temporary directory beside it and renamed into place.
pub fn write_chart(dir: &Path, o: &ChartOptions) -> Result<()> {
    for (n, p) in &o.volumes {
        if dns_label(n) != *n || !p.starts_with('/') {
            return Err(Error::Usage(format!(
                "--k8s-helm-volume {n}:{p}: expected name:/absolute/path with a lowercase DNS name"
            )));
        }
    }
    let mut vals = values(o);
    for s in &o.sets {
        apply_set(&mut vals, s)?;
    }
    if let Ok(mut rd) = fs::read_dir(dir) {
        if rd.next().is_some() {
            return Err(Error::Usage(format!(
                "--k8s-helm-output-dir {}: exists and is not empty",
                dir.display()
            )));
        }
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    fs::create_dir_all(&parent).at(&parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".sigil-chart-")
        .tempdir_in(&parent)
        .at(&parent)?;
    let name = dns_label(&o.name);
    let chart = CHART_YAML
        .replace("@NAME@", &name)
        .replace("@APP_VERSION@", &o.image_tag.replace('"', ""));
    let t = tmp.path();
    fs::create_dir(t.join("templates")).at(t.join("templates"))?;
    let header = "# Generated by `sigil convert`; see docs/image-format.md for every value.\n";
    for (p, content) in [
        ("Chart.yaml", chart),
        ("values.yaml", format!("{header}{}", to_yaml(&vals))),
        ("values.schema.json", SCHEMA.to_string()),
        ("templates/_helpers.tpl", HELPERS.to_string()),
        ("templates/workload.yaml", WORKLOAD.to_string()),
        ("templates/service.yaml", SERVICE.to_string()),
    ] {
        fs::write(t.join(p), content).at(t.join(p))?;
    }
    if dir.exists() {
        fs::remove_dir(dir).at(dir)?;
    }
    let kept = tmp.keep();
    fs::rename(&kept, dir).map_err(|e| {
        let _ = fs::remove_dir_all(&kept);
        Error::io(dir, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_emitter_round_trips_through_json_shapes() {
        let v = json!({"a": {"b": [1, "x:y", {"c": true, "d": []}]}, "e": {}, "true": "null"});
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "a:\n  b:\n    - 1\n    - \"x:y\"\n    - c: true\n      d: []\ne: {}\n\"true\": \"null\"\n"
        );
    }

    #[test]
    fn sets_are_typed_and_refuse_paths_through_scalars() {
        let mut v = json!({"image": {"tag": "a"}, "n": 1});
        apply_set(&mut v, "image.tag=v2").unwrap();
        apply_set(&mut v, "replicaCount=3").unwrap();
        apply_set(&mut v, "new.deep.flag=true").unwrap();
        assert_eq!(v["image"]["tag"], "v2");
        assert_eq!(v["replicaCount"], 3);
        assert_eq!(v["new"]["deep"]["flag"], true);
        assert!(apply_set(&mut v, "n.x=1").is_err());
        assert!(apply_set(&mut v, "noequals").is_err());
        assert!(apply_set(&mut v, "a..b=1").is_err());
    }
}
