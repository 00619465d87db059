//! The one error type of the store.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or fsync failed; the store accepts no more appends.
    #[error("store is poisoned after an I/O failure: {reason}")]
    Poisoned { reason: String },
    /// A message that the record layout cannot carry.
    #[error("invalid message: {0}")]
    InvalidMessage(#[from] catmq_common::RecordError),
    /// A message or batch larger than allowed.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    /// An append with no messages.
    #[error("empty batch")]
    EmptyBatch,
    /// A batch that mixes topics or queues where one is required.
    #[error("queue id {queue_id} is out of range (0..=65535)")]
    BadQueueId { queue_id: i32 },
    /// A topic whose name, escaped for the file system, is longer than a directory name may be.
    #[error("topic name of {len} bytes cannot be stored: escaped it would be {escaped} bytes, over the file system's {max}")]
    TopicNameTooLong {
        len: usize,
        escaped: usize,
        max: usize,
    },
    /// A configuration value that cannot work.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// A file whose content is not what the store wrote.
    #[error("corrupt {what} in {path} at byte {pos}: {detail}")]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        pos: u64,
        detail: String,
    },
    /// The store was closed.
    #[error("store is shut down")]
    Closed,
}

impl StoreError {
    /// Whether the error is about the messages given, not the store: the same append fails
    /// again, while the store goes on taking other messages.
    pub fn is_message_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidMessage(_)
                | Self::MessageTooLarge { .. }
                | Self::EmptyBatch
                | Self::BadQueueId { .. }
                | Self::TopicNameTooLong { .. }
        )
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
