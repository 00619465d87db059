//! Store configuration: plain values, no cluster metadata.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{Result, StoreError};

/// Where store timestamps come from: the system clock, or a hand-set one in tests.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock (ms since the Unix epoch).
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that reads `ms` (set it to move time).
    pub fn manual(ms: Arc<AtomicI64>) -> Self {
        Self(Some(ms))
    }

    /// The current time in ms.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(ms) => ms.load(Ordering::Acquire),
            None => crate::fsutil::now_ms(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock::manual"
        } else {
            "Clock::system"
        })
    }
}

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Appends are acknowledged once written to the page cache; a flusher fsyncs every `interval`.
    Async { interval: Duration },
    /// An append completes only after an fsync that covers it. Concurrent appenders share one
    /// fsync (group commit).
    Sync,
}

/// Segment deletion rules. A segment is deleted whole, never the active one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionConfig {
    /// Delete segments whose newest message is older than this (`None`: keep by age).
    pub max_age: Option<Duration>,
    /// Delete the oldest segments while the disk holding the store is fuller than this share
    /// (0.0–1.0; `None`: ignore disk use).
    pub max_disk_ratio: Option<f64>,
    /// How often the rules are checked.
    pub check_interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age: Some(Duration::from_secs(72 * 3600)),
            max_disk_ratio: Some(0.85),
            check_interval: Duration::from_secs(10),
        }
    }
}

/// Everything the store needs to know.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root directory of the store's files.
    pub dir: PathBuf,
    /// Size of one commit-log segment in bytes (default 1 GiB).
    pub segment_size: u64,
    /// Durability mode.
    pub flush: FlushMode,
    /// Largest message (one record) accepted, in bytes (default 4 MiB).
    pub max_message_size: usize,
    /// Entries per consume-queue file (20 bytes each; default 300,000 = 6 MB).
    pub cq_entries_per_file: u64,
    /// Entries per key-index file (28 bytes each; default 2,000,000).
    pub index_entries_per_file: u32,
    /// Hash slots per key-index file (4 bytes each; default 1,000,000).
    pub index_slots: u32,
    /// How often consume queues and the index are persisted and a checkpoint written.
    pub checkpoint_interval: Duration,
    /// Also checkpoint once this many log bytes were written since the last one.
    pub checkpoint_bytes: u64,
    /// Segment deletion.
    pub retention: RetentionConfig,
    /// With sync flush, keep one segment that retention deletes as a spare and reuse its file
    /// for the next new segment (default on). Writing over blocks the file already has spares
    /// each fsync the file system's allocation records and the zeroing ahead of the writer.
    pub recycle_segments: bool,
    /// Address written as the store host of each record.
    pub store_host: SocketAddr,
    /// Source of store timestamps.
    pub clock: Clock,
}

impl StoreConfig {
    /// Defaults for a store under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_size: 1 << 30,
            flush: FlushMode::Async {
                interval: Duration::from_millis(500),
            },
            max_message_size: 4 << 20,
            cq_entries_per_file: 300_000,
            index_entries_per_file: 2_000_000,
            index_slots: 1_000_000,
            checkpoint_interval: Duration::from_secs(5),
            checkpoint_bytes: 256 << 20,
            retention: RetentionConfig::default(),
            recycle_segments: true,
            store_host: SocketAddr::from(([127, 0, 0, 1], 10911)),
            clock: Clock::system(),
        }
    }

    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(StoreError::Config(m));
        if self.segment_size < 4096 || self.segment_size > (1 << 40) {
            return bad(format!(
                "segment_size {} must be 4 KiB ..= 1 TiB",
                self.segment_size
            ));
        }
        if (self.max_message_size as u64) > self.segment_size {
            return bad("max_message_size must not exceed segment_size".into());
        }
        if self.cq_entries_per_file == 0
            || self.index_entries_per_file == 0
            || !(1..=1 << 28).contains(&self.index_slots)
        {
            return bad("file entry counts must be positive".into());
        }
        if let FlushMode::Async { interval } = self.flush {
            if interval.is_zero() {
                return bad("async flush interval must be positive".into());
            }
        }
        if let Some(r) = self.retention.max_disk_ratio {
            if !(0.0..=1.0).contains(&r) {
                return bad(format!("max_disk_ratio {r} must be within 0.0..=1.0"));
            }
        }
        Ok(())
    }
}
