//! Wire types of the CAS API and a TLS client for it, shared by the CLI, sigil convert and sigil-init.
