//! CPUID access through a small trait, and the exact decoding of the leaves
//! that matter for TEEs (Intel SDM Vol. 2A "CPUID", Vol. 3D ch. 36 for SGX;
//! AMD APM Vol. 3 appendix E for SEV; Intel TDX module spec for leaf 0x21).
//!
//! The decoding takes raw register values so that tests can feed the answers
//! of a real SGX2 host, a TDX guest or an AMD host without having one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The four registers returned by one `CPUID` execution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuidRegs {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// A source of CPUID answers.
///
/// `None` means "this CPUID cannot be executed here" (non-x86_64 target),
/// which the report shows as "unknown" rather than "no".
pub trait Cpuid: Send + Sync {
    /// Executes CPUID with `leaf` in EAX and `subleaf` in ECX.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Option<CpuidRegs>;
}

/// The real CPUID instruction of the CPU this process runs on.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeCpuid;

impl Cpuid for NativeCpuid {
    #[cfg(target_arch = "x86_64")]
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Option<CpuidRegs> {
        // CPUID exists on every x86_64 CPU; leaves above the maximum return
        // the data of the highest basic leaf, which the decoder guards
        // against by checking the maximum leaf first.
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        Some(CpuidRegs {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        })
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn cpuid(&self, _leaf: u32, _subleaf: u32) -> Option<CpuidRegs> {
        None
    }
}

/// Fixed CPUID answers, keyed by (leaf, sub-leaf); unknown leaves answer
/// all-zero registers like a real CPU answering a reserved leaf.
///
/// This is the documented test interface: build it from the raw register
/// values of the machine you want to simulate.
#[derive(Clone, Debug, Default)]
pub struct FakeCpuid {
    answers: BTreeMap<(u32, u32), CpuidRegs>,
}

impl FakeCpuid {
    /// An empty set of answers (every leaf reads as zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the answer for (`leaf`, `subleaf`).
    pub fn set(&mut self, leaf: u32, subleaf: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) {
        self.answers
            .insert((leaf, subleaf), CpuidRegs { eax, ebx, ecx, edx });
    }

    /// Builder form of [`FakeCpuid::set`].
    pub fn with(mut self, leaf: u32, subleaf: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> Self {
        self.set(leaf, subleaf, eax, ebx, ecx, edx);
        self
    }

    /// Sets leaf 0 (maximum basic leaf and the 12-byte vendor string) and
    /// leaf 0x8000_0000 (maximum extended leaf).
    pub fn with_vendor(mut self, vendor: &str, max_basic: u32, max_ext: u32) -> Self {
        let mut b = [0u8; 12];
        for (d, s) in b.iter_mut().zip(vendor.bytes()) {
            *d = s;
        }
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        // The vendor string is EBX, EDX, ECX in that order.
        self.set(0, 0, max_basic, word(0), word(8), word(4));
        self.set(0x8000_0000, 0, max_ext, 0, 0, 0);
        self
    }
}

/// A CPUID source that cannot execute CPUID (as on non-x86_64 targets).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCpuid;

impl Cpuid for NoCpuid {
    fn cpuid(&self, _leaf: u32, _subleaf: u32) -> Option<CpuidRegs> {
        None
    }
}

impl Cpuid for FakeCpuid {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> Option<CpuidRegs> {
        Some(
            self.answers
                .get(&(leaf, subleaf))
                .copied()
                .unwrap_or_default(),
        )
    }
}

/// One EPC (Enclave Page Cache) section from CPUID leaf 0x12 sub-leaf ≥ 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpcSection {
    /// Sub-leaf that described it.
    pub subleaf: u32,
    /// Physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// EPC section property, ECX\[3:0\]: 1 = confidentiality, integrity and
    /// replay protection; other values are reserved or newer.
    pub property: u8,
}

/// SGX capabilities from leaves 7 and 0x12.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgxCpu {
    /// CPUID.(EAX=7,ECX=0):EBX\[2\].
    pub supported: bool,
    /// Flexible Launch Control, CPUID.(EAX=7,ECX=0):ECX\[30\] (SGX_LC).
    pub flc: bool,
    /// CPUID.(EAX=12H,ECX=0):EAX\[0\].
    pub sgx1: bool,
    /// CPUID.(EAX=12H,ECX=0):EAX\[1\].
    pub sgx2: bool,
    /// Maximum enclave size outside 64-bit mode, 2^EDX\[7:0\] bytes.
    pub max_enclave_size_32: Option<u64>,
    /// Maximum enclave size in 64-bit mode, 2^EDX\[15:8\] bytes.
    pub max_enclave_size_64: Option<u64>,
    /// EPC sections in sub-leaf order.
    pub epc_sections: Vec<EpcSection>,
}

impl SgxCpu {
    /// Total EPC size in bytes (saturating).
    pub fn epc_total(&self) -> u64 {
        self.epc_sections
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.size))
    }
}

/// AMD memory-encryption capabilities from leaf 0x8000_001F.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SevCpu {
    /// EAX\[1\].
    pub sev: bool,
    /// EAX\[3\].
    pub sev_es: bool,
    /// EAX\[4\].
    pub sev_snp: bool,
    /// Position of the C-bit in page-table entries, EBX\[5:0\].
    pub c_bit: u8,
    /// Number of encrypted guests supported simultaneously, ECX.
    pub max_guests: u32,
}

/// Everything Sigil decodes from CPUID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuReport {
    /// False when CPUID could not be executed (non-x86_64): every other field
    /// is then "unknown", not "absent".
    pub cpuid_available: bool,
    /// The 12-byte vendor string ("GenuineIntel", "AuthenticAMD", ...).
    pub vendor: Option<String>,
    /// Highest basic leaf.
    pub max_basic_leaf: u32,
    /// Highest extended leaf.
    pub max_extended_leaf: u32,
    /// CPUID.1:ECX\[31\]: running under a hypervisor.
    pub hypervisor: bool,
    /// The hypervisor's vendor string from leaf 0x4000_0000, if any.
    pub hypervisor_vendor: Option<String>,
    /// SGX, when the CPU enumerates leaf 7.
    pub sgx: SgxCpu,
    /// SEV family, when the CPU enumerates leaf 0x8000_001F.
    pub sev: SevCpu,
    /// CPUID leaf 0x21 carries the "IntelTDX    " signature: this is a TDX
    /// guest (trust domain).
    pub tdx_guest: bool,
}

impl CpuReport {
    /// True for an Intel CPU.
    pub fn is_intel(&self) -> bool {
        self.vendor.as_deref() == Some("GenuineIntel")
    }

    /// True for an AMD CPU.
    pub fn is_amd(&self) -> bool {
        self.vendor.as_deref() == Some("AuthenticAMD")
    }
}

const LEAF_SGX: u32 = 0x12;
const LEAF_TDX: u32 = 0x21;
const LEAF_SEV: u32 = 0x8000_001F;
/// CPUs enumerate only a handful of EPC sections (one per socket); the cap
/// keeps a lying CPUID from looping forever.
const MAX_EPC_SUBLEAVES: u32 = 64;

fn bit(v: u32, n: u32) -> bool {
    (v >> n) & 1 == 1
}

/// Turns 12 bytes of registers into a printable vendor string.
fn regs_string(words: [u32; 3]) -> String {
    let mut bytes = Vec::with_capacity(12);
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// `2^exp`, or `None` when the exponent cannot describe a size (0 means
/// "not reported"; ≥ 64 would overflow and no CPU reports it).
fn pow2(exp: u32) -> Option<u64> {
    if exp == 0 || exp >= 64 {
        None
    } else {
        Some(1u64 << exp)
    }
}

/// Decodes EPC base or size from the two registers that carry it:
/// low bits 31:12 of the first, high bits 19:0 (address bits 51:32) of the second.
fn epc_field(low: u32, high: u32) -> u64 {
    (u64::from(low) & 0xFFFF_F000) | ((u64::from(high) & 0x000F_FFFF) << 32)
}

/// Decodes every TEE-relevant leaf of `cpu`.
pub fn decode(cpu: &dyn Cpuid) -> CpuReport {
    let Some(l0) = cpu.cpuid(0, 0) else {
        return CpuReport::default();
    };
    let mut r = CpuReport {
        cpuid_available: true,
        vendor: Some(regs_string([l0.ebx, l0.edx, l0.ecx])),
        max_basic_leaf: l0.eax,
        ..CpuReport::default()
    };

    if r.max_basic_leaf >= 1 {
        if let Some(l1) = cpu.cpuid(1, 0) {
            r.hypervisor = bit(l1.ecx, 31);
        }
    }
    if r.hypervisor {
        if let Some(h) = cpu.cpuid(0x4000_0000, 0) {
            let v = regs_string([h.ebx, h.ecx, h.edx]);
            let v = v.trim_end_matches(['?', ' ']).to_string();
            if !v.is_empty() {
                r.hypervisor_vendor = Some(v);
            }
        }
    }

    if r.max_basic_leaf >= 7 {
        if let Some(l7) = cpu.cpuid(7, 0) {
            r.sgx.supported = bit(l7.ebx, 2);
            r.sgx.flc = bit(l7.ecx, 30);
        }
    }
    // Leaf 0x12 is only defined when leaf 7 reports SGX.
    if r.sgx.supported && r.max_basic_leaf >= LEAF_SGX {
        decode_sgx_leaf(cpu, &mut r.sgx);
    }

    if r.max_basic_leaf >= LEAF_TDX {
        if let Some(t) = cpu.cpuid(LEAF_TDX, 0) {
            // Same register order as the Linux kernel's tdx_early_init():
            // EBX, EDX, ECX spell "IntelTDX    ".
            r.tdx_guest = regs_string([t.ebx, t.edx, t.ecx]) == "IntelTDX    ";
        }
    }

    if let Some(e) = cpu.cpuid(0x8000_0000, 0) {
        // A CPU without extended leaves echoes a basic leaf here; only values
        // with bit 31 set are a real maximum extended leaf.
        if bit(e.eax, 31) {
            r.max_extended_leaf = e.eax;
        }
    }
    if r.max_extended_leaf >= LEAF_SEV && r.is_amd() {
        if let Some(s) = cpu.cpuid(LEAF_SEV, 0) {
            r.sev = SevCpu {
                sev: bit(s.eax, 1),
                sev_es: bit(s.eax, 3),
                sev_snp: bit(s.eax, 4),
                c_bit: (s.ebx & 0x3F) as u8,
                max_guests: s.ecx,
            };
        }
    }
    r
}

fn decode_sgx_leaf(cpu: &dyn Cpuid, sgx: &mut SgxCpu) {
    if let Some(s0) = cpu.cpuid(LEAF_SGX, 0) {
        sgx.sgx1 = bit(s0.eax, 0);
        sgx.sgx2 = bit(s0.eax, 1);
        sgx.max_enclave_size_32 = pow2(s0.edx & 0xFF);
        sgx.max_enclave_size_64 = pow2((s0.edx >> 8) & 0xFF);
    }
    // Sub-leaf 1 is the SECS.ATTRIBUTES mask; EPC sections start at 2 and end
    // at the first invalid (type 0) sub-leaf.
    for sub in 2..2 + MAX_EPC_SUBLEAVES {
        let Some(s) = cpu.cpuid(LEAF_SGX, sub) else {
            break;
        };
        match s.eax & 0xF {
            0 => break,
            1 => sgx.epc_sections.push(EpcSection {
                subleaf: sub,
                base: epc_field(s.eax, s.ebx),
                size: epc_field(s.ecx, s.edx),
                property: (s.ecx & 0xF) as u8,
            }),
            // Reserved types: skip, the next sub-leaf may still be valid.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Register values of an Ice Lake-SP style SGX2+FLC host with two EPC
    /// sections (one per socket).
    fn sgx2_host() -> FakeCpuid {
        FakeCpuid::new()
            .with_vendor("GenuineIntel", 0x1B, 0x8000_0008)
            .with(7, 0, 0, 1 << 2, 1 << 30, 0)
            // SGX1|SGX2, MaxEnclaveSize_Not64 = 2^31, _64 = 2^56.
            .with(0x12, 0, 0b11, 0, 0, (56 << 8) | 31)
            // Section at 0x40_8000_0000 of 0x7F80_0000 bytes, then one at
            // 0x80_0000_0000 of 8 GiB (size bits 51:32 in EDX).
            .with(0x12, 2, 0x8000_0001, 0x0000_0040, 0x7F80_0001, 0x0000_0000)
            .with(0x12, 3, 0x0000_0001, 0x0000_0080, 0x0000_0001, 0x0000_0002)
    }

    #[test]
    fn decodes_sgx2_flc_with_epc_sections() {
        let r = decode(&sgx2_host());
        assert!(r.cpuid_available);
        assert_eq!(r.vendor.as_deref(), Some("GenuineIntel"));
        assert!(r.is_intel());
        assert!(r.sgx.supported && r.sgx.flc && r.sgx.sgx1 && r.sgx.sgx2);
        assert_eq!(r.sgx.max_enclave_size_32, Some(1 << 31));
        assert_eq!(r.sgx.max_enclave_size_64, Some(1 << 56));
        assert_eq!(r.sgx.epc_sections.len(), 2);
        let s = r.sgx.epc_sections[0];
        assert_eq!(s.subleaf, 2);
        assert_eq!(s.base, 0x40_8000_0000);
        assert_eq!(s.size, 0x7F80_0000);
        assert_eq!(s.property, 1);
        let s = r.sgx.epc_sections[1];
        // Size = (2 << 32) | 0 = 8 GiB: the high register counts bits 51:32.
        assert_eq!(s.base, 0x80_0000_0000);
        assert_eq!(s.size, 2 << 32);
        assert_eq!(r.sgx.epc_total(), 0x7F80_0000 + (2u64 << 32));
        assert!(!r.tdx_guest && !r.hypervisor);
    }

    #[test]
    fn sgx_leaf_ignored_when_leaf7_says_no_sgx() {
        // BIOS disabled SGX: leaf 7 clears the bit; whatever 0x12 says must not count.
        let c = sgx2_host().with(7, 0, 0, 0, 0, 0);
        let r = decode(&c);
        assert!(!r.sgx.supported && !r.sgx.sgx1 && !r.sgx.flc);
        assert!(r.sgx.epc_sections.is_empty());
    }

    #[test]
    fn leaf7_ignored_when_max_leaf_too_low() {
        let c = sgx2_host().with_vendor("GenuineIntel", 6, 0x8000_0008);
        assert!(!decode(&c).sgx.supported);
    }

    #[test]
    fn epc_enumeration_stops_at_invalid_and_skips_reserved_types() {
        let c = sgx2_host()
            .with(0x12, 3, 0x0000_0005, 0, 0x1000_0000, 0) // reserved type
            .with(0x12, 4, 0x2000_0001, 0, 0x1000_0001, 0)
            .with(0x12, 6, 0x3000_0001, 0, 0x1000_0001, 0); // after the gap at 5
        let r = decode(&c);
        let subs: Vec<u32> = r.sgx.epc_sections.iter().map(|s| s.subleaf).collect();
        assert_eq!(subs, vec![2, 4]);
    }

    #[test]
    fn lying_cpuid_with_endless_epc_sections_is_capped() {
        struct Endless;
        impl Cpuid for Endless {
            fn cpuid(&self, leaf: u32, sub: u32) -> Option<CpuidRegs> {
                Some(match (leaf, sub) {
                    (0, _) => CpuidRegs {
                        eax: 0x20,
                        ..Default::default()
                    },
                    (7, _) => CpuidRegs {
                        ebx: 4,
                        ..Default::default()
                    },
                    (0x12, _) => CpuidRegs {
                        eax: 1,
                        ebx: u32::MAX,
                        ecx: u32::MAX,
                        edx: u32::MAX,
                    },
                    _ => CpuidRegs::default(),
                })
            }
        }
        let r = decode(&Endless);
        assert_eq!(r.sgx.epc_sections.len(), MAX_EPC_SUBLEAVES as usize);
        // Sizes are at most 52 bits each; the total saturates instead of wrapping.
        assert!(r.sgx.epc_total() >= r.sgx.epc_sections[0].size);
        assert_eq!(r.sgx.max_enclave_size_64, None, "2^255 is not a size");
    }

    #[test]
    fn decodes_amd_sev_snp() {
        let c = FakeCpuid::new()
            .with_vendor("AuthenticAMD", 0x10, 0x8000_0021)
            .with(0x8000_001F, 0, 0b1_1011, 51, 509, 100);
        let r = decode(&c);
        assert!(r.is_amd());
        assert!(r.sev.sev && r.sev.sev_es && r.sev.sev_snp);
        assert_eq!(r.sev.c_bit, 51);
        assert_eq!(r.sev.max_guests, 509);
        // Bit 2 (page flush MSR) alone is not SEV-ES.
        let c = c.with(0x8000_001F, 0, 0b0_0110, 0, 0, 0);
        let r = decode(&c);
        assert!(r.sev.sev && !r.sev.sev_es && !r.sev.sev_snp);
    }

    #[test]
    fn sev_leaf_needs_amd_and_extended_range() {
        let c = FakeCpuid::new()
            .with_vendor("AuthenticAMD", 0x10, 0x8000_001E)
            .with(0x8000_001F, 0, 0b1_1011, 0, 0, 0);
        assert!(!decode(&c).sev.sev_snp);
        let c = FakeCpuid::new()
            .with_vendor("GenuineIntel", 0x10, 0x8000_0021)
            .with(0x8000_001F, 0, 0b1_1011, 0, 0, 0);
        assert!(!decode(&c).sev.sev_snp);
    }

    #[test]
    fn decodes_tdx_guest_and_hypervisor() {
        let w = |s: &[u8; 4]| u32::from_le_bytes(*s);
        let c = FakeCpuid::new()
            .with_vendor("GenuineIntel", 0x23, 0x8000_0008)
            .with(1, 0, 0, 0, 1 << 31, 0)
            .with(0x4000_0000, 0, 0, w(b"KVMK"), w(b"VMKV"), w(b"M\0\0\0"))
            .with(0x21, 0, 0, w(b"Inte"), w(b"    "), w(b"lTDX"));
        let r = decode(&c);
        assert!(r.tdx_guest);
        assert!(r.hypervisor);
        assert_eq!(r.hypervisor_vendor.as_deref(), Some("KVMKVMKVM"));
        // Wrong register order is not the signature.
        let c = c.with(0x21, 0, 0, w(b"Inte"), w(b"lTDX"), w(b"    "));
        assert!(!decode(&c).tdx_guest);
    }

    #[test]
    fn unavailable_cpuid_reports_unknown() {
        let r = decode(&NoCpuid);
        assert!(!r.cpuid_available);
        assert_eq!(r.vendor, None);
    }

    #[test]
    fn native_cpuid_runs() {
        let r = decode(&NativeCpuid);
        if cfg!(target_arch = "x86_64") {
            assert!(r.cpuid_available);
            assert!(r.max_basic_leaf >= 1);
            assert_eq!(r.vendor.as_ref().map(|v| v.len()), Some(12));
        } else {
            assert!(!r.cpuid_available);
        }
    }
}
