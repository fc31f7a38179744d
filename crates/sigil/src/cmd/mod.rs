//! Subcommands, one module each.

/// Defines `pub struct Args` for a command that only chooses one of its
/// subcommands (`sigil identity create|show`, ...): a `command` field with
/// the calling module's `Command` enum, which `run` matches on. A macro
/// rather than a generic struct, so that `Command` and its argument structs
/// stay private to their module. Give it the struct's doc comment:
///
/// ```ignore
/// subcommand_args! {
///     /// Arguments of `sigil identity`.
/// }
/// ```
macro_rules! subcommand_args {
    ($(#[$attr:meta])*) => {
        $(#[$attr])*
        #[derive(clap::Args, Debug)]
        pub struct Args {
            #[command(subcommand)]
            command: Command,
        }
    };
}

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
