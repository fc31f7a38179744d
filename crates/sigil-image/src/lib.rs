//! sigil convert: OCI image reading, flattening, sealing and writing, session and Helm chart generation.
