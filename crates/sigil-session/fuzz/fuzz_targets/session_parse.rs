//! Fuzzes the session parser: it must never panic or hang; every error must
//! say where it is; whatever it accepts must validate, and survive a
//! `to_yaml` / parse round trip with the same model and hash.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_session::Session;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Session::parse(text) {
        Ok(s) => {
            s.validate().expect("accepted session validates");
            let yaml = s.to_yaml();
            let again = Session::parse(&yaml).expect("to_yaml output parses");
            assert_eq!(again, s);
            assert_eq!(again.hash(), s.hash());
            let _ = s.to_yaml_redacted();
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            assert!(errors.len() <= 201);
            for e in &errors {
                assert!(!e.message.is_empty());
            }
            let _ = errors.to_string();
        }
    }
});
