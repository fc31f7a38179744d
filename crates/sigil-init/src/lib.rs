//! sigil-init: the launcher inside a converted image.
//!
//! It reads `/sigil/init.toml` ([`config`]), proves the image to the CAS
//! over a pinned TLS connection with evidence bound to that connection,
//! receives the service's configuration and secrets, applies them and
//! `execve`s the application. The protocol is specified in
//! `docs/protocol.md`.
//!
//! [`config`] and [`measurement`] are all that `sigil convert` needs; the
//! runtime (feature `launcher`, on by default) holds the rest.

pub mod config;
pub mod measurement;

#[cfg(feature = "launcher")]
pub mod apply;
#[cfg(feature = "launcher")]
pub mod attest;
#[cfg(feature = "launcher")]
pub mod evidence;
#[cfg(feature = "launcher")]
pub mod http;
#[cfg(feature = "launcher")]
pub mod launcher;
