//! sigil-init: the launcher inside a converted image (evidence, attestation, configuration, exec).
