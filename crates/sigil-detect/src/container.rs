//! Are we in a container or a Kubernetes pod, and what can be seen of the
//! devices and SGX device-plugin resources it was given.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::read::{read_capped, under, SMALL_CAP};

/// Environment variable the Sigil Helm chart sets to the SGX resources the
/// pod requested, e.g. `sgx.intel.com/epc=64Mi,sgx.intel.com/enclave=1`.
pub const SGX_RESOURCES_ENV: &str = "SIGIL_SGX_RESOURCES";
/// cgroup v1 device allow lists (cgroup v2 uses eBPF and shows nothing).
const DEVICES_LISTS: &[&str] = &[
    "/sys/fs/cgroup/devices/devices.list",
    "/sys/fs/cgroup/devices.list",
];
const MAX_RULES: usize = 1024;
const MAX_RESOURCES: usize = 32;
const MAX_RESOURCES_LEN: usize = 4096;

/// The container engine, as far as it can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// Docker (`/.dockerenv` or a docker cgroup).
    Docker,
    /// Podman (`/run/.containerenv` or a libpod cgroup).
    Podman,
    /// containerd, CRI-O or another CRI runtime (a kubepods cgroup).
    Cri,
    /// LXC.
    Lxc,
}

/// One rule of a cgroup v1 device allow list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// `a` (all), `c` (char) or `b` (block).
    pub kind: char,
    /// Major number, `None` for `*`.
    pub major: Option<u32>,
    /// Minor number, `None` for `*`.
    pub minor: Option<u32>,
    /// Access letters (`r`, `w`, `m`).
    pub access: String,
}

/// A cgroup v1 device allow list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDevices {
    /// Which file it came from.
    pub path: String,
    /// Parsed rules (malformed lines are skipped).
    pub rules: Vec<DeviceRule>,
}

impl CgroupDevices {
    /// The list lets a char device (major, minor) be opened read-write.
    pub fn allows_char_rw(&self, major: u32, minor: u32) -> bool {
        self.rules.iter().any(|r| {
            (r.kind == 'a' || r.kind == 'c')
                && r.major.is_none_or(|m| m == major)
                && r.minor.is_none_or(|m| m == minor)
                && r.access.contains('r')
                && r.access.contains('w')
        })
    }
}

/// Container and pod context.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    /// Some indicator says this is a container.
    pub in_container: bool,
    /// The engine, when an indicator names it.
    pub engine: Option<Engine>,
    /// `KUBERNETES_SERVICE_HOST` is set or a kubepods cgroup was seen.
    pub kubernetes: bool,
    /// What made us think so.
    pub indicators: Vec<String>,
    /// The SGX resources the chart declared in [`SGX_RESOURCES_ENV`].
    pub sgx_resources: Option<BTreeMap<String, String>>,
    /// [`SGX_RESOURCES_ENV`] was set but malformed.
    pub sgx_resources_malformed: bool,
    /// cgroup v1 device allow list, if visible.
    pub cgroup_devices: Option<CgroupDevices>,
    /// What cannot be known from inside, said plainly.
    pub unknowable: Vec<String>,
}

/// Probes container indicators under `root` with the given environment.
pub fn probe(root: &Path, env: &BTreeMap<String, String>) -> ContainerReport {
    let mut r = ContainerReport::default();
    if under(root, "/.dockerenv").exists() {
        r.indicators.push("/.dockerenv".into());
        r.engine = Some(Engine::Docker);
    }
    if under(root, "/run/.containerenv").exists() {
        r.indicators.push("/run/.containerenv".into());
        r.engine = Some(Engine::Podman);
    }
    if let Some(cg) = read_capped(&under(root, "/proc/1/cgroup"), SMALL_CAP) {
        // Only the path part after the second colon matters; the controller
        // list can contain anything.
        let paths: Vec<&str> = cg.lines().filter_map(|l| l.splitn(3, ':').nth(2)).collect();
        let has = |needle: &str| paths.iter().any(|p| p.contains(needle));
        if has("kubepods") {
            r.indicators.push("/proc/1/cgroup: kubepods".into());
            r.kubernetes = true;
            r.engine = r.engine.or(Some(Engine::Cri));
        } else if has("libpod") {
            r.indicators.push("/proc/1/cgroup: libpod".into());
            r.engine = r.engine.or(Some(Engine::Podman));
        } else if has("docker") {
            r.indicators.push("/proc/1/cgroup: docker".into());
            r.engine = r.engine.or(Some(Engine::Docker));
        } else if has("containerd") || has("crio") {
            r.indicators.push("/proc/1/cgroup: CRI runtime".into());
            r.engine = r.engine.or(Some(Engine::Cri));
        } else if has("lxc") {
            r.indicators.push("/proc/1/cgroup: lxc".into());
            r.engine = r.engine.or(Some(Engine::Lxc));
        }
    }
    if env.contains_key("KUBERNETES_SERVICE_HOST") {
        r.indicators.push("KUBERNETES_SERVICE_HOST".into());
        r.kubernetes = true;
    }
    r.in_container = !r.indicators.is_empty();

    if let Some(v) = env.get(SGX_RESOURCES_ENV) {
        match parse_resources(v) {
            Some(m) => r.sgx_resources = Some(m),
            None => r.sgx_resources_malformed = true,
        }
    }
    for p in DEVICES_LISTS {
        if let Some(text) = read_capped(&under(root, p), SMALL_CAP) {
            r.cgroup_devices = Some(CgroupDevices {
                path: p.to_string(),
                rules: parse_device_rules(&text),
            });
            break;
        }
    }
    if r.in_container {
        if r.cgroup_devices.is_none() {
            r.unknowable.push(
                "the device cgroup is not visible (cgroup v2 enforces it with eBPF); only an open attempt tells"
                    .into(),
            );
        }
        if r.kubernetes && r.sgx_resources.is_none() {
            r.unknowable.push(format!(
                "the pod's resource limits are not visible from inside (the Downward API shows them only if the chart maps them, as the Sigil chart does in {SGX_RESOURCES_ENV})"
            ));
        }
    }
    r
}

/// Parses `name=value,name=value` (whitespace tolerated).
pub fn parse_resources(v: &str) -> Option<BTreeMap<String, String>> {
    if v.len() > MAX_RESOURCES_LEN {
        return None;
    }
    let mut m = BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, val) = item.split_once('=')?;
        let (k, val) = (k.trim(), val.trim());
        let name_ok = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "./-_".contains(c));
        let val_ok = !val.is_empty() && val.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !name_ok || !val_ok || m.len() >= MAX_RESOURCES {
            return None;
        }
        m.insert(k.to_string(), val.to_string());
    }
    Some(m)
}

/// Parses a cgroup v1 devices.list ("c 10:125 rwm", "a *:* rwm").
pub fn parse_device_rules(text: &str) -> Vec<DeviceRule> {
    let num = |s: &str| -> Option<Option<u32>> {
        if s == "*" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_ascii_whitespace();
            let kind = match f.next()? {
                "a" => 'a',
                "c" => 'c',
                "b" => 'b',
                _ => return None,
            };
            let (ma, mi) = f.next()?.split_once(':')?;
            let access = f.next()?;
            if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
                return None;
            }
            Some(DeviceRule {
                kind,
                major: num(ma)?,
                minor: num(mi)?,
                access: access.to_string(),
            })
        })
        .take(MAX_RULES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_parse_and_match() {
        let r = parse_device_rules(
            "c 1:3 rwm\nc 10:125 rw\nb 8:* r\nc 10:126 r\ngarbage\nc x:1 rw\nc 1:1 zz\n",
        );
        assert_eq!(r.len(), 4);
        let cg = CgroupDevices {
            path: "x".into(),
            rules: r,
        };
        assert!(cg.allows_char_rw(10, 125));
        assert!(!cg.allows_char_rw(10, 126), "read-only rule");
        assert!(!cg.allows_char_rw(8, 1), "block rule");
        let all = CgroupDevices {
            path: "x".into(),
            rules: parse_device_rules("a *:* rwm\n"),
        };
        assert!(all.allows_char_rw(10, 125));
    }

    #[test]
    fn resources_parse_strictly() {
        let m = parse_resources("sgx.intel.com/epc=64Mi, sgx.intel.com/enclave=1,").unwrap();
        assert_eq!(m.get("sgx.intel.com/epc").map(String::as_str), Some("64Mi"));
        assert_eq!(m.len(), 2);
        assert_eq!(parse_resources("sgx.intel.com/epc"), None);
        assert_eq!(parse_resources("a=$(reboot)"), None);
        assert_eq!(parse_resources(&"a=1,".repeat(2000)), None);
        assert_eq!(parse_resources(""), Some(BTreeMap::new()));
    }

    #[test]
    fn detects_docker_podman_and_pods() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let none = probe(root, &BTreeMap::new());
        assert!(!none.in_container && none.engine.is_none());
        assert!(none.unknowable.is_empty());

        std::fs::create_dir_all(root.join("proc/1")).unwrap();
        std::fs::write(
            root.join("proc/1/cgroup"),
            "12:devices:/kubepods/besteffort/pod1234/abcd\n0::/\n",
        )
        .unwrap();
        let mut env = BTreeMap::new();
        env.insert("KUBERNETES_SERVICE_HOST".into(), "10.0.0.1".into());
        let k = probe(root, &env);
        assert!(k.in_container && k.kubernetes);
        assert_eq!(k.engine, Some(Engine::Cri));
        assert!(k.unknowable.iter().any(|u| u.contains(SGX_RESOURCES_ENV)));

        std::fs::write(root.join("run/.containerenv"), "").unwrap_or_else(|_| {
            std::fs::create_dir_all(root.join("run")).unwrap();
            std::fs::write(root.join("run/.containerenv"), "").unwrap();
        });
        std::fs::write(root.join("proc/1/cgroup"), "0::/\n").unwrap();
        let p = probe(root, &BTreeMap::new());
        assert_eq!(p.engine, Some(Engine::Podman));
        assert!(!p.kubernetes);
    }

    #[test]
    fn hostile_cgroup_file_does_not_confuse() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc/1")).unwrap();
        // "kubepods" in the controller field only, and a huge junk tail.
        let mut s = String::from("1:kubepods:/\n");
        s.push_str(&"\u{0}:".repeat(100_000));
        std::fs::write(d.path().join("proc/1/cgroup"), s).unwrap();
        let r = probe(d.path(), &BTreeMap::new());
        assert!(!r.kubernetes && !r.in_container);
    }
}
