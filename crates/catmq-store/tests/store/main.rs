//! Integration tests of the file store: every operation, restart in each, recovery from torn
//! and corrupt logs, retention, durability, and a model-based property test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod combined;
mod contract;
mod durability;
mod model;
mod recovery;
mod retention;
mod support;
