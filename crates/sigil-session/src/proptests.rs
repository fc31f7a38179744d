//! Property tests for the canonical hash: reformatting a document (key
//! order, quoting styles, flow vs block, comments, indentation, command as
//! string vs list) never changes it; reordering lists without meaning never
//! changes it; a semantic change always does. Also: `to_yaml` round trips.

use std::time::Duration;

use proptest::prelude::*;

use crate::emit::{literal_ok, quote};
use crate::model::*;
use crate::placeholder::Format;
use crate::yaml::{self, Kind, Node};

// ---------------------------------------------------------------- generators

fn text() -> impl Strategy<Value = String> {
    // Printable ASCII, whitespace YAML treats specially, C0/C1 controls,
    // NEL, NBSP, line separator, BOM and non-BMP characters.
    "[ -~\t\n\r\u{1}\u{1b}\u{7f}\u{85}\u{a0}\u{2028}\u{feff}é€😀]{0,24}"
        .prop_filter("no placeholder prefix", |s| {
            !s.contains("$$SIGIL") && !s.contains("$$SCONE")
        })
}

fn multiline() -> impl Strategy<Value = String> {
    prop::collection::vec(text(), 0..4).prop_map(|lines| lines.join("\n"))
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,6}"
}

fn abs_path() -> impl Strategy<Value = String> {
    "(/[a-z0-9_.-]{1,6}){1,3}".prop_filter("no ..", |p| !p.split('/').any(|c| c == ".."))
}

fn rule() -> impl Strategy<Value = AttestationRule> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|m| AttestationRule {
            mrenclave: Some(m),
            ..Default::default()
        }),
        (any::<[u8; 32]>(), any::<u16>(), any::<Option<u16>>()).prop_map(|(m, p, s)| {
            AttestationRule {
                mrsigner: Some(m),
                isvprodid: Some(p),
                isvsvn_min: s,
                ..Default::default()
            }
        }),
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            prop::array::uniform4(any::<bool>())
        )
            .prop_map(|(a, b, which)| {
                // 48-byte values from two 32-byte halves.
                let mut v = [0u8; 48];
                v[..32].copy_from_slice(&a);
                v[32..].copy_from_slice(&b[..16]);
                let mut r = AttestationRule {
                    mrtd: Some(v),
                    ..Default::default()
                };
                for (i, w) in which.iter().enumerate() {
                    if *w {
                        let mut x = v;
                        x[0] ^= i as u8 + 1;
                        r.rtmr[i] = Some(x);
                    }
                }
                r
            }),
        any::<[u8; 32]>().prop_map(|a| {
            let mut v = [0x5a; 48];
            v[..32].copy_from_slice(&a);
            AttestationRule {
                snp_measurement: Some(v),
                ..Default::default()
            }
        }),
        any::<[u8; 32]>().prop_map(|m| AttestationRule {
            simulation_measurement: Some(m),
            ..Default::default()
        }),
    ]
}

fn algorithm() -> impl Strategy<Value = KeyAlgorithm> {
    prop_oneof![
        Just(KeyAlgorithm::EcdsaP256),
        Just(KeyAlgorithm::EcdsaP384),
        Just(KeyAlgorithm::Ed25519),
        Just(KeyAlgorithm::Rsa2048),
        Just(KeyAlgorithm::Rsa3072),
    ]
}

/// A private key given in the session (keys made once: generation is slow).
fn given_key(i: usize) -> SecretKind {
    use std::sync::OnceLock;
    static KEYS: OnceLock<Vec<(KeyAlgorithm, Vec<u8>)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        let p256 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .expect("keygen");
        let ed = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen");
        vec![
            (KeyAlgorithm::EcdsaP256, p256.as_ref().to_vec()),
            (KeyAlgorithm::Ed25519, ed.as_ref().to_vec()),
        ]
    });
    let (algorithm, der) = &keys[i % keys.len()];
    SecretKind::PrivateKey {
        algorithm: *algorithm,
        value: Some(SecretValue::new(der.clone())),
    }
}

/// A secret kind; `X509` issuers are fixed up later.
fn kind() -> impl Strategy<Value = SecretKind> {
    prop_oneof![
        (1usize..=4096).prop_map(|size| SecretKind::Ascii { size }),
        (1usize..=4096).prop_map(|size| SecretKind::Binary { size }),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(|v| SecretKind::Explicit {
            value: SecretValue::new(v)
        }),
        "[ -~]{1,30}".prop_map(|v| SecretKind::Explicit {
            value: SecretValue::new(v.into_bytes())
        }),
        algorithm().prop_map(|algorithm| SecretKind::PrivateKey {
            algorithm,
            value: None
        }),
        (0usize..2).prop_map(given_key),
        (
            prop::option::of("[A-Za-z0-9 ]{1,20}"),
            prop::option::of(1u64..=3_000_000_000),
            algorithm()
        )
            .prop_map(|(common_name, secs, algorithm)| SecretKind::X509Ca {
                common_name,
                valid_for: secs.map(Duration::from_secs),
                algorithm,
            }),
        (
            "[a-z.]{1,20}",
            prop::collection::vec("[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,2}", 0..3),
            1u64..=3_000_000_000,
            algorithm()
        )
            .prop_map(|(common_name, dns, secs, algorithm)| SecretKind::X509 {
                issuer: String::new(),
                common_name,
                dns,
                valid_for: Duration::from_secs(secs),
                algorithm,
            }),
        Just(SecretKind::Imported),
    ]
}

fn principals() -> impl Strategy<Value = Vec<Principal>> {
    prop_oneof![
        Just(vec![Principal::Creator]),
        Just(vec![Principal::Any]),
        Just(vec![Principal::Nobody]),
        prop::collection::btree_set(any::<[u8; 32]>(), 1..3).prop_map(|fps| {
            let mut v = vec![Principal::Creator];
            v.extend(fps.into_iter().map(Principal::Fingerprint));
            v
        }),
    ]
}

const ADVISORIES: [&str; 4] = [
    "INTEL-SA-00615",
    "INTEL-SA-00657",
    "AMD-SB-3019",
    "INTEL-SA-00088",
];

fn session() -> impl Strategy<Value = Session> {
    let head = (
        "[a-z][a-z0-9]{0,6}(/[a-z0-9_~-]{1,6}){0,2}",
        prop::option::of("[0-9a-z.]{1,8}"),
        prop::option::of(any::<[u8; 32]>()),
    );
    let services = prop::collection::vec(
        (
            ident(),
            prop::collection::vec(text(), 0..4),
            prop::collection::btree_map("[A-Za-z_.:-][A-Za-z0-9_.:-]{0,8}", multiline(), 0..4),
            prop::option::of(abs_path()),
            any::<Option<prop::sample::Index>>(),
            prop::collection::vec(rule(), 0..3),
        ),
        0..3,
    );
    let secrets = prop::collection::vec(
        (
            ident(),
            kind(),
            prop::collection::btree_set("[a-z]{1,6}(/[a-z]{1,4})?", 0..3),
            any::<prop::sample::Index>(),
        ),
        0..6,
    );
    let volumes = prop::collection::vec(
        (
            ident(),
            any::<Option<[u8; 32]>>(),
            any::<Option<[u8; 32]>>(),
        ),
        0..3,
    );
    let images = prop::collection::vec(
        (
            ident(),
            prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            prop::collection::vec((multiline(), 0u32..=0o7777), 0..3),
        ),
        0..3,
    );
    let policy = (principals(), principals(), principals());
    let security = (
        any::<bool>(),
        prop::collection::btree_set(prop::sample::select(Tolerance::ALL.to_vec()), 0..4),
        prop::collection::btree_set(prop::sample::select(ADVISORIES.to_vec()), 0..3),
        prop::option::of((any::<[u8; 4]>(), prop::option::of(any::<u8>()))),
    );
    let placeholders = prop::collection::vec(
        (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
        0..4,
    );
    (
        head,
        services,
        secrets,
        volumes,
        images,
        policy,
        security,
        placeholders,
    )
        .prop_map(
            |(head, services, secrets, volumes, images, policy, security, placeholders)| {
                let mut s = Session::new(head.0.parse().expect("generated name is valid"));
                s.version = head.1;
                s.predecessor = head.2.map(SessionHash).filter(|h| h.0 != [0; 32]);
                // Names get an index suffix so they are unique.
                s.volumes = volumes
                    .into_iter()
                    .enumerate()
                    .map(|(i, (n, key, tag))| Volume {
                        name: format!("{n}{i}"),
                        key: key.map(VolumeKeyHex::new),
                        tag,
                    })
                    .collect();
                s.images = images
                    .into_iter()
                    .enumerate()
                    .map(|(i, (n, vols, files))| Image {
                        name: format!("{n}{i}"),
                        volumes: if s.volumes.is_empty() {
                            vec![]
                        } else {
                            vols.iter()
                                .enumerate()
                                .map(|(j, ix)| ImageVolume {
                                    name: ix.get(&s.volumes).name.clone(),
                                    path: format!("/mnt/v{j}"),
                                })
                                .collect()
                        },
                        injection_files: files
                            .into_iter()
                            .enumerate()
                            .map(|(j, (content, mode))| InjectionFile {
                                path: format!("/etc/f{j}"),
                                content,
                                mode,
                            })
                            .collect(),
                    })
                    .collect();
                let mut cas: Vec<String> = Vec::new();
                for (i, (n, kind, export, import_from)) in secrets.into_iter().enumerate() {
                    let name = format!("{n}{i}");
                    let mut sec = Secret {
                        name: name.clone(),
                        kind,
                        export: vec![],
                        import: None,
                    };
                    if matches!(sec.kind, SecretKind::X509 { .. }) && cas.is_empty() {
                        sec.kind = SecretKind::PrivateKey {
                            algorithm: KeyAlgorithm::Ed25519,
                            value: None,
                        };
                    }
                    match &mut sec.kind {
                        SecretKind::X509 { issuer, .. } => *issuer = import_from.get(&cas).clone(),
                        SecretKind::X509Ca { .. } => cas.push(name.clone()),
                        SecretKind::Imported => {
                            sec.import = Some(SecretImport {
                                session: format!("other/{n}"),
                                secret: n.clone(),
                                kind: [
                                    None,
                                    Some(ImportKind::Ascii),
                                    Some(ImportKind::X509Ca),
                                    Some(ImportKind::PrivateKey),
                                ][import_from.index(4)],
                            });
                        }
                        _ => {}
                    }
                    if sec.import.is_none() {
                        sec.export = export
                            .into_iter()
                            .map(|session| SecretExport { session })
                            .collect();
                    }
                    s.secrets.push(sec);
                }
                s.services = services
                    .into_iter()
                    .enumerate()
                    .map(
                        |(i, (n, command, environment, pwd, img, attestation))| Service {
                            name: format!("{n}{i}"),
                            command,
                            environment,
                            pwd,
                            image_name: img
                                .filter(|_| !s.images.is_empty())
                                .map(|ix| ix.get(&s.images).name.clone()),
                            attestation,
                        },
                    )
                    .collect();
                // Placeholders with formats that fit the secret's kind.
                if !s.secrets.is_empty() {
                    for (which_secret, where_) in placeholders {
                        let sec = which_secret.get(&s.secrets);
                        let format = match sec.kind {
                            SecretKind::PrivateKey { .. } => Format::PrivateKey,
                            SecretKind::X509Ca { .. } | SecretKind::X509 { .. } => Format::Chain,
                            _ => Format::Hex,
                        };
                        let ph = crate::placeholder::Placeholder {
                            secret: sec.name.clone(),
                            format,
                        }
                        .to_string();
                        let targets: Vec<&mut String> = s
                            .services
                            .iter_mut()
                            .flat_map(|sv| sv.environment.values_mut().chain(sv.command.iter_mut()))
                            .chain(
                                s.images.iter_mut().flat_map(|i| {
                                    i.injection_files.iter_mut().map(|f| &mut f.content)
                                }),
                            )
                            .collect();
                        if !targets.is_empty() {
                            let n = targets.len();
                            let t = targets.into_iter().nth(where_.index(n)).expect("in range");
                            t.push_str(&ph);
                        }
                    }
                }
                s.access_policy = AccessPolicy {
                    read: policy.0,
                    update: policy.1,
                    create_sessions: policy.2,
                };
                s.security = Security {
                    attestation_mode: if security.0 {
                        AttestationMode::Simulation
                    } else {
                        AttestationMode::Hardware
                    },
                    tolerate: security.1,
                    ignore_advisories: security.2.into_iter().map(str::to_owned).collect(),
                    snp_min_tcb: security.3.map(|([bootloader, tee, snp, microcode], fmc)| {
                        SnpMinTcb {
                            bootloader,
                            tee,
                            snp,
                            microcode,
                            fmc,
                        }
                    }),
                };
                s
            },
        )
}

// ------------------------------------------------------------- reformatting

/// A tiny deterministic PRNG so one `u64` from proptest drives every choice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn chance(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Reformat {
    rng: Rng,
    width: usize,
}

fn plain_ok(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
        && !v.starts_with(['-', '.'])
        && !matches!(v, "null" | "Null" | "NULL")
}

fn single_ok(v: &str) -> bool {
    v.chars().all(|c| c == '\t' || !c.is_control())
        && !v.contains(['\u{2028}', '\u{2029}', '\u{feff}', '\u{85}'])
        && !v.starts_with([' ', '\t'])
        && !v.ends_with([' ', '\t'])
}

impl Reformat {
    fn scalar(&mut self, v: &str) -> String {
        match self.rng.below(3) {
            0 if plain_ok(v) => v.to_owned(),
            1 if single_ok(v) => format!("'{}'", v.replace('\'', "''")),
            _ => quote(v),
        }
    }

    fn comment(&mut self, out: &mut String, indent: usize) {
        if self.rng.chance(4) {
            out.push_str(&" ".repeat(self.rng.below(indent + 1)));
            out.push_str("# a comment: with [brackets] and 'quotes'\n");
        }
    }

    fn flow(&mut self, n: &Node) -> String {
        match &n.kind {
            Kind::Scalar { value, .. } => self.scalar(value),
            Kind::Seq(items) => {
                let parts: Vec<String> = items.iter().map(|i| self.flow(i)).collect();
                format!(
                    "[{}]",
                    parts.join(if self.rng.chance(2) { ", " } else { "," })
                )
            }
            Kind::Map(entries) => {
                let mut order: Vec<usize> = (0..entries.len()).collect();
                self.shuffle(&mut order);
                let parts: Vec<String> = order
                    .into_iter()
                    .map(|i| {
                        let (k, v) = &entries[i];
                        let k = self.flow(k);
                        let v = self.flow(v);
                        format!("{k}: {v}")
                    })
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            Kind::Invalid => unreachable!(),
        }
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = self.rng.below(i + 1);
            v.swap(i, j);
        }
    }

    /// Emits `value` after `key:` (the key text is already written).
    fn value(&mut self, key: &str, v: &Node, indent: usize, out: &mut String) {
        // command: a list may be written as one shell-quoted string.
        if key == "command" {
            if let Kind::Seq(items) = &v.kind {
                if self.rng.chance(2) {
                    let args: Vec<&str> = items
                        .iter()
                        .map(|i| match &i.kind {
                            Kind::Scalar { value, .. } => value.as_str(),
                            _ => unreachable!(),
                        })
                        .collect();
                    let joined = shell_words::join(args);
                    let s = self.scalar(&joined);
                    out.push_str(&format!(" {s}\n"));
                    return;
                }
            }
        }
        match &v.kind {
            Kind::Scalar { value, .. } => {
                if literal_ok(value) && self.rng.chance(2) {
                    let trailing = value.len() - value.trim_end_matches('\n').len();
                    let chomp = ["-", "", "+"][trailing.min(2)];
                    out.push_str(&format!(" |{chomp}\n"));
                    let ind = " ".repeat(indent + self.width);
                    for l in value.trim_end_matches('\n').split('\n') {
                        if !l.is_empty() {
                            out.push_str(&ind);
                        }
                        out.push_str(l);
                        out.push('\n');
                    }
                    for _ in 1..trailing {
                        out.push('\n');
                    }
                } else {
                    let s = self.scalar(value);
                    out.push(' ');
                    out.push_str(&s);
                    if self.rng.chance(5) {
                        out.push_str("  # trailing comment");
                    }
                    out.push('\n');
                }
            }
            Kind::Seq(items) if items.is_empty() || self.rng.chance(3) => {
                let f = self.flow(v);
                out.push_str(&format!(" {f}\n"));
            }
            Kind::Map(entries) if entries.is_empty() || self.rng.chance(3) => {
                let f = self.flow(v);
                out.push_str(&format!(" {f}\n"));
            }
            Kind::Seq(_) => {
                out.push('\n');
                // Sequences in a mapping may sit at the key's indentation.
                let ind = if self.rng.chance(2) {
                    indent
                } else {
                    indent + self.width
                };
                self.block(v, ind, out);
            }
            Kind::Map(_) => {
                out.push('\n');
                self.block(v, indent + self.width, out);
            }
            Kind::Invalid => unreachable!(),
        }
    }

    fn block(&mut self, n: &Node, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match &n.kind {
            Kind::Map(entries) => {
                let mut order: Vec<usize> = (0..entries.len()).collect();
                self.shuffle(&mut order);
                for i in order {
                    let (k, v) = &entries[i];
                    let Kind::Scalar { value: key, .. } = &k.kind else {
                        unreachable!()
                    };
                    self.comment(out, indent);
                    let ks = self.scalar(key);
                    out.push_str(&format!("{pad}{ks}:"));
                    self.value(key, v, indent, out);
                }
            }
            Kind::Seq(items) => {
                for it in items {
                    self.comment(out, indent);
                    match &it.kind {
                        Kind::Map(e) if !e.is_empty() => {
                            // Compact form "- key: value" or "-" then the mapping.
                            let mut inner = String::new();
                            self.block(it, indent + 2, &mut inner);
                            if self.rng.chance(2) && !inner.trim_start().starts_with('#') {
                                out.push_str(&pad);
                                out.push_str("- ");
                                out.push_str(&inner[indent + 2..]);
                            } else {
                                out.push_str(&format!("{pad}-\n"));
                                out.push_str(&inner);
                            }
                        }
                        Kind::Seq(e) if !e.is_empty() => {
                            out.push_str(&format!("{pad}-\n"));
                            self.block(it, indent + 2, out);
                        }
                        Kind::Scalar { value, .. } => {
                            let s = self.scalar(value);
                            out.push_str(&format!("{pad}- {s}\n"));
                        }
                        _ => {
                            let f = self.flow(it);
                            out.push_str(&format!("{pad}- {f}\n"));
                        }
                    }
                }
            }
            _ => unreachable!(),
        }
    }
}

/// Rewrites a YAML document with random, meaning-preserving formatting.
fn reformat(doc: &str, seed: u64) -> String {
    let (root, errors) = yaml::load(doc);
    assert!(errors.is_empty());
    let root = root.expect("document");
    let mut r = Reformat {
        rng: Rng(seed | 1),
        width: 2,
    };
    r.width = 2 + r.rng.below(3);
    let mut out = String::new();
    if r.rng.chance(2) {
        out.push_str("# leading comment\n---\n");
    }
    if r.rng.chance(5) {
        out.push_str(&r.flow(&root));
        out.push('\n');
    } else {
        r.block(&root, 0, &mut out);
    }
    if r.rng.chance(3) {
        out.push_str("...\n");
    }
    out
}

// --------------------------------------------------------------- mutations

/// Applies one semantic change (chosen by `pick`) to `s`.
fn mutate(s: &mut Session, pick: usize) -> &'static str {
    let n = 10;
    for k in 0..n {
        let which = (pick + k) % n;
        match which {
            0 => {
                let name = format!("{}x", s.name.as_str());
                s.name = name.parse().expect("valid");
                return "name";
            }
            1 => {
                s.security.attestation_mode = match s.security.attestation_mode {
                    AttestationMode::Hardware => AttestationMode::Simulation,
                    AttestationMode::Simulation => AttestationMode::Hardware,
                };
                return "mode";
            }
            9 => {
                let t = s
                    .security
                    .snp_min_tcb
                    .get_or_insert_with(SnpMinTcb::default);
                t.microcode = t.microcode.wrapping_add(1);
                return "snp min tcb";
            }
            2 => {
                s.predecessor = match s.predecessor {
                    Some(_) => None,
                    None => Some(SessionHash([1; 32])),
                };
                return "predecessor";
            }
            3 if !s.services.is_empty() => {
                s.services[0].command.push("--extra".into());
                return "command";
            }
            4 if !s.services.is_empty() => {
                s.services[0]
                    .environment
                    .insert("NEW_VAR_X".into(), "1".into());
                return "environment";
            }
            5 if !s.secrets.is_empty() => {
                s.secrets[0].name.push('z');
                return "secret name";
            }
            6 => {
                s.access_policy.read = match s.access_policy.read.as_slice() {
                    [Principal::Any] => vec![Principal::Nobody],
                    _ => vec![Principal::Any],
                };
                return "policy";
            }
            7 if s.images.iter().any(|i| !i.injection_files.is_empty()) => {
                let f = s
                    .images
                    .iter_mut()
                    .flat_map(|i| i.injection_files.iter_mut())
                    .next()
                    .expect("checked");
                f.mode ^= 0o100;
                return "mode bits";
            }
            _ => {}
        }
    }
    unreachable!("mutation 0 always applies")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn generated_sessions_are_valid_and_round_trip(s in session()) {
        if let Err(e) = s.validate() {
            panic!("generator made an invalid session:\n{e}\n{}", s.to_yaml());
        }
        let yaml = s.to_yaml();
        let back = match crate::Session::parse(&yaml) {
            Ok(b) => b,
            Err(e) => panic!("to_yaml output does not parse:\n{e}\n{yaml}"),
        };
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.hash(), s.hash());
    }

    #[test]
    fn reformatting_never_changes_the_hash(s in session(), seed in any::<u64>()) {
        let yaml = reformat(&s.to_yaml(), seed);
        let back = match crate::Session::parse(&yaml) {
            Ok(b) => b,
            Err(e) => panic!("reformatted document does not parse:\n{e}\n{yaml}"),
        };
        prop_assert_eq!(back.hash(), s.hash(), "{}", yaml);
        prop_assert_eq!(back, s);
    }

    #[test]
    fn reordering_unordered_lists_never_changes_the_hash(s in session(), seed in any::<u64>()) {
        let mut r = Rng(seed | 1);
        let mut t = s.clone();
        fn shuffle<T>(r: &mut Rng, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                let j = r.below(i + 1);
                v.swap(i, j);
            }
        }
        shuffle(&mut r, &mut t.services);
        shuffle(&mut r, &mut t.secrets);
        shuffle(&mut r, &mut t.volumes);
        shuffle(&mut r, &mut t.images);
        for sv in &mut t.services {
            shuffle(&mut r, &mut sv.attestation);
        }
        for sec in &mut t.secrets {
            shuffle(&mut r, &mut sec.export);
        }
        for img in &mut t.images {
            shuffle(&mut r, &mut img.volumes);
            shuffle(&mut r, &mut img.injection_files);
        }
        shuffle(&mut r, &mut t.access_policy.read);
        shuffle(&mut r, &mut t.access_policy.update);
        prop_assert_eq!(t.hash(), s.hash());
    }

    #[test]
    fn semantic_changes_always_change_the_hash(s in session(), pick in 0usize..8) {
        let mut t = s.clone();
        let what = mutate(&mut t, pick);
        prop_assert_ne!(t.hash(), s.hash(), "{}", what);
        // And survive the YAML round trip as a different session.
        if t.validate().is_ok() {
            let back = crate::Session::parse(&t.to_yaml()).expect("valid");
            prop_assert_ne!(back.hash(), s.hash(), "{}", what);
        }
    }

    #[test]
    fn equivalent_spellings_hash_the_same(
        args in prop::collection::vec("[ -~]{0,12}", 1..5),
        mode in 0u32..=0o7777,
    ) {
        let list = format!("[{}]", args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", "));
        let string = quote(&shell_words::join(&args));
        let doc = |command: &str, mode: &str| format!(
            "name: t\nservices:\n  - name: a\n    command: {command}\nimages:\n  - name: i\n    injection_files:\n      - {{path: /f, content: x, mode: {mode}}}\n"
        );
        let a = crate::Session::parse(&doc(&list, &format!("{mode:o}"))).expect("list form");
        let b = crate::Session::parse(&doc(&string, &format!("\"0o{mode:o}\""))).expect("string form");
        prop_assert_eq!(&a.services[0].command, &args);
        prop_assert_eq!(a.hash(), b.hash());
    }
}

#[test]
fn example_hash_is_stable_across_releases() {
    // The canonical form is a compatibility promise: this value may only
    // change together with HASH_DOMAIN's version.
    let s = crate::Session::parse("name: pinned\n").expect("valid");
    let canonical = String::from_utf8(s.canonical_form()).expect("utf8");
    assert_eq!(
        canonical,
        r#"{"access_policy":{"create_sessions":["CREATOR"],"read":["CREATOR"],"update":["CREATOR"]},"images":[],"name":"pinned","predecessor":null,"secrets":[],"security":{"attestation_mode":"hardware","ignore_advisories":[],"tolerate":[]},"services":[],"version":null,"volumes":[]}"#
    );
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"sigil-session-canonical-v1\n");
    ctx.update(canonical.as_bytes());
    assert_eq!(s.hash().0.as_slice(), ctx.finish().as_ref());
}
