//! The master key given in `SIGIL_CAS_MASTER_KEY` must not stay readable
//! in `/proc/PID/environ` for the CAS's whole life, nor reach child
//! processes. Runs in a child process started with the variable set, since
//! the test harness's own environment block cannot be given one.

use sigil_cas::{MasterKey, MasterKeySource};
use std::path::Path;

const CHILD: &str = "SIGIL_SEC_MASTER_KEY_ENV_CHILD";
const KEY_HEX: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

fn proc_environ_has_key() -> bool {
    let env = std::fs::read("/proc/self/environ").unwrap();
    env.windows(KEY_HEX.len()).any(|w| w == KEY_HEX.as_bytes())
}

/// In the test process: runs `test` again in a child with the master key
/// in its environment and returns false. In that child: returns true.
fn in_child_with_env_key(test: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SIGIL_CAS_MASTER_KEY", KEY_HEX)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    false
}

#[test]
fn master_key_from_env_is_scrubbed_from_the_process() {
    if !in_child_with_env_key("master_key_from_env_is_scrubbed_from_the_process") {
        return;
    }
    assert!(
        proc_environ_has_key(),
        "precondition: the key is in /proc/self/environ"
    );
    let dir = tempfile::tempdir().unwrap();
    let src = MasterKeySource::resolve(None, dir.path());
    assert!(matches!(src, MasterKeySource::Hex(_)), "{src:?}");
    // The key still works.
    let k = MasterKey::load(&src, false).unwrap();
    let blob = k.seal(&[b"t"], b"v").unwrap();
    let mut raw = [0u8; 32];
    hex::decode_to_slice(KEY_HEX, &mut raw).unwrap();
    assert_eq!(
        &*MasterKey::from_bytes(&raw).open(&[b"t"], &blob).unwrap(),
        b"v"
    );
    // Gone from /proc/self/environ, from std::env, and from children.
    assert!(
        !proc_environ_has_key(),
        "the key is still in /proc/self/environ"
    );
    assert!(std::env::var_os("SIGIL_CAS_MASTER_KEY").is_none());
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf %s \"${SIGIL_CAS_MASTER_KEY-unset}\"")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&child.stdout), "unset");
    // Asked again (another resolve in the same process): the data
    // directory's file, not a stale copy.
    match MasterKeySource::resolve(None, dir.path()) {
        MasterKeySource::File(p) => assert_eq!(p, dir.path().join("master.key")),
        other => panic!("{other:?}"),
    }
}

/// A key file given explicitly wins, and an environment key beside it is
/// scrubbed all the same (it is a copy of a master key either way).
#[test]
fn key_file_wins_and_env_is_scrubbed_anyway() {
    if !in_child_with_env_key("key_file_wins_and_env_is_scrubbed_anyway") {
        return;
    }
    let file = Path::new("/nonexistent/master.key").to_path_buf();
    match MasterKeySource::resolve(Some(file.clone()), Path::new("/tmp")) {
        MasterKeySource::File(p) => assert_eq!(p, file),
        other => panic!("{other:?}"),
    }
    assert!(!proc_environ_has_key());
    assert!(std::env::var_os("SIGIL_CAS_MASTER_KEY").is_none());
}
