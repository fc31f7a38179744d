//! Subcommands, one module each.

pub mod attest;
pub mod audit;
pub mod cas;
pub mod convert;
pub mod demo;
pub mod detect;
pub mod fs;
pub mod identity;
pub mod image;
pub mod session;
