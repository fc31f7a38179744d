//! Parsing, validation and error reporting of whole session documents.

use std::time::Duration;

use sigil_session::*;

const EXAMPLE: &str = include_str!("data/monitoring-aggregator.yaml");

fn parse_ok(yaml: &str) -> Session {
    match Session::parse(yaml) {
        Ok(s) => s,
        Err(e) => panic!("expected a valid session, got:\n{e}"),
    }
}

fn parse_err(yaml: &str) -> ParseErrors {
    match Session::parse(yaml) {
        Ok(s) => panic!("expected errors, parsed {s:?}"),
        Err(e) => e,
    }
}

/// The single error at `path` (fails if there is none or several).
fn error_at<'a>(errors: &'a ParseErrors, path: &str) -> &'a ParseError {
    let found: Vec<&ParseError> = errors.iter().filter(|e| e.path == path).collect();
    assert_eq!(found.len(), 1, "errors at {path:?} in:\n{errors}");
    found[0]
}

/// The one error at `path` says `needle`.
fn assert_message(errors: &ParseErrors, path: &str, needle: &str) {
    let m = &error_at(errors, path).message;
    assert!(m.contains(needle), "{path}: {m}");
}

fn assert_error(yaml: &str, path: &str, line: usize, column: usize, needle: &str) {
    let errors = parse_err(yaml);
    let e = error_at(&errors, path);
    assert_eq!((e.line, e.column), (line, column), "position of {e}");
    assert!(
        e.message.contains(needle),
        "message {:?} lacks {needle:?}",
        e.message
    );
}

const MINIMAL: &str = "name: test\n";

#[test]
fn example_session_parses_with_expected_model() {
    let s = parse_ok(EXAMPLE);
    assert_eq!(s.name.as_str(), "5gzorro/monitoring-aggregator");
    assert_eq!(s.name.namespace(), Some("5gzorro"));
    assert_eq!(s.version.as_deref(), Some("0.3"));
    assert_eq!(s.predecessor, None);

    let agg = s.service("aggregator").unwrap();
    assert_eq!(
        agg.command,
        [
            "python3",
            "/app/aggregator.py",
            "--config",
            "/etc/aggregator/config.yaml",
            "--port",
            "8443"
        ]
    );
    assert_eq!(agg.pwd.as_deref(), Some("/app"));
    assert_eq!(agg.image_name.as_deref(), Some("aggregator_image"));
    // Numbers are kept as written.
    assert_eq!(agg.environment["PORT"], "8443");
    assert_eq!(agg.environment["KAFKA_TOKEN"], "$$SCONE::kafka_token$$");
    assert_eq!(agg.attestation.len(), 3);
    // Upper-case hex accepted.
    assert_eq!(agg.attestation[0].mrenclave.unwrap()[0], 0x3f);
    assert_eq!(agg.attestation[1].isvprodid, Some(1));
    assert_eq!(agg.attestation[1].isvsvn_min, Some(3));
    assert!(agg.attestation[2].simulation_measurement.is_some());

    let exp = s.service("exporter").unwrap();
    assert_eq!(
        exp.command,
        ["/usr/bin/exporter", "--listen", "0.0.0.0:9100"]
    );
    assert!(exp.attestation[0].mrtd.is_some());
    assert_eq!(exp.attestation[0].rtmr[1].unwrap()[1], 0x11);
    assert_eq!(exp.attestation[1].snp_measurement.unwrap()[0], 0xff);

    assert_eq!(
        s.secret("db_password").unwrap().kind,
        SecretKind::Ascii { size: 24 }
    );
    assert_eq!(
        s.secret("api_key").unwrap().export,
        [SecretExport {
            session: "5gzorro/dashboard".into()
        }]
    );
    assert_eq!(
        s.secret("tls_key").unwrap().kind,
        SecretKind::PrivateKey {
            algorithm: KeyAlgorithm::EcdsaP256,
            value: None,
        }
    );
    assert_eq!(
        s.secret("monitoring_ca").unwrap().kind,
        SecretKind::X509Ca {
            common_name: Some("5GZORRO Monitoring CA".into()),
            valid_for: Some(Duration::from_secs(5 * 365 * 86400)),
            algorithm: KeyAlgorithm::EcdsaP256,
        }
    );
    assert_eq!(
        s.secret("aggregator_cert").unwrap().kind,
        SecretKind::X509 {
            issuer: "monitoring_ca".into(),
            common_name: "aggregator.monitoring.svc".into(),
            dns: vec![
                "aggregator.monitoring.svc".into(),
                "aggregator.monitoring.svc.cluster.local".into()
            ],
            valid_for: Duration::from_secs(90 * 86400),
            algorithm: KeyAlgorithm::EcdsaP384,
        }
    );
    let kafka = s.secret("kafka_token").unwrap();
    assert_eq!(kafka.kind, SecretKind::Imported);
    assert_eq!(
        kafka.import,
        Some(SecretImport {
            session: "5gzorro/platform".into(),
            secret: "kafka_token".into(),
            kind: None,
        })
    );
    match &s.secret("welcome_banner").unwrap().kind {
        SecretKind::Explicit { value } => assert_eq!(
            value.expose(),
            b"Welcome to the 5GZORRO monitoring aggregator"
        ),
        other => panic!("{other:?}"),
    }

    let vol = s.volume("metrics_db").unwrap();
    assert_eq!(vol.key.as_ref().unwrap().expose()[1], 0xff);
    assert_eq!(vol.tag.unwrap()[0], 0xa0);

    let img = s.image("aggregator_image").unwrap();
    assert_eq!(img.volumes[0].path, "/var/lib/aggregator");
    let modes: Vec<u32> = img.injection_files.iter().map(|f| f.mode).collect();
    // 0640 is octal (not YAML 1.2 decimal); absent mode is 0600.
    assert_eq!(modes, [0o640, DEFAULT_INJECTION_MODE, 0o600, 0o644]);
    assert!(img.injection_files[0]
        .content
        .starts_with("kafka:\n  bootstrap: kafka.5gzorro.svc:9093\n"));
    assert!(img.injection_files[0].content.ends_with("\"\n"));

    assert_eq!(s.access_policy.read, [Principal::Creator]);
    assert_eq!(s.access_policy.update.len(), 2);
    assert!(matches!(s.access_policy.update[1], Principal::Fingerprint(fp) if fp[0] == 0x6b));
    assert_eq!(s.access_policy.create_sessions, [Principal::Nobody]);

    assert_eq!(s.security.attestation_mode, AttestationMode::Simulation);
    assert_eq!(
        s.security.tolerate.iter().copied().collect::<Vec<_>>(),
        [
            Tolerance::OutdatedTcb,
            Tolerance::SoftwareHardeningNeeded,
            Tolerance::Hyperthreading
        ]
    );
    assert!(s.security.ignore_advisories.contains("INTEL-SA-00657"));
}

#[test]
fn minimal_session_gets_explicit_defaults() {
    let s = parse_ok(MINIMAL);
    assert_eq!(s, Session::new("test".parse().unwrap()));
    assert_eq!(s.access_policy, AccessPolicy::default());
    assert_eq!(s.access_policy.read, [Principal::Creator]);
    assert_eq!(s.security.attestation_mode, AttestationMode::Hardware);
    assert!(s.security.tolerate.is_empty());
}

#[test]
fn to_yaml_round_trips_example() {
    let s = parse_ok(EXAMPLE);
    let yaml = s.to_yaml();
    let back = parse_ok(&yaml);
    assert_eq!(back, s);
    assert_eq!(back.hash(), s.hash());
    // Emitting is stable.
    assert_eq!(back.to_yaml(), yaml);
}

#[test]
fn redacted_yaml_and_debug_hide_secret_material() {
    let s = parse_ok(EXAMPLE);
    let key_hex = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    let value = "Welcome to the 5GZORRO monitoring aggregator";
    assert!(s.to_yaml().contains(key_hex));
    assert!(s.to_yaml().contains(value));
    let red = s.to_yaml_redacted();
    assert!(!red.contains(key_hex));
    assert!(!red.contains(value));
    assert!(red.contains(REDACTED));
    let dbg = format!("{s:?}");
    assert!(!dbg.contains(value));
    assert!(!dbg.contains("192, 255, 238"));
    assert!(dbg.contains("<redacted>"));
}

#[test]
fn bad_explicit_value_error_does_not_echo_the_value() {
    let yaml =
        "name: t\nsecrets:\n  - name: s\n    kind: binary\n    value: 'hunter2 is my pass!'\n";
    let errors = parse_err(yaml);
    let e = error_at(&errors, "secrets[0].value");
    assert!(e.message.contains("not valid base64"));
    assert!(!errors.to_string().contains("hunter2"));
}

#[test]
fn explicit_values_in_all_encodings() {
    let yaml = r#"
name: t
secrets:
  - {name: a, value: "abc"}
  - {name: b, kind: binary, value: "YWJj"}
  - {name: c, kind: ascii, value: "616263", encoding: hex}
  - {name: d, kind: explicit, value: "YWJj", encoding: base64}
"#;
    let s = parse_ok(yaml);
    for sec in &s.secrets {
        match &sec.kind {
            SecretKind::Explicit { value } => assert_eq!(value.expose(), b"abc", "{}", sec.name),
            other => panic!("{other:?}"),
        }
    }
    // Binary values that are not UTF-8 survive to_yaml.
    let mut s2 = s.clone();
    s2.secrets[0].kind = SecretKind::Explicit {
        value: SecretValue::new(vec![0, 0xff, 0x80, 10]),
    };
    assert_eq!(parse_ok(&s2.to_yaml()), s2);
}

#[test]
fn unknown_keys_are_errors_with_positions() {
    assert_error(
        "name: t\nservice: []\n",
        "service",
        2,
        1,
        "unknown key `service`",
    );
    assert_error(
        "name: t\nservices:\n  - name: a\n    fspf_path: /x\n",
        "services[0].fspf_path",
        4,
        5,
        "replaced by `volumes`",
    );
    assert_error(
        "name: t\nsecurity:\n  attestation:\n    mdoe: hardware\n",
        "security.attestation.mdoe",
        4,
        5,
        "unknown key",
    );
}

#[test]
fn wrong_types_are_reported() {
    assert_error(
        "name: t\nservices: web\n",
        "services",
        2,
        11,
        "expected a list, found a scalar",
    );
    assert_error(
        "name: t\nservices: [42]\n",
        "services[0]",
        2,
        12,
        "expected a mapping",
    );
    assert_error(
        "name: [a]\n",
        "name",
        1,
        7,
        "expected a string, found a list",
    );
    assert_error("name: t\nversion:\n", "version", 2, 8, "found null");
    assert_error(
        "name: t\nservices:\n  - name: a\n    environment: [A, B]\n",
        "services[0].environment",
        4,
        18,
        "expected a mapping",
    );
    assert_error(
        "name: t\nservices:\n  - name: a\n    environment:\n      EMPTY:\n",
        "services[0].environment.EMPTY",
        5,
        12,
        "found null",
    );
    assert_error(
        "name: t\nsecrets:\n  - {name: a, kind: ascii, size: -3}\n",
        "secrets[0].size",
        3,
        34,
        "non-negative integer",
    );
}

#[test]
fn root_must_be_a_mapping_and_non_empty() {
    for (doc, needle) in [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("- a\n- b\n", "expected a mapping"),
        ("just a string\n", "expected a mapping"),
    ] {
        let e = parse_err(doc);
        assert!(e.to_string().contains(needle), "{doc:?}: {e}");
    }
}

#[test]
fn missing_required_keys() {
    assert_error(
        "version: '1'\n",
        "name",
        1,
        1,
        "missing required key `name`",
    );
    assert_error(
        "name: t\nsecrets:\n  - kind: ascii\n",
        "secrets[0].name",
        3,
        5,
        "missing required key `name`",
    );
    assert_error(
        "name: t\nsecrets:\n  - name: s\n",
        "secrets[0].kind",
        3,
        5,
        "missing required key `kind`",
    );
    assert_error(
        "name: t\nsecrets:\n  - {name: s, kind: x509}\n",
        "secrets[0].issuer",
        3,
        5,
        "missing required key `issuer`",
    );
}

#[test]
fn measurement_lengths_and_hex() {
    let rule = |field: &str, value: &str| {
        format!("name: t\nservices:\n  - name: a\n    attestation:\n      - {field}: {value}\n")
    };
    assert_error(
        &rule("mrenclave", &"ab".repeat(31)),
        "services[0].attestation[0].mrenclave",
        5,
        20,
        "64 hexadecimal digits (32 bytes), found 62",
    );
    assert_error(
        &rule("mrtd", &"ab".repeat(32)),
        "services[0].attestation[0].mrtd",
        5,
        15,
        "96 hexadecimal digits (48 bytes)",
    );
    assert_error(
        &rule("measurement", &"zz".repeat(48)),
        "services[0].attestation[0].measurement",
        5,
        22,
        "hexadecimal digits",
    );
    assert_error(
        &rule("simulation_measurement", "0x1234"),
        "services[0].attestation[0].simulation_measurement",
        5,
        33,
        "64 hexadecimal digits",
    );
}

#[test]
fn attestation_rule_semantics() {
    let h32 = "11".repeat(32);
    let h48 = "22".repeat(48);
    let doc =
        |rule: &str| format!("name: t\nservices:\n  - name: a\n    attestation:\n      - {rule}\n");
    assert_error(
        &doc(&format!("{{mrenclave: {h32}, mrtd: {h48}}}")),
        "services[0].attestation[0]",
        5,
        9,
        "mixes fields of different TEEs",
    );
    assert_error(
        &doc(&format!("{{mrsigner: {h32}}}")),
        "services[0].attestation[0].mrsigner",
        5,
        20,
        "needs `isvprodid`",
    );
    assert_error(
        &doc("{isvprodid: 3}"),
        "services[0].attestation[0]",
        5,
        9,
        "need `mrsigner`",
    );
    assert_error(
        &doc(&format!("{{mrsigner: {h32}, isvprodid: 70000}}")),
        "services[0].attestation[0].isvprodid",
        5,
        97,
        "at most 65535",
    );
    assert_error(&doc("{}"), "services[0].attestation[0]", 5, 9, "empty");
    assert_error(
        &doc(&format!("{{rtmr2: {h48}}}")),
        "services[0].attestation[0]",
        5,
        9,
        "need `mrtd`",
    );
    // mrenclaves alias: one rule per entry.
    let s = parse_ok(&format!(
        "name: t\nservices:\n  - name: a\n    mrenclaves: [{h32}, {}]\n",
        "33".repeat(32)
    ));
    assert_eq!(s.services[0].attestation.len(), 2);
    assert_eq!(s.services[0].attestation[1].mrenclave, Some([0x33; 32]));
    // isvsvn alias.
    let s = parse_ok(&doc(&format!(
        "{{mrsigner: {h32}, isvprodid: 0x10, isvsvn: 7}}"
    )));
    assert_eq!(s.services[0].attestation[0].isvprodid, Some(16));
    assert_eq!(s.services[0].attestation[0].isvsvn_min, Some(7));
}

#[test]
fn duplicate_names_are_errors() {
    let yaml = "name: t\nservices:\n  - name: a\n  - name: b\n  - name: a\nsecrets:\n  - {name: s, kind: ascii}\n  - {name: s, kind: binary}\nvolumes:\n  - name: v\n  - name: v\nimages:\n  - name: i\n  - name: i\n";
    let e = parse_err(yaml);
    assert_eq!(e.len(), 4, "{e}");
    let svc = error_at(&e, "services[2].name");
    assert_eq!((svc.line, svc.column), (5, 11));
    assert!(svc.message.contains("also services[0]"));
    error_at(&e, "secrets[1].name");
    error_at(&e, "volumes[1].name");
    error_at(&e, "images[1].name");
}

#[test]
fn duplicate_yaml_keys_are_errors() {
    let e = parse_err("name: a\nversion: '1'\nname: b\n");
    assert_eq!(e.len(), 1);
    let d = e.iter().next().unwrap();
    assert_eq!((d.line, d.column), (3, 1));
    assert!(d
        .message
        .contains("duplicate key \"name\" (first given on line 1)"));
    // Also inside flow mappings and environment maps.
    let e = parse_err("name: t\nservices: [{name: a, environment: {X: 1, X: 2}}]\n");
    assert!(e.to_string().contains("duplicate key \"X\""), "{e}");
}

#[test]
fn cross_references_are_checked() {
    let yaml = r#"name: t
services:
  - name: a
    image_name: missing_image
secrets:
  - {name: notca, kind: private-key}
  - {name: c1, kind: x509, issuer: notca}
  - {name: c2, kind: x509, issuer: nobody}
  - {name: c3, kind: x509, issuer: c3}
volumes:
  - name: v
images:
  - name: i
    volumes:
      - {name: missing_volume, path: /data}
      - {name: v, path: relative/path}
"#;
    let e = parse_err(yaml);
    let a = error_at(&e, "services[0].image_name");
    assert_eq!((a.line, a.column), (4, 17));
    assert!(a.message.contains("no image named \"missing_image\""));
    for (path, needle) in [
        ("secrets[1].issuer", "of kind private-key, not x509-ca"),
        ("secrets[2].issuer", "no secret named \"nobody\""),
        ("secrets[3].issuer", "its own issuer"),
        ("images[0].volumes[0].name", "no volume named"),
    ] {
        assert_message(&e, path, needle);
    }
    let p = error_at(&e, "images[0].volumes[1].path");
    assert_eq!((p.line, p.column), (16, 25));
    assert!(p.message.contains("absolute"));
    assert_eq!(e.len(), 6, "{e}");
}

#[test]
fn imported_issuer_is_accepted() {
    parse_ok(
        "name: t\nsecrets:\n  - {name: ca, import: {session: other, secret: ca}}\n  - {name: c, kind: x509, issuer: ca}\n",
    );
}

#[test]
fn placeholders_are_checked() {
    let yaml = r#"name: t
services:
  - name: a
    command: ["run", "$$SIGIL::nosuch$$"]
    environment:
      A: $$SIGIL::pw:privatekey$$
      B: $$SIGIL::key:crt$$
      C: $$SIGIL::pw:weird$$
      D: $$SIGIL:pw$$
      E: $$SIGIL::pw
      OK1: $$SIGIL::pw:hex$$ and $$SCONE::key:pem$$ and $$SIGIL::cert:chain$$
      OK2: price $$ 5
secrets:
  - {name: pw, kind: ascii}
  - {name: key, kind: private-key}
  - {name: ca, kind: x509-ca}
  - {name: cert, kind: x509, issuer: ca}
images:
  - name: i
    injection_files:
      - path: /etc/x
        content: "$$SIGIL::ghost:pem$$"
"#;
    let e = parse_err(yaml);
    assert_message(&e, "services[0].command[1]", "unknown secret \"nosuch\"");
    let a = error_at(&e, "services[0].environment.A");
    assert_eq!((a.line, a.column), (6, 10));
    assert!(a
        .message
        .contains("format `privatekey` does not fit secret \"pw\" of kind ascii"));
    for (path, needle) in [
        ("services[0].environment.B", "`crt` does not fit"),
        ("services[0].environment.C", "unknown placeholder format"),
        ("services[0].environment.D", "followed by '::'"),
        ("services[0].environment.E", "not closed"),
        (
            "images[0].injection_files[0].content",
            "unknown secret \"ghost\"",
        ),
    ] {
        assert_message(&e, path, needle);
    }
    assert_eq!(e.len(), 7, "{e}");
}

#[test]
fn field_value_rules() {
    let yaml = r#"name: t
services:
  - name: "bad name!"
    pwd: app
secrets:
  - {name: big, kind: binary, size: 1000000}
  - {name: zero, kind: ascii, size: 0}
  - {name: ca, kind: x509-ca, valid_for: 0s}
  - {name: c, kind: x509, issuer: ca, dns: ["ok.example", "bad_label.example", "-x.example"], valid_for: "10 fortnights"}
images:
  - name: i
    injection_files:
      - {path: /a, content: x, mode: 17777}
      - {path: /b, content: x, mode: "0999"}
      - {path: /a, content: y}
      - {path: /c/../etc/passwd, content: y}
access_policy:
  read: []
  update: [ANY, CREATOR]
  create_sessions: [CREATOR, CREATOR]
"#;
    let e = parse_err(yaml);
    for (path, needle) in [
        ("services[0].name", "may only contain"),
        ("services[0].pwd", "absolute"),
        ("secrets[0].size", "size must be 1..=65536"),
        ("secrets[1].size", "size must be"),
        ("secrets[2].valid_for", "1 second to 100 years"),
        ("secrets[3].dns[1]", "DNS name labels"),
        ("secrets[3].dns[2]", "DNS name labels"),
        ("secrets[3].valid_for", "unknown unit"),
        ("images[0].injection_files[0].mode", "at most 07777"),
        ("images[0].injection_files[1].mode", "octal file mode"),
        (
            "images[0].injection_files[2].path",
            "also used by images[0].injection_files[0]",
        ),
        ("images[0].injection_files[3].path", "'..'"),
        ("access_policy.read", "empty"),
        ("access_policy.update", "ANY already includes"),
        ("access_policy.create_sessions[1]", "duplicate principal"),
    ] {
        let err = error_at(&e, path);
        assert!(err.message.contains(needle), "{path}: {}", err.message);
        assert!(err.line > 0, "{path} has no position");
    }
    assert_eq!(e.len(), 15, "{e}");
}

#[test]
fn secret_key_and_kind_mismatches() {
    let e = parse_err(
        "name: t\nsecrets:\n  - {name: a, kind: x509-ca, size: 3}\n  - {name: b, kind: private-key, value: x}\n  - {name: c, kind: ascii, size: 3, import: {session: o, secret: c}}\n  - {name: d, kind: explicit}\n  - {name: e, kind: magic}\n  - {name: f, import: {session: t, secret: f}}\n  - {name: g, kind: ascii, import: {session: o, secret: g}, export: [x]}\n",
    );
    for (path, needle) in [
        ("secrets[0].size", "does not apply to kind `x509-ca`"),
        ("secrets[1].value", "not a well-formed private key"),
        ("secrets[2].size", "does not apply to an imported secret"),
        ("secrets[3]", "needs a `value`"),
        ("secrets[4].kind", "unknown secret kind \"magic\""),
        ("secrets[5].import.session", "cannot import from itself"),
        ("secrets[6].export", "cannot be exported again"),
    ] {
        assert_message(&e, path, needle);
    }
}

#[test]
fn unknown_secret_kind_does_not_cascade_into_placeholder_errors() {
    let e = parse_err(
        "name: t\nservices:\n  - name: a\n    environment: {X: \"$$SIGIL::s:crt$$\"}\nsecrets:\n  - {name: s, kind: magic}\n",
    );
    assert_eq!(e.len(), 1, "{e}");
    error_at(&e, "secrets[0].kind");
}

#[test]
fn many_errors_reported_together_in_document_order() {
    let yaml = r#"name: "bad//name"
predecessor: 1234
services:
  - name: a
    command: "unclosed 'quote"
    pwd: relative
    surprise: true
secrets:
  - {name: s, kind: ascii, size: lots}
access_policy:
  read: [SOMEONE]
security:
  attestation:
    mode: maybe
    tolerate: [debug-mode, sleepy]
    ignore_advisories: [CVE-2020-1234]
"#;
    let e = parse_err(yaml);
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "name",
            "predecessor",
            "services[0].command",
            "services[0].pwd",
            "services[0].surprise",
            "secrets[0].size",
            "access_policy.read[0]",
            "security.attestation.mode",
            "security.attestation.tolerate[1]",
            "security.attestation.ignore_advisories",
        ],
        "{e}"
    );
    // Lines ascend; Display gives one line per error with line:column.
    let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    let text = e.to_string();
    assert_eq!(text.lines().count(), 10);
    assert!(
        text.lines().next().unwrap().starts_with("1:7: name: "),
        "{text}"
    );
}

#[test]
fn error_count_is_capped() {
    let mut yaml = String::from("name: t\nservices:\n");
    for _ in 0..500 {
        yaml.push_str("  - {name: a, bogus: 1}\n");
    }
    let e = parse_err(&yaml);
    assert_eq!(e.len(), 201);
    assert!(e.iter().last().unwrap().message.contains("more errors"));
}

#[test]
fn scone_spellings_are_accepted() {
    let s = parse_ok(
        "name: t\nsecurity:\n  attestation:\n    tolerate: debug-mode, hyperthreading outdated-tcb\n    ignore_advisories: intel-sa-00615\nsecrets:\n  - name: s\n    kind: ascii\n    export: [other, {session: \"ns/third\"}]\nservices:\n  - name: a\n    command: $$SCONE::s$$ --flag\n",
    );
    assert_eq!(s.security.tolerate.len(), 3);
    assert!(s.security.ignore_advisories.contains("INTEL-SA-00615"));
    assert_eq!(s.secrets[0].export.len(), 2);
    assert_eq!(s.services[0].command, ["$$SCONE::s$$", "--flag"]);
}

#[test]
fn session_names() {
    for ok in ["a", "A-b_c.d~e", "ns/sub/name", &"x".repeat(128)] {
        let n: SessionName = ok.parse().unwrap();
        assert_eq!(n.as_str(), ok);
    }
    assert_eq!(
        "ns/sub/name".parse::<SessionName>().unwrap().namespace(),
        Some("ns/sub")
    );
    assert_eq!("name".parse::<SessionName>().unwrap().namespace(), None);
    for bad in [
        "",
        "/a",
        "a/",
        "a//b",
        "a b",
        "a/../b",
        ".",
        "ä",
        &"x".repeat(129),
        &format!("{}/{}", "a".repeat(128), "b".repeat(128)),
    ] {
        assert!(bad.parse::<SessionName>().is_err(), "{bad:?}");
    }
    assert_error("name: a/../b\n", "name", 1, 7, "'.' and '..'");
}

#[test]
fn session_hash_text_and_serde() {
    let text = "AB".repeat(32);
    let h: SessionHash = text.parse().unwrap();
    assert_eq!(h.to_string(), "ab".repeat(32));
    assert!("ab".repeat(31).parse::<SessionHash>().is_err());
    assert!("zz".repeat(32).parse::<SessionHash>().is_err());
    let json = serde_json::to_string(&h).unwrap();
    assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
    assert_eq!(serde_json::from_str::<SessionHash>(&json).unwrap(), h);
    assert!(serde_json::from_str::<SessionHash>("\"abc\"").is_err());
    let s = parse_ok(&format!("name: t\npredecessor: {}\n", "AB".repeat(32)));
    assert_eq!(s.predecessor, Some(h));
}

#[test]
fn predecessor_changes_the_hash() {
    let a = parse_ok(MINIMAL);
    let b = parse_ok(&format!("{MINIMAL}predecessor: {}\n", a.hash()));
    assert_ne!(a.hash(), b.hash());
    let c = parse_ok(&format!("{MINIMAL}predecessor: {}\n", b.hash()));
    assert_ne!(b.hash(), c.hash());
}

#[test]
fn hash_ignores_formatting_of_the_example() {
    let base = parse_ok(EXAMPLE).hash();
    // Comments stripped, key order of top-level sections reversed, list
    // order of services changed, command as list.
    let mut sections: Vec<String> = Vec::new();
    for line in EXAMPLE.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if !line.starts_with(' ') && !line.is_empty() {
            sections.push(String::new());
        }
        if let Some(last) = sections.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    sections.reverse();
    let reordered = sections.concat().replace(
        "command: python3 /app/aggregator.py --config /etc/aggregator/config.yaml --port 8443",
        "command: ['python3', \"/app/aggregator.py\", --config, /etc/aggregator/config.yaml, --port, '8443']",
    );
    assert_ne!(reordered, EXAMPLE);
    assert_eq!(parse_ok(&reordered).hash(), base);
    // A semantic change does change it.
    let changed = EXAMPLE.replace("size: 24", "size: 25");
    assert_ne!(parse_ok(&changed).hash(), base);
}

#[test]
fn hostile_yaml_features_are_refused() {
    // Billion laughs: refused without expansion.
    let mut laughs = String::from("name: t\nversion: &a0 lol\n");
    let mut yaml = String::new();
    for i in 1..40 {
        yaml.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}]\n",
            p = i - 1
        ));
    }
    laughs.push_str(&yaml);
    let e = parse_err(&laughs);
    assert!(e
        .iter()
        .any(|e| e.message.contains("anchors and aliases are not supported")));

    let e = parse_err("name: &n t\n");
    assert_message(&e, "name", "anchors");
    let e = parse_err("name: !!str t\n");
    assert!(e.to_string().contains("tags are not supported"));
    let e = parse_err("name: !custom t\n");
    assert!(e.to_string().contains("tags are not supported"));
    let e = parse_err("name: t\n---\nname: u\n");
    assert!(e.to_string().contains("only one YAML document"));
    let e = parse_err("name: t\n? [complex]\n: key\n");
    assert!(e.to_string().contains("keys must be plain strings"), "{e}");
}

#[test]
fn size_and_depth_limits() {
    let big = format!("name: t\nversion: \"{}\"\n", "x".repeat(MAX_DOCUMENT_BYTES));
    let e = parse_err(&big);
    assert!(e.to_string().contains("larger than the limit"));

    let deep = format!("name: t\nversion: {}{}\n", "[".repeat(100), "]".repeat(100));
    let e = parse_err(&deep);
    assert!(e.to_string().contains("nesting is deeper than 32"), "{e}");

    let very_deep = "[".repeat(200_000);
    assert!(Session::parse(&very_deep).is_err());

    let mut block_deep = String::from("name: t\nservices:\n");
    for i in 0..100 {
        block_deep.push_str(&" ".repeat(2 * i + 2));
        block_deep.push_str("- \n");
    }
    assert!(parse_err(&block_deep).to_string().contains("nesting"));

    let many = format!("name: t\nversion: [{}]\n", vec!["1"; MAX_NODES].join(","));
    let e = parse_err(&many);
    assert!(e.to_string().contains("more than 100000 values"), "{e}");

    let long_value = format!(
        "name: t\nimages:\n  - name: i\n    injection_files:\n      - path: /x\n        content: \"{}\"\n",
        "a".repeat(MAX_INJECTION_CONTENT + 1)
    );
    assert!(error_at(
        &parse_err(&long_value),
        "images[0].injection_files[0].content"
    )
    .message
    .contains("512 KiB"));
}

#[test]
fn syntax_errors_have_positions() {
    for (doc, line) in [
        ("name: t\nservices: [a, b\n", 3),
        ("name: \"bad \\xZZ escape\"\n", 1),
        ("name: t\n  bad: indentation\n", 2),
        ("name: 'unterminated\n", 1),
        ("name: t\nversion: \"\\uD800\"\n", 2),
    ] {
        let e = parse_err(doc);
        let first = e.iter().next().unwrap();
        assert!(first.message.contains("YAML syntax error"), "{doc:?}: {e}");
        assert_eq!(first.line, line, "{doc:?}: {e}");
        assert!(first.column >= 1);
    }
}

#[test]
fn nul_and_control_characters_in_values() {
    let e = parse_err("name: t\nservices:\n  - name: a\n    environment: {X: \"a\\0b\"}\n");
    assert_message(&e, "services[0].environment.X", "NUL");
    let e = parse_err("name: t\nversion: \"\\x07bell\"\n");
    assert_message(&e, "version", "printable");
}

#[test]
fn validate_checks_sessions_built_in_code() {
    let mut s = Session::new("gen".parse().unwrap());
    s.services.push(Service {
        name: "svc".into(),
        command: vec!["/bin/app".into(), "$$SIGIL::missing$$".into()],
        image_name: Some("img".into()),
        attestation: vec![AttestationRule {
            simulation_measurement: Some([7; 32]),
            ..Default::default()
        }],
        ..Default::default()
    });
    let e = s.validate().unwrap_err();
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["services[0].command[1]", "services[0].image_name"]);
    assert!(e.iter().all(|e| e.line == 0));

    s.images.push(Image {
        name: "img".into(),
        ..Default::default()
    });
    s.secrets.push(Secret {
        name: "missing".into(),
        kind: SecretKind::Binary { size: 16 },
        export: vec![],
        import: None,
    });
    s.validate().unwrap();
    // A generated session survives the YAML round trip.
    let back = parse_ok(&s.to_yaml());
    assert_eq!(back, s);
    assert_eq!(back.hash(), s.hash());
}

#[test]
fn environment_keys_with_odd_characters_get_quoted_paths() {
    let e = parse_err(
        "name: t\nservices:\n  - name: a\n    environment: {\"a.b\": \"$$SIGIL::x$$\"}\n",
    );
    error_at(&e, "services[0].environment[\"a.b\"]");
    let e = parse_err("name: t\nservices:\n  - name: a\n    environment: {\"A=B\": v}\n");
    let err = error_at(&e, "services[0].environment[\"A=B\"]");
    assert!(err.message.contains("without '='"));
    assert_eq!((err.line, err.column), (4, 19));
}

#[test]
fn documented_worked_example_hash() {
    // docs/session-language.md, "Worked example": the hash there was checked
    // with `printf 'sigil-session-canonical-v1\n%s' "$JSON" | sha256sum`.
    let s = parse_ok(include_str!("data/doc-example.yaml"));
    assert_eq!(
        s.hash().to_string(),
        "916d23dbcfadb12bff08420710cfd25766a0b335bbeb26a625f7b0cbd8efa34f"
    );
    assert!(String::from_utf8(s.canonical_form())
        .unwrap()
        .starts_with(r#"{"access_policy":{"create_sessions":["CREATOR"],"read":["CREATOR"],"update":["CREATOR"]},"images":[],"name":"demo/web""#));
    let reformatted = r#"secrets: [{size: 16, kind: binary, name: token}]
services:
- attestation: [{mrenclave: "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"}]
  environment: {TOKEN: "$$SIGIL::token:hex$$"}
  command: [nginx, -g, 'daemon off;']
  name: web
access_policy: {read: [CREATOR], update: [CREATOR], create_sessions: [CREATOR]}
name: "demo/web"
"#;
    assert_eq!(parse_ok(reformatted).hash(), s.hash());
}

#[test]
fn yaml_level_errors_carry_field_paths() {
    let e = parse_err("name: t\nservices:\n  - name: a\n    environment: {A: 1, \"odd key\": 2, A: 3}\n    command: &c [x]\n");
    let dup = error_at(&e, "services[0].environment.A");
    assert_eq!((dup.line, dup.column), (4, 39));
    assert!(dup.message.contains("duplicate key \"A\""));
    let anchor = error_at(&e, "services[0].command");
    assert!(anchor.message.contains("anchors"));
    assert_eq!(e.len(), 2, "{e}");
}

#[test]
fn principals_parse_from_text() {
    let fp = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";
    let colons: String = fp
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!("creator".parse::<Principal>().unwrap(), Principal::Creator);
    assert_eq!("ANY".parse::<Principal>().unwrap(), Principal::Any);
    assert_eq!("None".parse::<Principal>().unwrap(), Principal::Nobody);
    let p: Principal = fp.to_uppercase().parse().unwrap();
    assert_eq!(p.to_string(), fp);
    assert_eq!(colons.parse::<Principal>().unwrap(), p);
    for bad in [
        "",
        "OWNER",
        &fp[..62],
        &format!("{fp}00"),
        &colons.replace(':', "-"),
    ] {
        assert!(bad.parse::<Principal>().is_err(), "{bad}");
    }
}

#[test]
fn durations_are_written_readably_and_read_back() {
    let s = parse_ok(
        "name: t\nsecrets:\n  - {name: ca, kind: x509-ca, valid_for: 1y 10d}\n  - {name: c, kind: x509, issuer: ca, valid_for: 36h}\n  - {name: d, kind: x509, issuer: ca, valid_for: 3601}\n",
    );
    let yaml = s.to_yaml();
    assert!(yaml.contains("valid_for: \"375d\""), "{yaml}");
    assert!(yaml.contains("valid_for: \"36h\""), "{yaml}");
    assert!(yaml.contains("valid_for: \"3601s\""), "{yaml}");
    assert_eq!(parse_ok(&yaml), s);
}

#[test]
fn placeholders_in_pwd_are_checked() {
    let e = parse_err("name: t\nservices:\n  - {name: a, pwd: \"/data/$$SIGIL::nope$$\"}\n");
    assert_message(&e, "services[0].pwd", "unknown secret");
}

#[test]
fn a_broken_item_does_not_shift_the_paths_of_later_items() {
    let e = parse_err(
        "name: t\nservices:\n  - 42\n  - {name: b, image_name: nope}\nsecrets:\n  - [x]\n  - {name: c, kind: x509, issuer: nobody}\n    # comment\n  - name: e\n    kind: ascii\n    export: [7.5.5/.., ok]\n",
    );
    error_at(&e, "services[0]");
    let img = error_at(&e, "services[1].image_name");
    assert_eq!((img.line, img.column), (4, 27));
    error_at(&e, "secrets[0]");
    let iss = error_at(&e, "secrets[1].issuer");
    assert_eq!(iss.line, 7);
    assert_message(&e, "secrets[2].export[0]", "'.' and '..'");
    assert_eq!(e.len(), 5, "{e}");
}

#[test]
fn to_yaml_escapes_every_awkward_character() {
    let mut awkward: String = (1u8..0x80).map(char::from).collect();
    awkward.push_str("\u{85}\u{a0}\u{2028}\u{2029}\u{feff}é😀 trailing space ");
    let mut s = Session::new("t".parse().unwrap());
    let mut environment = std::collections::BTreeMap::new();
    environment.insert("ALL".to_string(), awkward.clone());
    environment.insert("odd key: with # and \"quotes\"".to_string(), "x".into());
    environment.insert(
        "MULTI".to_string(),
        "line one\n  indented # not a comment\n\n--- not a document\n".into(),
    );
    environment.insert("LEADING".to_string(), "  leading\nspace\n\n\n".into());
    s.services.push(Service {
        name: "a".into(),
        command: vec![awkward.clone(), String::new(), "'".into(), "\"".into()],
        environment,
        ..Default::default()
    });
    s.images.push(Image {
        name: "i".into(),
        injection_files: vec![InjectionFile {
            path: "/f".into(),
            content: "#!/bin/sh\nexec app \"$@\"\n".into(),
            mode: 0o755,
        }],
        ..Default::default()
    });
    let yaml = s.to_yaml();
    let back = parse_ok(&yaml);
    assert_eq!(back, s, "{yaml}");
    // Multi-line text is written readably.
    assert!(yaml.contains("content: |\n"), "{yaml}");
}

#[test]
fn scone_style_imports_declare_their_kind() {
    // As SCONE sessions write them: `kind` next to `import`.
    let yaml = r#"name: exec
version: "0.3.10"
services:
  - name: executor
    command: python /app/execute.py
    environment:
      DATASET_KEY: "$$SCONE::DATASET_KEY$$"
    mrenclaves: [0000000000000000000000000000000000000000000000000000000000000001]
secrets:
  - name: DATASET_KEY
    kind: ascii
    import:
      session: dnat-dataset-abc
      secret: DATASET_KEY
  - name: PEER_CA
    kind: x509-ca
    import: {session: pki, secret: ca}
  - name: peer
    kind: x509
    issuer: PEER_CA
images:
  - name: i
    injection_files:
      - {path: /tls/peer.crt, content: "$$SCONE::peer.crt$$"}
      - {path: /tls/peer.key, content: "$$SCONE::peer.key$$"}
      - {path: /tls/ca.crt, content: "$$SCONE::PEER_CA:crt$$"}
"#;
    let s = parse_ok(yaml);
    let imp = s.secret("DATASET_KEY").unwrap().import.clone().unwrap();
    assert_eq!(imp.kind, Some(ImportKind::Ascii));
    assert!(ImportKind::Ascii.matches(&SecretKind::Ascii { size: 3 }));
    assert!(ImportKind::Ascii.matches(&SecretKind::Explicit {
        value: SecretValue::new(b"x".to_vec())
    }));
    assert!(!ImportKind::Ascii.matches(&SecretKind::Binary { size: 3 }));
    assert!(!ImportKind::X509.matches(&SecretKind::X509Ca {
        common_name: None,
        valid_for: None,
        algorithm: KeyAlgorithm::EcdsaP256
    }));
    // The declared kind is part of the model, the YAML and the hash.
    assert_eq!(parse_ok(&s.to_yaml()), s);
    let undeclared = yaml.replacen("    kind: ascii\n    import:", "    import:", 1);
    assert_ne!(parse_ok(&undeclared).hash(), s.hash());

    // Placeholders and issuers are checked against the declared kind.
    let bad = yaml
        .replace(
            "$$SCONE::DATASET_KEY$$",
            "$$SCONE::DATASET_KEY:privatekey$$",
        )
        .replace("kind: x509-ca\n    import", "kind: private-key\n    import");
    let e = parse_err(&bad);
    for (path, needle) in [
        (
            "services[0].environment.DATASET_KEY",
            "does not fit secret \"DATASET_KEY\" of kind ascii",
        ),
        ("secrets[2].issuer", "of kind private-key, not x509-ca"),
        (
            "images[0].injection_files[2].content",
            "`crt` does not fit secret \"PEER_CA\" of kind private-key",
        ),
    ] {
        assert_message(&e, path, needle);
    }
    assert_eq!(e.len(), 3, "{e}");
}

#[test]
fn scone_session_moves_over_with_the_documented_edits() {
    let original = include_str!("data/scone-original.yaml");
    let e = parse_err(original);
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "security.attestation.ignore_advisories",
            "services[0].fspf_path",
            "services[0].fspf_key",
            "services[0].fspf_tag",
        ],
        "{e}"
    );
    assert!(e
        .iter()
        .skip(1)
        .all(|e| e.message.contains("replaced by `volumes`")));
    // The edits: drop the fspf_* lines (the volume moves to `volumes`), list
    // advisories instead of "*".
    let edited: String = original
        .lines()
        .filter(|l| !l.trim_start().starts_with("fspf_"))
        .map(|l| {
            if l.contains("ignore_advisories") {
                "    ignore_advisories: [INTEL-SA-00615]".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let s = parse_ok(&edited);
    assert_eq!(s.services[0].attestation.len(), 1);
    let key = s.image("predictor_image").unwrap();
    assert_eq!(key.injection_files.len(), 3);
    assert_eq!(
        s.secret("db_password")
            .unwrap()
            .import
            .as_ref()
            .unwrap()
            .kind,
        Some(ImportKind::Ascii)
    );
}

/// A `private-key` secret whose `value` is given in the session.
fn key_session(value_yaml: &str, extra: &str) -> String {
    let mut s = String::from("name: t\nsecrets:\n  - name: k\n    kind: private-key\n");
    s.push_str(extra);
    s.push_str("    value: |\n");
    for l in value_yaml.lines() {
        s.push_str("      ");
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn key_of(s: &Session) -> (KeyAlgorithm, Vec<u8>) {
    match &s.secret("k").unwrap().kind {
        SecretKind::PrivateKey {
            algorithm,
            value: Some(v),
        } => (*algorithm, v.expose().to_vec()),
        other => panic!("not a given private key: {other:?}"),
    }
}

const RSA2048_PKCS8: &str = include_str!("data/keys/rsa2048-pkcs8.pem");
const RSA2048_PKCS1: &str = include_str!("data/keys/rsa2048-pkcs1.pem");
const P384_PKCS8: &str = include_str!("data/keys/p384-pkcs8.pem");
const P384_SEC1: &str = include_str!("data/keys/p384-sec1.pem");
const ED25519_PKCS8: &str = include_str!("data/keys/ed25519-pkcs8.pem");
const RSA1024_PKCS8: &str = include_str!("data/keys/rsa1024-pkcs8.pem");

#[test]
fn private_key_values_are_normalised_to_pkcs8_and_typed_by_ring() {
    let rsa8 = parse_ok(&key_session(RSA2048_PKCS8, ""));
    let rsa1 = parse_ok(&key_session(RSA2048_PKCS1, ""));
    // Algorithm taken from the key when `algorithm` is omitted.
    assert_eq!(key_of(&rsa8).0, KeyAlgorithm::Rsa2048);
    // PKCS#1 is wrapped into the same PKCS#8 bytes openssl wrote.
    assert_eq!(key_of(&rsa1), key_of(&rsa8));
    assert_eq!(rsa1.hash(), rsa8.hash());
    let p8 = parse_ok(&key_session(P384_PKCS8, "    algorithm: P-384\n"));
    let sec1 = parse_ok(&key_session(P384_SEC1, ""));
    assert_eq!(key_of(&p8).0, KeyAlgorithm::EcdsaP384);
    // openssl's SEC1 carries the curve parameters, its PKCS#8 does not: the
    // same key, two encodings.
    assert_eq!(key_of(&sec1).0, KeyAlgorithm::EcdsaP384);
    let ed = parse_ok(&key_session(ED25519_PKCS8, "    algorithm: ed25519\n"));
    assert_eq!(key_of(&ed).0, KeyAlgorithm::Ed25519);

    // The value is part of the hash; a generated key of the same algorithm
    // hashes differently; writing and reading back keeps the key and hash.
    let generated =
        parse_ok("name: t\nsecrets:\n  - {name: k, kind: private-key, algorithm: rsa-2048}\n");
    assert_ne!(generated.hash(), rsa8.hash());
    for s in [&rsa8, &p8, &ed] {
        let back = parse_ok(&s.to_yaml());
        assert_eq!(key_of(&back), key_of(s));
        assert_eq!(back.hash(), s.hash());
        let red = s.to_yaml_redacted();
        assert!(red.contains("<redacted>"), "{red}");
        assert!(!red.contains(&hex::encode(&key_of(s).1[..16])), "{red}");
        assert!(!format!("{s:?}").contains(&hex::encode(&key_of(s).1[..16])));
    }
    // DER given as base64 works too.
    let der_b64: String = RSA2048_PKCS8
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let b64 = parse_ok(&format!(
        "name: t\nsecrets:\n  - {{name: k, kind: private-key, encoding: base64, value: \"{der_b64}\"}}\n"
    ));
    assert_eq!(key_of(&b64), key_of(&rsa8));
}

#[test]
fn hostile_private_key_values_are_refused_with_one_clear_line() {
    let cases: Vec<(String, &str, &str)> = vec![
        // Declared algorithm does not match the key.
        (
            key_session(RSA2048_PKCS8, "    algorithm: ecdsa-p256\n"),
            "secrets[0].algorithm",
            "the key in `value` is rsa-2048, not ecdsa-p256",
        ),
        (
            key_session(P384_PKCS8, "    algorithm: rsa-3072\n"),
            "secrets[0].algorithm",
            "is ecdsa-p384, not rsa-3072",
        ),
        (
            key_session(RSA1024_PKCS8, ""),
            "secrets[0].value",
            "RSA key rejected by ring: too small",
        ),
        // Truncated base64 body.
        (
            key_session(&RSA2048_PKCS8[..RSA2048_PKCS8.len() / 2], ""),
            "secrets[0].value",
            "no `-----END PRIVATE KEY-----` line",
        ),
        // A byte of the key flipped inside the base64 body.
        (
            key_session(&RSA2048_PKCS8.replacen("MII", "MIJ", 1), ""),
            "secrets[0].value",
            "private key",
        ),
        (
            key_session("not a key at all", ""),
            "secrets[0].value",
            "not a well-formed private key",
        ),
        (
            key_session(
                &RSA2048_PKCS8.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
                "",
            ),
            "secrets[0].value",
            "encrypted private keys are not supported",
        ),
        (
            key_session(&P384_SEC1.replace("EC PRIVATE KEY", "RSA PRIVATE KEY"), ""),
            "secrets[0].value",
            "RSA key rejected by ring",
        ),
        (
            "name: t\nsecrets:\n  - {name: k, kind: private-key, encoding: hex, value: zz}\n"
                .into(),
            "secrets[0].value",
            "not valid hex",
        ),
    ];
    for (yaml, path, needle) in cases {
        let e = parse_err(&yaml);
        let err = error_at(&e, path);
        assert!(
            err.message.contains(needle),
            "{path}: {:?} lacks {needle:?}",
            err.message
        );
        assert!(!err.message.contains('\n'));
        // Never echoes key material.
        assert!(!err.message.contains("MII"), "{}", err.message);
    }
}

#[test]
fn sessions_built_in_code_check_given_keys_too() {
    let mut s = parse_ok(&key_session(ED25519_PKCS8, ""));
    if let SecretKind::PrivateKey { algorithm, .. } = &mut s.secrets[0].kind {
        *algorithm = KeyAlgorithm::EcdsaP256;
    }
    let e = s.validate().unwrap_err();
    assert!(e.to_string().contains("is ed25519, not ecdsa-p256"), "{e}");
    s.secrets[0].kind = SecretKind::PrivateKey {
        algorithm: KeyAlgorithm::Ed25519,
        value: Some(SecretValue::new(b"garbage".to_vec())),
    };
    let e = s.validate().unwrap_err();
    assert!(
        e.to_string().contains("not a well-formed private key"),
        "{e}"
    );
}

const SNP_MIN_TCB: &str = "name: t\nsecurity:\n  attestation:\n    snp:\n      min_tcb:\n        bootloader: 3\n        tee: 0\n        snp: 0x17\n        microcode: 115\n";

#[test]
fn snp_min_tcb_parses_hashes_and_round_trips() {
    let s = parse_ok(SNP_MIN_TCB);
    assert_eq!(
        s.security.snp_min_tcb,
        Some(SnpMinTcb {
            bootloader: 3,
            tee: 0,
            snp: 23,
            microcode: 115,
            fmc: None
        })
    );
    // In the canonical form only when set, so older hashes are unchanged.
    let canon = String::from_utf8(s.canonical_form()).unwrap();
    assert!(
        canon.contains(r#""snp_min_tcb":{"bootloader":3,"microcode":115,"snp":23,"tee":0}"#),
        "{canon}"
    );
    let none = parse_ok("name: t\n");
    assert!(!String::from_utf8(none.canonical_form())
        .unwrap()
        .contains("snp_min_tcb"));
    assert_ne!(s.hash(), none.hash());
    // Every component changes the hash; so does adding an FMC minimum.
    let mut seen = std::collections::HashSet::new();
    seen.insert(s.hash());
    for k in ["bootloader: 3", "tee: 0", "snp: 0x17", "microcode: 115"] {
        let bumped = SNP_MIN_TCB.replace(k, &format!("{}1", &k[..k.len() - 1]));
        assert!(seen.insert(parse_ok(&bumped).hash()), "{k}");
    }
    let fmc = parse_ok(&format!("{SNP_MIN_TCB}        fmc: 1\n"));
    assert_eq!(fmc.security.snp_min_tcb.unwrap().fmc, Some(1));
    assert!(seen.insert(fmc.hash()));
    // to_yaml writes it back.
    for s in [&s, &fmc] {
        let back = parse_ok(&s.to_yaml());
        assert_eq!(&back, s);
        assert_eq!(back.hash(), s.hash());
    }
}

#[test]
fn snp_min_tcb_errors_name_the_field() {
    // A forgotten component is an error, not a silent minimum of 0.
    let no_ucode = SNP_MIN_TCB.replace("        microcode: 115\n", "");
    assert_error(
        &no_ucode,
        "security.attestation.snp.min_tcb.microcode",
        6,
        9,
        "missing required key `microcode`",
    );
    assert_error(
        &SNP_MIN_TCB.replace("tee: 0", "tee: 256"),
        "security.attestation.snp.min_tcb.tee",
        7,
        14,
        "at most 255",
    );
    assert_error(
        &SNP_MIN_TCB.replace("tee: 0", "tee: -1"),
        "security.attestation.snp.min_tcb.tee",
        7,
        14,
        "non-negative integer",
    );
    assert_error(
        &SNP_MIN_TCB.replace("tee: 0", "ucode: 1"),
        "security.attestation.snp.min_tcb.ucode",
        7,
        9,
        "unknown key `ucode`",
    );
    assert_error(
        "name: t\nsecurity:\n  attestation:\n    snp:\n      minimum_tcb: {}\n",
        "security.attestation.snp.minimum_tcb",
        5,
        7,
        "expected one of: min_tcb",
    );
    assert_error(
        "name: t\nsecurity:\n  attestation:\n    snp:\n      min_tcb: 7\n",
        "security.attestation.snp.min_tcb",
        5,
        16,
        "expected a mapping",
    );
}
