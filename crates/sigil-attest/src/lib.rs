//! Verification of TEE evidence (SGX DCAP, TDX, SEV-SNP, simulation) into normalised claims, and the policy decision.
