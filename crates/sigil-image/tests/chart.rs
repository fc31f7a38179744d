//! The generated Helm chart, rendered with real Helm (the `helm_python`
//! module of PyPI's helm-python-sdk, which embeds Helm's Go SDK) and the
//! rendered manifests validated with `kubernetes-validate --strict`.
//! `helm lint` must report no warnings or errors. If the tools are missing
//! the tests fail under CI (`CI=true`) and are skipped elsewhere.

use sigil_image::helm::{write_chart, ChartOptions, Workload};
use std::path::Path;
use std::process::Command;

const RENDER: &str = r#"
import json, sys, os
import helm_python as helm
chart_dir, out_dir = sys.argv[1], sys.argv[2]
lint = helm.lint(chart_dir, strict=True)
bad = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2] + lint.get("errors", [])
if bad:
    print("LINT " + json.dumps(bad))
    sys.exit(3)
chart = helm.Chart.load(chart_dir)
out = chart.render(name="rel", namespace="ns", is_install=True)
for i, (path, text) in enumerate(sorted(out.items())):
    if not text.strip() or path.endswith("NOTES.txt") or path.endswith(".tpl"):
        continue
    with open(os.path.join(out_dir, "%02d.yaml" % i), "w") as f:
        f.write(text)
    print("RENDERED " + path)
"#;

/// Helm and kubernetes-validate; under CI their absence is a failure,
/// elsewhere the test skips.
fn tools_present() -> bool {
    sigil_testsupport::tools::require_chart_tools(&[])
}

fn opts(workload: Workload) -> ChartOptions {
    ChartOptions {
        name: "PyApp_Sigil".into(),
        image_repository: "registry.example/5g/pyapp-sigil".into(),
        image_tag: "1.0".into(),
        workload,
        cas_addr: "cas.sigil.svc:8081".into(),
        config_id: "pyapp/web".into(),
        mode: "auto".into(),
        log_level: "info".into(),
        ports: vec![8080, 9090],
        volumes: vec![("data".into(), "/var/lib/app".into())],
        image_pull_secrets: vec!["regcred".into()],
        use_sgx_dev_plugin: true,
        sets: vec![],
    }
}

/// Renders the chart; returns the rendered manifests' text after checking
/// them with kubernetes-validate --strict.
fn render(dir: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let r = Command::new("python3")
        .args([
            "-c",
            RENDER,
            dir.to_str().unwrap(),
            out.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "helm failed: {}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    sigil_testsupport::tools::assert_kubernetes_valid(&files, &text);
    text
}

#[test]
fn every_workload_renders_and_validates() {
    if !tools_present() {
        return;
    }
    for (w, kind) in [
        (Workload::Deployment, "kind: Deployment"),
        (Workload::StatefulSet, "kind: StatefulSet"),
        (Workload::DaemonSet, "kind: DaemonSet"),
        (Workload::Job, "kind: Job"),
    ] {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("chart");
        write_chart(&dir, &opts(w)).unwrap();
        let text = render(&dir);
        assert!(text.contains(kind), "{kind} missing:\n{text}");
        assert!(text.contains("sgx.intel.com/epc: 64Mi"), "{text}");
        assert!(text.contains("sgx.intel.com/enclave: 1"), "{text}");
        assert!(text.contains("sgx.intel.com/provision: 1"), "{text}");
        // The AESM socket of the host, for SGX quotes.
        assert!(
            text.contains("mountPath: /var/run/aesmd")
                && text.contains("path: /var/run/aesmd")
                && text.contains("type: Directory"),
            "{text}"
        );
        assert!(text.contains("name: SIGIL_CAS_ADDR\n"), "{text}");
        assert!(text.contains("name: SIGIL_SGX_RESOURCES\n"), "{text}");
        assert!(
            text.contains("value: \"sgx.intel.com/epc=64Mi,sgx.intel.com/enclave=1,sgx.intel.com/provision=1\""),
            "{text}"
        );
        assert!(text.contains("value: \"cas.sigil.svc:8081\""), "{text}");
        assert!(text.contains("value: \"pyapp/web\""), "{text}");
        assert!(text.contains("name: \"regcred\""), "{text}");
        assert!(
            text.contains("image: \"registry.example/5g/pyapp-sigil:1.0\""),
            "{text}"
        );
        assert!(text.contains("medium: Memory"), "{text}");
        assert!(!text.contains("/dev/sgx_enclave"), "{text}");
        if w == Workload::Job {
            assert!(!text.contains("kind: Service"), "{text}");
        } else {
            assert!(
                text.contains("kind: Service") && text.contains("port: 9090"),
                "{text}"
            );
        }
        if w == Workload::StatefulSet {
            assert!(text.contains("volumeClaimTemplates"), "{text}");
        } else {
            assert!(text.contains("mountPath: /var/lib/app"), "{text}");
        }
    }
}

#[test]
fn without_device_plugin_mounts_host_devices_and_sets_apply() {
    if !tools_present() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("chart");
    let mut o = opts(Workload::Deployment);
    o.use_sgx_dev_plugin = false;
    o.sets = vec!["replicaCount=3".into(), "sigil.logLevel=debug".into()];
    write_chart(&dir, &o).unwrap();
    let text = render(&dir);
    assert!(!text.contains("sgx.intel.com/"), "{text}");
    assert!(
        text.contains("path: /dev/sgx_enclave") && text.contains("type: CharDevice"),
        "{text}"
    );
    assert!(text.contains("replicas: 3"), "{text}");
    assert!(text.contains("value: \"debug\""), "{text}");
    assert!(text.contains("mountPath: /var/run/aesmd"), "{text}");
    // Without AESM on the host (e.g. DCAP quotes in process): no mount.
    let dir2 = t.path().join("chart2");
    o.sets = vec!["sgx.aesmd=false".into()];
    write_chart(&dir2, &o).unwrap();
    let text = render(&dir2);
    assert!(!text.contains("aesmd"), "{text}");
}

#[test]
fn bad_values_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let mut o = opts(Workload::Deployment);
    o.volumes = vec![("Bad Name".into(), "relative".into())];
    let e = write_chart(&t.path().join("c1"), &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--k8s-helm-volume"), "{e}");
    assert!(!t.path().join("c1").exists());
    let mut o = opts(Workload::Deployment);
    o.sets = vec!["image=x".into(), "image.tag=y".into()];
    let e = write_chart(&t.path().join("c2"), &o)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a map"), "{e}");
    assert!(!t.path().join("c2").exists());
    let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
    assert!(names.is_empty(), "left behind: {names:?}");
    if tools_present() {
        // The schema refuses a workload the templates do not know.
        let dir = t.path().join("c3");
        let mut o = opts(Workload::Deployment);
        o.sets = vec!["workload=cronjob".into()];
        write_chart(&dir, &o).unwrap();
        let r = Command::new("python3")
            .args([
                "-c",
                RENDER,
                dir.to_str().unwrap(),
                t.path().to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(!r.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(all.contains("workload"), "{all}");
    }
}
