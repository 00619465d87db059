//! Background threads: the flusher (group commit / periodic fsync), upkeep (checkpoints,
//! retention) and the indexer (key index, see [`crate::index::IndexFeed`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Inner;
use crate::api::RetentionReport;
use crate::checkpoint::Checkpoint;
use crate::config::FlushMode;
use crate::fsutil::now_ms;
use crate::{Result, StoreError};

pub(super) fn start(inner: &Arc<Inner>) -> Result<Vec<JoinHandle<()>>> {
    let spawn = |name: &str, f: fn(&Inner)| {
        let inner = inner.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || f(&inner))
            .map_err(|e| StoreError::io("spawn thread", name, e))
    };
    Ok(vec![
        spawn("catmq-flush", flusher)?,
        spawn("catmq-upkeep", upkeep)?,
        spawn("catmq-index", indexer)?,
    ])
}

/// Writes out combined appends, then fsyncs everything in the file; poisons the store on
/// failure.
pub(super) fn flush_now(inner: &Inner) -> Result<()> {
    // Only what is in the file: appends combined after this write wait for the next one.
    let target = inner.write_out_upto(u64::MAX)?;
    let from = inner.flush.flushed();
    if target <= from {
        return Ok(());
    }
    match inner.log.sync_range(from, target) {
        Ok(()) => {
            inner.flush.set_flushed(target);
            Ok(())
        }
        Err(e) => {
            inner.flush.poison(format!("commit log fsync failed: {e}"));
            Err(e)
        }
    }
}

/// Group commit: in sync mode an fsync starts as soon as something is appended and the previous
/// one has finished; it writes out every append combined before it starts (one `pwrite`, see
/// `pending`) and covers them. Appends that arrive during an fsync are covered by the next, so
/// with many appenders the fsyncs run back to back and each carries what arrived during the
/// previous one. (Holding an fsync back to gather more callers was measured slower on every
/// group size: the disk idles while they come.)
fn flusher(inner: &Inner) {
    loop {
        let stopping = match inner.cfg.flush {
            FlushMode::Sync => {
                inner
                    .flush
                    .wait_for_writes(Duration::from_millis(100), || inner.shutdown.is_stopped());
                inner.shutdown.is_stopped()
            }
            FlushMode::Async { interval } => inner.shutdown.wait(interval),
        };
        if flush_now(inner).is_err() || stopping {
            return;
        }
    }
}

/// Adds handed-over key hashes to the index in batches, off the append path.
fn indexer(inner: &Inner) {
    while inner.index.wait_for_work() {
        if inner.key_index().is_err() {
            return;
        }
    }
}

fn upkeep(inner: &Inner) {
    let tick = inner
        .cfg
        .checkpoint_interval
        .min(inner.cfg.retention.check_interval)
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(10));
    let mut last_cp = Instant::now();
    let mut last_retention = Instant::now();
    loop {
        if inner.shutdown.wait(tick) {
            return;
        }
        let written = inner.flush.written() - inner.last_checkpoint.load(Ordering::Acquire);
        if last_cp.elapsed() >= inner.cfg.checkpoint_interval
            || written >= inner.cfg.checkpoint_bytes
        {
            if let Err(e) = checkpoint(inner, false) {
                tracing::error!(error = %e, "checkpoint failed; recovery will start from the previous one");
            }
            last_cp = Instant::now();
        }
        if last_retention.elapsed() >= inner.cfg.retention.check_interval {
            if let Err(e) = retention(inner) {
                tracing::error!(error = %e, "retention pass failed");
            }
            last_retention = Instant::now();
        }
    }
}

/// Persists consume queues and the index for everything dispatched so far, then records the
/// position in the checkpoint file.
pub(super) fn checkpoint(inner: &Inner, clean: bool) -> Result<()> {
    let _g = inner
        .checkpoint_lock
        .lock()
        .map_err(|_| StoreError::Closed)?;
    // Everything before `pos` is dispatched: the writer publishes `written` after dispatch.
    let pos = inner.flush.written();
    flush_now(inner)?;
    for q in inner.queues.all() {
        q.sync()?;
    }
    inner.key_index()?.persist()?;
    Checkpoint {
        position: pos,
        written_ms: now_ms(),
        clean,
    }
    .write(&inner.cfg.dir)?;
    inner.last_checkpoint.store(pos, Ordering::Release);
    Ok(())
}

fn disk_used_ratio(inner: &Inner) -> Option<f64> {
    let st = rustix::fs::statvfs(&inner.cfg.dir).ok()?;
    if st.f_blocks == 0 {
        return None;
    }
    Some(1.0 - st.f_bavail as f64 / st.f_blocks as f64)
}

fn oldest_is_expired(inner: &Inner) -> bool {
    let Some(age) = inner.cfg.retention.max_age else {
        return false;
    };
    let segs = inner.log.segments_snapshot();
    let Some(oldest) = segs.first() else {
        return false;
    };
    oldest
        .file
        .file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
}

/// Deletes whole segments by age and disk use, never the active one.
pub(super) fn retention(inner: &Inner) -> Result<RetentionReport> {
    let mut removed = 0;
    loop {
        let over_disk = inner
            .cfg
            .retention
            .max_disk_ratio
            .is_some_and(|r| disk_used_ratio(inner).is_some_and(|u| u > r));
        if !(over_disk || oldest_is_expired(inner)) || inner.log.segments_snapshot().len() < 2 {
            break;
        }
        if removed == 0 {
            // Recovery replays the log from the checkpoint: never delete records it still needs.
            checkpoint(inner, false)?;
        }
        let Some((base, _)) = inner.log.remove_oldest(over_disk)? else {
            break;
        };
        tracing::info!(
            segment = base,
            over_disk,
            "retention deleted a commit-log segment"
        );
        removed += 1;
    }
    let log_min = inner.log.min_pos();
    if removed > 0 {
        for q in inner.queues.all() {
            q.apply_log_min(log_min)?;
        }
        inner.key_index()?.apply_log_min(log_min)?;
    }
    Ok(RetentionReport {
        segments_removed: removed,
        log_min,
    })
}
