//! Probes of the host's TEE capabilities (SGX, TDX, SEV-SNP) and the advice that follows.
