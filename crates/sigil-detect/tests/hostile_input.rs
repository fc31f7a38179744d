//! Property tests: every parser of outside input and the CPUID decoder take
//! arbitrary input without panicking, and what they return stays within
//! their documented limits.

use proptest::prelude::*;
use sigil_detect::container::{parse_device_rules, parse_resources};
use sigil_detect::cpuid::{decode, FakeCpuid};
use sigil_detect::kernel::{parse_cpuinfo_flags, parse_version, TEE_FLAGS};
use sigil_detect::stack::parse_qcnl;

fn text() -> impl Strategy<Value = String> {
    // Mix raw bytes with the separators the parsers look for.
    prop::collection::vec(
        prop_oneof![
            any::<u8>().prop_map(|b| char::from(b).to_string()),
            Just(":".to_string()),
            Just("\n".to_string()),
            Just("flags".to_string()),
            Just("\"pccs_url\"".to_string()),
            Just("=".to_string()),
            Just(",".to_string()),
            Just("c 10:*".to_string()),
            Just("sgx".to_string()),
        ],
        0..200,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn cpuinfo_flags_are_only_known_tee_flags(s in text()) {
        let (_, flags) = parse_cpuinfo_flags(&s);
        prop_assert!(flags.len() <= TEE_FLAGS.len());
        for f in &flags {
            prop_assert!(TEE_FLAGS.contains(&f.as_str()));
        }
        let _ = parse_version(&s);
    }

    #[test]
    fn qcnl_urls_are_valid_or_absent(s in text()) {
        let q = parse_qcnl(&s);
        if let Some(u) = q.url {
            prop_assert!(u.starts_with("https://") || u.starts_with("http://"));
            prop_assert!(u.len() <= 2048);
            prop_assert!(u.chars().all(|c| c.is_ascii_graphic()));
        }
    }

    #[test]
    fn resources_and_rules_are_bounded(s in text()) {
        if let Some(m) = parse_resources(&s) {
            prop_assert!(m.len() <= 32);
        }
        let rules = parse_device_rules(&s);
        prop_assert!(rules.len() <= 1024);
        for r in rules {
            prop_assert!(matches!(r.kind, 'a' | 'b' | 'c'));
            prop_assert!(!r.access.is_empty());
        }
    }

    #[test]
    fn any_cpuid_answers_decode(
        max_basic in any::<u32>(),
        max_ext in any::<u32>(),
        l7 in any::<[u32; 4]>(),
        l12 in prop::collection::vec(any::<[u32; 4]>(), 0..8),
        sev in any::<[u32; 4]>(),
    ) {
        let mut c = FakeCpuid::new().with_vendor("AuthenticAMD", max_basic, max_ext);
        c.set(7, 0, l7[0], l7[1], l7[2], l7[3]);
        for (i, r) in l12.iter().enumerate() {
            c.set(0x12, i as u32, r[0], r[1], r[2], r[3]);
        }
        c.set(0x8000_001F, 0, sev[0], sev[1], sev[2], sev[3]);
        let r = decode(&c);
        prop_assert!(r.sgx.epc_sections.len() <= 64);
        for s in &r.sgx.epc_sections {
            prop_assert!(s.size < (1u64 << 52) && s.base < (1u64 << 52));
            prop_assert_eq!(s.size & 0xFFF, 0);
        }
        prop_assert_eq!(r.sgx.supported, max_basic >= 7 && l7[1] & 4 != 0);
        if !r.sgx.supported {
            prop_assert!(r.sgx.epc_sections.is_empty());
        }
        prop_assert!(r.sev.c_bit < 64);
    }
}
