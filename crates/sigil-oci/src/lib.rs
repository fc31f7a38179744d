//! The OCI pieces that both `sigil-image` (`sigil convert`) and
//! `sigil-registry` (`sigil image pull|push`) need, in one place:
//!
//! - [`digest`]: `sha256:<hex>` digests (parsing refuses anything that is not
//!   safe as a file name), and readers/writers that hash what passes through.
//! - [`spec`]: the image-spec documents (descriptor, index, manifest), media
//!   types and the `org.opencontainers.image.ref.name` matching rule.
//! - [`layout`]: reading an OCI image layout, as a directory or as a tar
//!   (OCI archive), with tar member names normalised, symlinks refused and
//!   every read size-limited and every blob checked against its descriptor.
//!
//! Everything here reads outside input: errors are one line and bounded in
//! length (see [`Error`]); the fuzz target is `crates/sigil-oci/fuzz`.

pub mod digest;
pub mod error;
pub mod layout;
pub mod spec;

pub use digest::Digest;
pub use error::{Error, Result};
