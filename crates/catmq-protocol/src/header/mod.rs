//! The two header encodings of a command (everything but the body).

pub(crate) mod binary;
pub(crate) mod json;
