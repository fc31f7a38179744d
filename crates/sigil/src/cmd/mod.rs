//! Subcommands, one module each.

pub mod detect;
pub mod convert;
pub mod cas;
pub mod identity;
pub mod session;
pub mod audit;
pub mod attest;
pub mod fs;
pub mod demo;
