//! The SGX attestation stack around the driver: AESM, the DCAP quote
//! provider library, the PCCS configuration, and Gramine.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::read::{read_capped, under, CONFIG_CAP};

/// Where aesmd puts its socket.
pub const AESM_SOCKETS: &[&str] = &["/var/run/aesmd/aesm.socket", "/run/aesmd/aesm.socket"];
/// The QCNL configuration read by Intel's default quote provider library.
pub const QCNL_CONF: &str = "/etc/sgx_default_qcnl.conf";
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/lib64",
];
/// The quote provider library (Intel's default QPL or Azure's DCAP client
/// install under this name; the quoting library loads it by this name).
const QPL_NAMES: &[&str] = &["libdcap_quoteprov.so.1", "libdcap_quoteprov.so"];
/// The in-process quote library (loads the quoting enclaves without AESM).
const QL_NAMES: &[&str] = &["libsgx_dcap_ql.so.1", "libsgx_dcap_ql.so"];
const GRAMINE_BINS: &[&str] = &[
    "/usr/bin/gramine-sgx",
    "/usr/local/bin/gramine-sgx",
    "/usr/bin/gramine-direct",
    "/usr/local/bin/gramine-direct",
];
/// Longer URLs are garbage, not configuration.
const MAX_URL: usize = 2048;

/// State of the AESM service socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AesmReport {
    /// Path of the socket found, if any.
    pub socket: Option<String>,
    /// A live connect succeeded (`None` when not attempted).
    pub connect_ok: Option<bool>,
}

/// Format of the QCNL configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QcnlFormat {
    /// The JSON format of DCAP 1.15 and later (with `//` comment lines).
    Json,
    /// The older `KEY=value` format.
    KeyValue,
    /// Neither: no recognisable key found.
    Unrecognised,
}

/// The PCCS configuration as the quote provider library will read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PccsReport {
    /// Path of the config file.
    pub path: String,
    /// The file exists and was readable.
    pub present: bool,
    /// Detected format.
    pub format: Option<QcnlFormat>,
    /// The PCCS URL, if a valid one was configured.
    pub url: Option<String>,
    /// A `pccs_url` key was present but its value was not a usable URL.
    pub url_invalid: bool,
    /// `use_secure_cert` (TLS certificate checking of the PCCS), if set.
    pub use_secure_cert: Option<bool>,
}

/// Inside a Gramine SGX enclave: its `/dev/attestation` pseudo-files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GramineEnclave {
    /// Contents of `/dev/attestation/attestation_type` (`none`, `epid`, `dcap`).
    pub attestation_type: String,
    /// `/dev/attestation/quote` exists.
    pub quote: bool,
}

/// Everything around the driver that DCAP quoting and verification need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackReport {
    /// Set when this process runs inside a Gramine SGX enclave (Gramine
    /// hides the host's SGX devices and offers `/dev/attestation` instead).
    pub gramine_enclave: Option<GramineEnclave>,
    /// AESM socket.
    pub aesm: AesmReport,
    /// Paths of the quote provider library found.
    pub quote_provider: Vec<String>,
    /// Paths of the in-process DCAP quote library found.
    pub quote_library: Vec<String>,
    /// PCCS configuration.
    pub pccs: PccsReport,
    /// Gramine binaries found.
    pub gramine: Vec<String>,
}

/// Probes the stack under `root`; `live` also connects to the AESM socket.
pub fn probe(root: &Path, live: bool) -> StackReport {
    let mut aesm = AesmReport::default();
    for s in AESM_SOCKETS {
        let p = under(root, s);
        let is_sock = fs::metadata(&p)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if is_sock {
            aesm.socket = Some(s.to_string());
            if live {
                aesm.connect_ok = Some(std::os::unix::net::UnixStream::connect(&p).is_ok());
            }
            break;
        }
    }
    StackReport {
        gramine_enclave: probe_gramine_enclave(root),
        aesm,
        quote_provider: find_libs(root, QPL_NAMES),
        quote_library: find_libs(root, QL_NAMES),
        pccs: probe_pccs(root),
        gramine: GRAMINE_BINS
            .iter()
            .filter(|b| under(root, b).is_file())
            .map(|b| b.to_string())
            .collect(),
    }
}

fn probe_gramine_enclave(root: &Path) -> Option<GramineEnclave> {
    let t = read_capped(&under(root, "/dev/attestation/attestation_type"), 64)?;
    let t: String = t
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(16)
        .collect();
    Some(GramineEnclave {
        attestation_type: t,
        quote: under(root, "/dev/attestation/quote").exists(),
    })
}

fn find_libs(root: &Path, names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for d in LIB_DIRS {
        for n in names {
            let abs = format!("{d}/{n}");
            // metadata() follows the usual .so.1 -> .so.1.x symlink.
            if fs::metadata(under(root, &abs))
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                found.push(abs);
            }
        }
    }
    found
}

fn probe_pccs(root: &Path) -> PccsReport {
    let mut r = PccsReport {
        path: QCNL_CONF.to_string(),
        present: false,
        format: None,
        url: None,
        url_invalid: false,
        use_secure_cert: None,
    };
    if let Some(text) = read_capped(&under(root, QCNL_CONF), CONFIG_CAP) {
        r.present = true;
        let p = parse_qcnl(&text);
        r.format = Some(p.format);
        r.url_invalid = p.url_raw.is_some() && p.url.is_none();
        r.url = p.url;
        r.use_secure_cert = p.use_secure_cert;
    }
    r
}

/// The parsed QCNL configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qcnl {
    /// Detected format.
    pub format: QcnlFormat,
    /// The raw value of the PCCS URL key, if present.
    pub url_raw: Option<String>,
    /// The URL, if valid.
    pub url: Option<String>,
    /// `use_secure_cert`.
    pub use_secure_cert: Option<bool>,
}

/// Parses both formats of /etc/sgx_default_qcnl.conf.
///
/// The JSON format carries `//` comment lines, so it is not fed to a JSON
/// parser; the two keys are extracted lexically.
pub fn parse_qcnl(text: &str) -> Qcnl {
    let body: String = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//") && !t.starts_with('#')
        })
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(raw) = json_string_value(&body, "pccs_url") {
        let use_secure_cert = json_bool_value(&body, "use_secure_cert");
        return Qcnl {
            format: QcnlFormat::Json,
            url: valid_url(&raw),
            url_raw: Some(raw),
            use_secure_cert,
        };
    }
    let mut url_raw = None;
    let mut secure = None;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "PCCS_URL" => url_raw = Some(v.trim().chars().take(MAX_URL + 1).collect::<String>()),
            "USE_SECURE_CERT" => match v.trim().to_ascii_uppercase().as_str() {
                "TRUE" => secure = Some(true),
                "FALSE" => secure = Some(false),
                _ => {}
            },
            _ => {}
        }
    }
    let format = if url_raw.is_some() || secure.is_some() {
        QcnlFormat::KeyValue
    } else if json_bool_value(&body, "use_secure_cert").is_some() {
        QcnlFormat::Json
    } else {
        QcnlFormat::Unrecognised
    };
    Qcnl {
        format,
        url: url_raw.as_deref().and_then(valid_url),
        url_raw,
        use_secure_cert: secure.or_else(|| json_bool_value(&body, "use_secure_cert")),
    }
}

/// The text right after `"key"` and its colon, if present.
fn after_key<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let i = body.find(&quoted)?;
    let rest = body[i + quoted.len()..].trim_start();
    Some(rest.strip_prefix(':')?.trim_start())
}

fn json_string_value(body: &str, key: &str) -> Option<String> {
    let rest = after_key(body, key)?.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].chars().take(MAX_URL + 1).collect())
}

fn json_bool_value(body: &str, key: &str) -> Option<bool> {
    let rest = after_key(body, key)?;
    if rest.starts_with("true") {
        Some(true)
    } else if rest.starts_with("false") {
        Some(false)
    } else {
        None
    }
}

fn valid_url(raw: &str) -> Option<String> {
    let ok = raw.len() <= MAX_URL
        && (raw.starts_with("https://") || raw.starts_with("http://"))
        && raw.len() > "https://".len()
        && raw.chars().all(|c| c.is_ascii_graphic());
    ok.then(|| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON_CONF: &str = r#"{
  // *** ATTENTION : This file is in JSON format so the keys are case sensitive. Don't change them.

  //PCCS server address
  "pccs_url": "https://pccs.example:8081/sgx/certification/v4/"

  // To accept insecure HTTPS certificate, set this option to false
  ,"use_secure_cert": false
}
"#;

    #[test]
    fn parses_json_qcnl_with_comments() {
        let q = parse_qcnl(JSON_CONF);
        assert_eq!(q.format, QcnlFormat::Json);
        assert_eq!(
            q.url.as_deref(),
            Some("https://pccs.example:8081/sgx/certification/v4/")
        );
        assert_eq!(q.use_secure_cert, Some(false));
    }

    #[test]
    fn parses_key_value_qcnl() {
        let q = parse_qcnl("# comment\nPCCS_URL=https://localhost:8081/sgx/certification/v3/\nUSE_SECURE_CERT=TRUE\n");
        assert_eq!(q.format, QcnlFormat::KeyValue);
        assert_eq!(
            q.url.as_deref(),
            Some("https://localhost:8081/sgx/certification/v3/")
        );
        assert_eq!(q.use_secure_cert, Some(true));
    }

    #[test]
    fn hostile_qcnl_values_are_rejected() {
        let q = parse_qcnl("{\"pccs_url\": \"file:///etc/shadow\"}");
        assert_eq!(q.url, None);
        assert!(q.url_raw.is_some());
        let long = format!("PCCS_URL=https://{}\n", "a".repeat(10_000));
        let q = parse_qcnl(&long);
        assert_eq!(q.url, None);
        let q = parse_qcnl("PCCS_URL=https://evil host/\n");
        assert_eq!(q.url, None);
        // Unterminated string, truncated keys, binary garbage: no panic, no URL.
        for s in [
            "{\"pccs_url\": \"https://x",
            "{\"pccs_url\"",
            "{\"pccs_url\":",
            "\u{0}\u{ff}\"pccs_url\"\u{7f}",
            "",
        ] {
            assert_eq!(parse_qcnl(s).url, None, "{s:?}");
        }
        assert_eq!(parse_qcnl("hello").format, QcnlFormat::Unrecognised);
    }

    #[test]
    fn probe_finds_stack_pieces_in_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("etc/sgx_default_qcnl.conf"), JSON_CONF).unwrap();
        fs::write(
            root.join("usr/lib/x86_64-linux-gnu/libdcap_quoteprov.so.1.13.1"),
            b"",
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "libdcap_quoteprov.so.1.13.1",
            root.join("usr/lib/x86_64-linux-gnu/libdcap_quoteprov.so.1"),
        )
        .unwrap();
        fs::write(root.join("usr/bin/gramine-sgx"), b"#!/bin/sh\n").unwrap();
        // A regular file is not an AESM socket.
        fs::create_dir_all(root.join("var/run/aesmd")).unwrap();
        fs::write(root.join("var/run/aesmd/aesm.socket"), b"").unwrap();
        let s = probe(root, true);
        assert_eq!(
            s.quote_provider,
            vec!["/usr/lib/x86_64-linux-gnu/libdcap_quoteprov.so.1".to_string()]
        );
        assert!(s.quote_library.is_empty());
        assert!(s.pccs.present);
        assert!(s.pccs.url.is_some());
        assert_eq!(s.gramine, vec!["/usr/bin/gramine-sgx".to_string()]);
        assert_eq!(s.aesm.socket, None);
    }

    #[test]
    fn live_aesm_socket_is_connected() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("run/aesmd")).unwrap();
        let _l =
            std::os::unix::net::UnixListener::bind(root.join("run/aesmd/aesm.socket")).unwrap();
        let s = probe(root, true);
        assert_eq!(s.aesm.socket.as_deref(), Some("/run/aesmd/aesm.socket"));
        assert_eq!(s.aesm.connect_ok, Some(true));
        let s = probe(root, false);
        assert_eq!(s.aesm.connect_ok, None);
    }
}
