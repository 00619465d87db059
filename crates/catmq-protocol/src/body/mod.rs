//! JSON bodies. Encoding is compact standard JSON with Java's field names; decoding ignores
//! unknown keys and takes numbers or strings for numbers, and names or ordinals for enums
//! (the C++ client sends ordinals and string numbers).

pub mod cluster;
pub mod fastjson;
pub mod heartbeat;
mod lenient;
pub mod lock;
pub mod route;
pub mod stats;
pub mod topic;

pub use cluster::*;
pub use heartbeat::*;
pub use lock::*;
pub use route::*;
pub use stats::*;
pub use topic::*;

use crate::error::{ProtocolError, Result};

/// Decodes a JSON body.
pub fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ProtocolError::bad_body(what, e))
}

/// Encodes a JSON body (compact).
pub fn encode<T: serde::Serialize>(value: &T) -> bytes::Bytes {
    // Serializing these plain data types cannot fail (string keys, no non-finite floats).
    serde_json::to_vec(value).unwrap_or_default().into()
}
