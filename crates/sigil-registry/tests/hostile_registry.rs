//! `pull` from a registry that lies: a hand-written HTTP server on
//! loopback (a real registry cannot be made to lie about sizes) answers
//! the real client. Manifests larger than the limit (announced or
//! chunked), a `Docker-Content-Digest` that is not the body's, blobs longer
//! or shorter than their descriptor or with another digest, a layer digest
//! that tries to leave `blobs/sha256/`, an index inside an index, and a
//! token endpoint that answers garbage. Each is refused with one line
//! naming the problem, and leaves neither the destination nor a temporary
//! directory behind.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use sigil_registry::{pull, Auth, Limits, Options};

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
const LAYER: &[u8] = b"layer bytes";
const REPO: &str = "/v2/app/img";

fn sha256(b: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
    )
}

fn ok(extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn chunked(extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\n{extra}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for c in body.chunks(8192) {
        r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

fn manifest(layer_digest: &str, layer_size: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(CONFIG), "size": CONFIG.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }))
    .unwrap()
}

/// A registry answering `routes` (longest matching path prefix wins,
/// 404 otherwise). Returns its `host:port`.
fn serve(routes: Arc<Mutex<HashMap<String, Vec<u8>>>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 2048];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&req).to_string();
            let path = text.split(' ').nth(1).unwrap_or("").to_string();
            let out = routes
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| path.starts_with(k.as_str()))
                .max_by_key(|(k, _)| k.len())
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                });
            let _ = c.write_all(&out);
        }
    });
    host
}

/// The routes of a correct image, with `change` applied.
fn routes(
    host: &str,
    change: impl FnOnce(&mut HashMap<String, Vec<u8>>, &str),
) -> HashMap<String, Vec<u8>> {
    let mut m = HashMap::new();
    m.insert("/v2/".to_string(), ok("", b"{}"));
    m.insert(
        format!("{REPO}/manifests/t"),
        ok(
            &format!("Content-Type: {MT_MANIFEST}\r\n"),
            &manifest(&sha256(LAYER), LAYER.len() as u64),
        ),
    );
    m.insert(format!("{REPO}/blobs/{}", sha256(CONFIG)), ok("", CONFIG));
    m.insert(format!("{REPO}/blobs/{}", sha256(LAYER)), ok("", LAYER));
    change(&mut m, host);
    m
}

fn try_pull(change: impl FnOnce(&mut HashMap<String, Vec<u8>>, &str)) -> Result<(), String> {
    let table = Arc::new(Mutex::new(HashMap::new()));
    let host = serve(table.clone());
    *table.lock().unwrap() = routes(&host, change);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let opts = Options {
        insecure_registries: vec![host.clone()],
        limits: Limits {
            max_manifest_bytes: 64 * 1024,
            max_config_bytes: 64 * 1024,
            ..Limits::default()
        },
        ..Options::default()
    };
    let r = pull(&format!("{host}/app/img:t"), &dest, &Auth::Anonymous, &opts);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    match r {
        Ok(_) => {
            assert!(dest.join("index.json").is_file());
            Ok(())
        }
        Err(e) => {
            let m = e.to_string();
            assert!(!m.contains('\n'), "not one line: {m:?}");
            assert!(left.is_empty(), "{m}: left {left:?}");
            Err(m)
        }
    }
}

#[test]
fn the_honest_stand_in_registry_is_pulled() {
    try_pull(|_, _| {}).unwrap();
}

#[test]
fn lying_registries_are_refused_and_leave_nothing() {
    let big = {
        let mut m = manifest(&sha256(LAYER), LAYER.len() as u64);
        m.pop();
        m.extend_from_slice(
            format!(",\"annotations\":{{\"x\":\"{}\"}}}}", "a".repeat(70 * 1024)).as_bytes(),
        );
        m
    };
    type Change = Box<dyn FnOnce(&mut HashMap<String, Vec<u8>>, &str)>;
    let big2 = big.clone();
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "manifest over the limit, announced",
            Box::new(move |m, _| {
                m.insert(
                    format!("{REPO}/manifests/t"),
                    ok(&format!("Content-Type: {MT_MANIFEST}\r\n"), &big),
                );
            }),
            "larger than",
        ),
        (
            "manifest over the limit, chunked",
            Box::new(move |m, _| {
                m.insert(
                    format!("{REPO}/manifests/t"),
                    chunked(&format!("Content-Type: {MT_MANIFEST}\r\n"), &big2),
                );
            }),
            "larger than",
        ),
        (
            "Docker-Content-Digest of something else",
            Box::new(|m, _| {
                let body = manifest(&sha256(LAYER), LAYER.len() as u64);
                m.insert(
                    format!("{REPO}/manifests/t"),
                    ok(
                        &format!(
                            "Content-Type: {MT_MANIFEST}\r\nDocker-Content-Digest: {}\r\n",
                            sha256(b"x")
                        ),
                        &body,
                    ),
                );
            }),
            "digest",
        ),
        (
            "layer longer than its descriptor",
            Box::new(|m, _| {
                let mut more = LAYER.to_vec();
                more.extend_from_slice(&[b'!'; 100_000]);
                m.insert(
                    format!("{REPO}/blobs/{}", sha256(LAYER)),
                    chunked("", &more),
                );
            }),
            "more than",
        ),
        (
            "layer shorter than its descriptor",
            Box::new(|m, _| {
                m.insert(
                    format!("{REPO}/blobs/{}", sha256(LAYER)),
                    ok("", &LAYER[..4]),
                );
            }),
            "blob sha256:",
        ),
        (
            "layer with other bytes",
            Box::new(|m, _| {
                m.insert(
                    format!("{REPO}/blobs/{}", sha256(LAYER)),
                    ok("", b"LAYER BYTES"),
                );
            }),
            "digest",
        ),
        (
            "layer digest leaving blobs/",
            Box::new(|m, _| {
                let body = manifest("sha256:../../../../etc/passwd", 4);
                m.insert(
                    format!("{REPO}/manifests/t"),
                    ok(&format!("Content-Type: {MT_MANIFEST}\r\n"), &body),
                );
            }),
            "digest",
        ),
        (
            "index inside an index",
            Box::new(|m, _| {
                let inner = serde_json::to_vec(
                    &serde_json::json!({"schemaVersion":2,"mediaType":MT_INDEX,"manifests":[]}),
                )
                .unwrap();
                let outer = serde_json::to_vec(&serde_json::json!({"schemaVersion":2,"mediaType":MT_INDEX,"manifests":[
                    {"mediaType":MT_INDEX,"digest":sha256(&inner),"size":inner.len(),"platform":{"os":"linux","architecture":"amd64"}}]})).unwrap();
                m.insert(
                    format!("{REPO}/manifests/t"),
                    ok(&format!("Content-Type: {MT_INDEX}\r\n"), &outer),
                );
                m.insert(
                    format!("{REPO}/manifests/{}", sha256(&inner)),
                    ok(&format!("Content-Type: {MT_INDEX}\r\n"), &inner),
                );
            }),
            "index inside an index",
        ),
        (
            "token endpoint answering garbage",
            Box::new(|m, host| {
                m.insert(
                    "/v2/".into(),
                    format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{host}/token\",service=\"r\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes(),
                );
                m.insert(
                    "/token".into(),
                    ok("Content-Type: application/json\r\n", b"\x00{not json"),
                );
            }),
            "",
        ),
    ];
    for (what, change, expect) in cases {
        let e = try_pull(change)
            .map(|()| "pulled".to_string())
            .expect_err(what);
        assert!(
            e.to_lowercase().contains(expect),
            "{what}: expected {expect:?} in {e}"
        );
    }
}
