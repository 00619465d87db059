//! Broker errors.

use std::path::PathBuf;

/// What can go wrong starting or stopping a broker, or keeping its metadata.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The message store failed.
    #[error("message store: {0}")]
    Store(#[from] catmq_store::StoreError),
    /// A metadata file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A metadata file does not parse.
    #[error("{path}: not valid JSON: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// A setting is invalid.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// A background task failed to start or stop.
    #[error("broker task: {0}")]
    Task(String),
}

/// Results of this crate.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
