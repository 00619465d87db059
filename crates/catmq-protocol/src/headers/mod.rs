//! Typed request and response headers, read from and written to `extFields`.
//!
//! Field names on the wire are the Java field names. Required fields fail decoding with
//! [`crate::ProtocolError::MissingField`] when absent; optional ones are `Option`s.

pub mod admin;
pub mod client;
pub mod namesrv;
pub mod offset;
pub mod pull;
pub mod query;
pub mod send;
pub mod timer;
pub mod txn;

pub use admin::*;
pub use client::*;
pub use namesrv::*;
pub use offset::*;
pub use pull::*;
pub use query::*;
pub use send::*;
pub use timer::*;
pub use txn::*;
