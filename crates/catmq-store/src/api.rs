//! The storage contract the broker programs against, so that another backend can be added.

use std::sync::Arc;

use bytes::Bytes;
use catmq_common::NewMessage;

use crate::flush::FlushWaiter;
use crate::Result;

/// Where one appended message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Queue id.
    pub queue_id: i32,
    /// Offset in its consume queue.
    pub queue_offset: u64,
    /// Position of its record in the commit log (what the offset message id encodes).
    pub physical_offset: u64,
    /// Size of its record.
    pub size: u32,
}

/// The result of an append: one entry per message, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// Where each message went.
    pub messages: Vec<Appended>,
    /// Log position just after the last record; durable once [`FlushWaiter::wait`] for it returns.
    pub end: u64,
    /// The store timestamp given to every message of the append (ms).
    pub store_timestamp: i64,
}

/// Which offset to pick when messages share a timestamp, or none matches exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Boundary {
    /// The first offset whose store time is at or after the timestamp.
    #[default]
    Lower,
    /// The last offset whose store time is at or before the timestamp.
    Upper,
}

/// A read of one queue.
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Queue id.
    pub queue_id: i32,
    /// First queue offset wanted.
    pub offset: u64,
    /// At most this many messages.
    pub max_messages: u32,
    /// At most this many bytes of records (at least one message is returned if one matches).
    pub max_bytes: usize,
    /// Only messages whose tag code is in this set (`None`: all).
    pub tag_codes: Option<&'a [i64]>,
}

/// How a read went (the store-side statuses of Apache RocketMQ's `GetMessageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Messages returned.
    Found,
    /// Entries were there but none matched the filter; read again from `next_offset`.
    NoMatchedMessage,
    /// The queue has never had a message.
    NoMessageInQueue,
    /// No such queue.
    NoMatchedQueue,
    /// The offset is below the queue's min offset.
    OffsetTooSmall,
    /// The offset equals the max offset: caught up.
    OffsetOverflowOne,
    /// The offset is beyond the max offset.
    OffsetOverflowBadly,
}

/// The result of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Outcome.
    pub status: ReadStatus,
    /// Whole stored records, ready to be sent as they are.
    pub messages: Vec<Bytes>,
    /// Where the next read of this queue should start.
    pub next_offset: u64,
    /// The queue's min offset.
    pub min_offset: u64,
    /// The queue's max offset (next offset to be written).
    pub max_offset: u64,
}

/// One queue's offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: i32,
    /// Lowest readable offset.
    pub min_offset: u64,
    /// Next offset to be written.
    pub max_offset: u64,
    /// Store time of the newest message (ms), 0 if unknown.
    pub last_store_timestamp: i64,
}

/// What a retention pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_removed: usize,
    /// The log's lowest position afterwards.
    pub log_min: u64,
}

/// Counters and positions of a store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Lowest stored log position.
    pub log_min: u64,
    /// Position after the last record.
    pub log_end: u64,
    /// Position up to which the log is durable.
    pub flushed: u64,
    /// Commit-log segments.
    pub segments: usize,
    /// Consume queues.
    pub queues: usize,
    /// Key-index files.
    pub index_files: usize,
    /// Records found corrupt by reads and not served.
    pub corrupt_records_skipped: u64,
    /// Fsyncs of the commit log so far (in sync mode, appends per fsync shows the group commit).
    pub log_fsyncs: u64,
}

/// Called after each append with (topic, queue id, new max offset): the hook for long polling.
pub type ArrivalListener = Arc<dyn Fn(&str, i32, u64) + Send + Sync>;

/// A message store: append, read by queue offset, look up by key or position, and upkeep.
pub trait MessageStore: Send + Sync {
    /// Appends one message; queue and physical offsets are assigned atomically.
    fn append(&self, msg: &NewMessage) -> Result<AppendResult> {
        self.append_batch(std::slice::from_ref(msg))
    }
    /// Appends messages as consecutive records, all or nothing.
    fn append_batch(&self, msgs: &[NewMessage]) -> Result<AppendResult>;
    /// Waits for appends to become durable (sync flush).
    fn flush_waiter(&self) -> FlushWaiter;
    /// Reads a queue.
    fn read(&self, req: &ReadRequest<'_>) -> Result<ReadResult>;
    /// The record at a physical offset (from an offset message id), if it is stored.
    fn read_at(&self, physical_offset: u64) -> Result<Option<Bytes>>;
    /// One queue's offsets.
    fn queue_info(&self, topic: &str, queue_id: i32) -> Option<QueueInfo>;
    /// Every queue's offsets.
    fn queues(&self) -> Vec<QueueInfo>;
    /// The queue offset for a store timestamp (ms).
    fn offset_for_timestamp(
        &self,
        topic: &str,
        queue_id: i32,
        ts: i64,
        boundary: Boundary,
    ) -> Result<u64>;
    /// Messages of `topic` whose `KEYS` contain `key` or whose `UNIQ_KEY` is `key`, stored within
    /// `[begin_ms, end_ms]`, newest first, at most `limit`.
    fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<Bytes>>;
    /// Installs the arrival hook.
    fn set_arrival_listener(&self, listener: ArrivalListener);
    /// Forgets a topic's queues (its records go with retention).
    fn delete_topic(&self, topic: &str) -> Result<bool>;
    /// Persists consume queues and the index and writes a checkpoint now.
    fn checkpoint(&self) -> Result<()>;
    /// Applies the retention rules now.
    fn run_retention(&self) -> Result<RetentionReport>;
    /// Counters and positions.
    fn stats(&self) -> StoreStats;
    /// Flushes everything, writes a final checkpoint and stops background work.
    fn close(&self) -> Result<()>;
}
