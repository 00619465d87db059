//! The CatMQ storage engine. It knows nothing of the network or of cluster metadata.
//!
//! * **Commit log** (`commitlog/`): segmented append-only files of stored-message records in
//!   Apache RocketMQ's layout (see `catmq-common`), so a read returns bytes that can be sent as
//!   they are. Queue and physical offsets are assigned atomically at append.
//! * **Consume queues** (`consumequeue/<topic>/<queue>/`): fixed-width entries (physical offset,
//!   size, tag code): queue offset → record in O(1).
//! * **Key index** (`index/`): messages by `KEYS` and `UNIQ_KEY` within a time range.
//! * **Checkpoint** (`checkpoint`): recovery re-dispatches only what was written after it.
//! * **Durability**: async (fsync every interval) or sync (group commit); a failed write or fsync
//!   poisons the store.
//! * **Retention**: whole segments by age or disk use, never the active one.
//!
//! The broker uses the store through the [`MessageStore`] trait. Byte layouts are in
//! `docs/storage-format.md`.

mod api;
mod checkpoint;
mod commit_log;
mod config;
mod consume_queue;
mod engine;
mod error;
mod flush;
mod fsutil;
mod index;

pub use api::{
    AppendResult, Appended, ArrivalListener, Boundary, MessageStore, QueueInfo, ReadRequest,
    ReadResult, ReadStatus, RetentionReport, StoreStats,
};
pub use checkpoint::Checkpoint;
pub use config::{Clock, FlushMode, RetentionConfig, StoreConfig};
pub use engine::{FileStore, RecoveryReport};
pub use error::{Result, StoreError};
pub use flush::FlushWaiter;
pub use fsutil::{escaped_topic_len, MAX_TOPIC_DIR_NAME};
