//! Opening a store: take the directory lock, find the checkpoint, cut consume queues and the
//! index back to it, re-dispatch the records written after it, and cut off a torn tail.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, RwLock};

use catmq_common::record::RecordView;
use catmq_common::tags;

use super::append::{index_hashes, indexed_properties};
use super::{Inner, Shutdown, Writer};
use crate::checkpoint::Checkpoint;
use crate::commit_log::{scan, CommitLog};
use crate::config::{FlushMode, StoreConfig};
use crate::consume_queue::{CqEntry, QueueTable};
use crate::flush::FlushState;
use crate::fsutil::{self, now_ms};
use crate::index::{IndexFeed, KeyIndex};
use crate::{Result, StoreError};

/// What recovery did when the store was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint found, if any.
    pub checkpoint: Option<Checkpoint>,
    /// Where the scan started.
    pub scanned_from: u64,
    /// Where the valid log ends.
    pub log_end: u64,
    /// Records re-dispatched.
    pub records_replayed: u64,
    /// Corrupt ranges `[from, to)` found and skipped (absolute positions).
    pub corrupt_ranges: Vec<(u64, u64)>,
    /// Where a torn tail was cut off.
    pub truncated_at: Option<u64>,
    /// How long recovery took.
    pub elapsed: std::time::Duration,
}

fn lock_dir(cfg: &StoreConfig) -> Result<File> {
    let path = cfg.dir.join("lock");
    let f = fsutil::DataFile::open_rw(&path)?.file;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        StoreError::io(
            "lock (is another process using this store?)",
            &path,
            std::io::Error::from(e),
        )
    })?;
    Ok(f)
}

/// Adds a recovered record to its consume queue and the index.
fn redispatch(
    queues: &QueueTable,
    index: &mut KeyIndex,
    pos: u64,
    v: &RecordView<'_>,
) -> Result<()> {
    let Some(topic) = v.topic() else {
        tracing::warn!(pos, "record with a non-UTF-8 topic skipped");
        return Ok(());
    };
    let (tags, keys, uniq) = indexed_properties(v.properties().unwrap_or(""));
    let q = queues.get_or_create(topic, v.queue_id())?;
    let entry = CqEntry {
        phys: pos,
        size: u32::try_from(v.total_size()).unwrap_or(0),
        tag_code: tags::tag_code(tags),
    };
    q.push(
        u64::try_from(v.queue_offset()).unwrap_or(0),
        entry,
        v.store_timestamp(),
    )?;
    for h in index_hashes(topic, keys, uniq).as_slice() {
        index.add(*h, pos, v.store_timestamp())?;
    }
    Ok(())
}

/// Persists consume queues and the index and writes a checkpoint at `pos`.
fn persist_progress(
    queues: &QueueTable,
    index: &mut KeyIndex,
    cfg: &StoreConfig,
    pos: u64,
) -> Result<()> {
    for q in queues.all() {
        q.sync()?;
    }
    index.persist()?;
    Checkpoint {
        position: pos,
        written_ms: now_ms(),
        clean: false,
    }
    .write(&cfg.dir)
}

fn start_position(log: &CommitLog, cp: Option<&Checkpoint>) -> Result<u64> {
    let last = log.last()?;
    let log_end = last.base + last.file.len()?;
    let from = cp.map_or(0, |c| c.position).max(log.min_pos());
    if from > log_end {
        tracing::warn!(
            checkpoint = from,
            log_end,
            "checkpoint is beyond the end of the log; the log lost data"
        );
    }
    Ok(from.min(log_end))
}

pub(super) fn open(cfg: StoreConfig) -> Result<(Inner, RecoveryReport)> {
    cfg.validate()?;
    let started = std::time::Instant::now();
    fsutil::create_dir(&cfg.dir)?;
    let lock = lock_dir(&cfg)?;
    let recycle = cfg.recycle_segments && cfg.flush == FlushMode::Sync;
    let log = CommitLog::open(&cfg.dir.join("commitlog"), cfg.segment_size, recycle)?;
    let queues = QueueTable::open(cfg.dir.join("consumequeue"), cfg.cq_entries_per_file)?;
    let mut index = KeyIndex::open(
        cfg.dir.join("index"),
        cfg.index_slots,
        cfg.index_entries_per_file,
    )?;
    let cp = Checkpoint::read(&cfg.dir);
    let from = start_position(&log, cp.as_ref())?;
    for q in queues.all() {
        q.truncate_from_phys(from)?;
    }
    index.truncate_from_phys(from)?;
    let mut last_cp = from;
    let outcome = scan(&log, from, |pos, v| {
        redispatch(&queues, &mut index, pos, &v)?;
        if pos - last_cp >= cfg.checkpoint_bytes {
            persist_progress(&queues, &mut index, &cfg, pos)?;
            last_cp = pos;
        }
        Ok(())
    })?;
    let end = outcome.end;
    log.sync_range(from, end)?;
    let min = log.min_pos();
    for q in queues.all() {
        q.apply_log_min(min)?;
    }
    index.apply_log_min(min)?;
    persist_progress(&queues, &mut index, &cfg, end)?;
    let active = log.last()?;
    let report = RecoveryReport {
        checkpoint: cp,
        scanned_from: from,
        log_end: end,
        records_replayed: outcome.records,
        corrupt_ranges: outcome.corrupt,
        truncated_at: outcome.truncated_at,
        elapsed: started.elapsed(),
    };
    if cp.is_some_and(|c| !c.clean)
        || report.truncated_at.is_some()
        || !report.corrupt_ranges.is_empty()
    {
        tracing::info!(?report, "store recovered after an unclean shutdown");
    }
    let inner = Inner {
        log,
        queues,
        index: IndexFeed::new(index),
        writer: Mutex::new(Writer {
            out: super::open_writer(&cfg, &active, end)?,
            active,
            pos: end,
            pending: Default::default(),
        }),
        flush: FlushState::new(end),
        listener: RwLock::new(None),
        shutdown: Shutdown::default(),
        closed: AtomicBool::new(false),
        checkpoint_lock: Mutex::new(()),
        last_checkpoint: AtomicU64::new(end),
        corrupt_reads: AtomicU64::new(0),
        _lock_file: lock,
        cfg,
    };
    Ok((inner, report))
}
