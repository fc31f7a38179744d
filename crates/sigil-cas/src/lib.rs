//! The Configuration and Attestation Service: session store, secrets, audit log, management and attestation API.
