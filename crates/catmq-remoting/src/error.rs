//! The transport's error type.

use std::time::Duration;

/// Transport failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemotingError {
    /// Connecting failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The connection is closed (or closed while waiting for the response).
    #[error("connection to {peer} closed")]
    Closed { peer: String },
    /// No response within the timeout.
    #[error("no response from {peer} within {timeout:?} (code {code})")]
    Timeout {
        peer: String,
        timeout: Duration,
        code: i32,
    },
    /// The command could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] catmq_protocol::ProtocolError),
}

impl RemotingError {
    /// Whether trying again (perhaps elsewhere) may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Encode(_))
    }
}
