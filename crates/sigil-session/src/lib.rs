//! Sigil's session (policy) language: parsing, validation, canonical hashing and secret placeholders.
