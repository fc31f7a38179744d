//! sigil convert: OCI image reading, flattening, sealing and writing, session
//! and Helm chart generation.
//!
//! The modules, in the order a conversion uses them:
//! - [`source`]: open an input image (OCI layout directory or tar, docker/podman
//!   save archive) and parse its index, manifest and config with size limits.
//! - [`flatten`]: apply the layers (gzip, zstd or plain tar) with whiteouts and
//!   opaque directories into one staged root file system.
//! - [`resolve`] and [`elf`]: resolve the program to run inside the image
//!   (never on the host), refuse scripts, find its shared libraries.
//! - [`archive`]: write the converted image as an OCI archive or docker-archive.
//! - [`build`]: build test/demo images from host files and in-memory files.
//!
//! The OCI documents, media types, digests and the reading of OCI layouts
//! and tar archives are `sigil-oci`'s, shared with `sigil-registry`
//! ([`spec`] and [`digest`] re-export them).
//!
//! The layout of a converted image is specified in `docs/image-format.md`.

pub mod archive;
pub mod build;
pub mod convert;
/// `sha256:<hex>` digests and hashing readers/writers (from `sigil-oci`).
pub use sigil_oci::digest;
pub mod elf;
pub mod resolve;
pub mod session;

pub mod error;
pub mod flatten;
pub mod helm;
pub mod limits;

pub mod source;
pub mod spec;

pub use error::{Error, Result};
pub use limits::Limits;
