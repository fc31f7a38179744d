//! What the launcher tests (tests/launcher_cas.rs) and the launch benchmark
//! (examples/bench_launch.rs, which includes this file by path) share: a
//! real CAS in this process on loopback, and an image tree with a sealed
//! volume for the `sigil-init` binary to start from.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use sigil_cas::{Config, MasterKeySource, RunningServer, Server};
use sigil_client::{CasClient, Identity};
use sigil_init::config::{ConfigId, InitConfig, Mode, SpkiPin, VolumeSpec};

/// A real CAS (TLS on loopback, redb in a temporary directory) on its own
/// runtime, with a client identity; shut down on drop.
pub struct Cas {
    pub rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    pub client: CasClient,
    _dir: tempfile::TempDir,
}

impl Cas {
    /// Starts a CAS under master key `key_hex` with `tune` applied to its
    /// configuration, and connects a client as identity `who`.
    pub fn start(key_hex: &str, who: &str, tune: impl FnOnce(&mut Config)) -> Cas {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        c.master_key = Some(MasterKeySource::Hex(zeroize::Zeroizing::new(
            key_hex.to_string(),
        )));
        c.admin_socket = false;
        tune(&mut c);
        let server = rt.block_on(Server::start(c)).unwrap();
        let id = Identity::generate(who, &[]).unwrap();
        let client = rt
            .block_on(CasClient::connect(
                &server.addr.to_string(),
                server.fingerprint,
                Some(&id),
            ))
            .unwrap();
        Cas {
            rt,
            server: Some(server),
            client,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        self.server.as_ref().unwrap().addr.to_string()
    }

    pub fn pin(&self) -> SpkiPin {
        SpkiPin(self.server.as_ref().unwrap().fingerprint.0)
    }

    /// Creates a session; fails the test if the CAS refuses it.
    pub fn create(&self, yaml: &str) {
        self.rt.block_on(self.client.create_session(yaml)).unwrap();
    }
}

impl Drop for Cas {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

/// An image tree in a new directory `prefix…` under `parent` (a tmpfs such
/// as /dev/shm, as in a container): `/usr/bin/sh` (the host's, an ELF),
/// `/run/sigil`, and volume `app` sealed at `/sigil/volumes/app` from
/// `app/FILE` holding `content`. Returns the root and the sealed volume.
pub fn image_tree(
    parent: &Path,
    prefix: &str,
    file: &str,
    content: &[u8],
) -> (tempfile::TempDir, sigil_fs::Sealed) {
    let root = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("usr/bin")).unwrap();
    fs::copy("/bin/sh", r.join("usr/bin/sh")).unwrap();
    fs::create_dir_all(r.join("run/sigil")).unwrap();
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("app")).unwrap();
    fs::write(src.path().join("app").join(file), content).unwrap();
    let sealed = sigil_fs::seal(
        src.path(),
        &r.join("sigil/volumes/app"),
        &sigil_fs::Regions::new().encrypt("app"),
        &sigil_fs::SealOptions::default(),
    )
    .unwrap();
    (root, sealed)
}

/// The `/sigil/init.toml` of an [`image_tree`]: simulation mode, `cas`'s
/// address and pin, config id `session/service`, `/usr/bin/sh`, volume
/// `app` at `/app` with `tag`.
pub fn init_config(
    cas: &Cas,
    session: &str,
    service: &str,
    tag: &str,
    env_passthrough: Vec<String>,
) -> InitConfig {
    InitConfig {
        version: 1,
        cas_addr: cas.addr(),
        cas_fingerprint: cas.pin(),
        config_id: ConfigId {
            session: session.into(),
            service: service.into(),
        },
        binary: "/usr/bin/sh".into(),
        volumes: vec![VolumeSpec {
            name: "app".into(),
            sealed_dir: "/sigil/volumes/app".into(),
            paths: vec!["/app".into()],
            tag: tag.into(),
        }],
        memory_dir: "/run/sigil".into(),
        allow_env_passthrough: env_passthrough,
        mode: Mode::Sim,
    }
}
