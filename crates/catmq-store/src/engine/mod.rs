//! [`FileStore`]: the file-backed [`MessageStore`].
//!
//! Locks, always taken in this order: the writer lock, then a consume queue's lock, then the
//! index lock, then the index's pending list. Readers take a consume queue's lock or the index
//! lock alone, briefly. The segment list has its own read-write lock, taken last and never held
//! across I/O on the log.

mod append;
mod background;
mod pending;
mod read;
mod recovery;

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use catmq_common::NewMessage;

use crate::api::{
    AppendResult, ArrivalListener, Boundary, MessageStore, QueueInfo, ReadRequest, ReadResult,
    RetentionReport, StoreStats,
};
use crate::commit_log::{CommitLog, Segment, SegmentWriter, WriteMap, ZeroAhead};
use crate::config::{FlushMode, StoreConfig};
use crate::consume_queue::QueueTable;
use crate::flush::{FlushState, FlushWaiter};
use crate::index::{IndexFeed, KeyIndex};
use crate::{Result, StoreError};
use pending::{Arrival, Pending};

pub use recovery::RecoveryReport;

/// The append position, guarded by the writer lock.
#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    /// How records go into the active segment.
    out: SegmentWriter,
    /// Absolute position of the next record.
    pos: u64,
    /// Appends not yet written to the file (sync flush; see [`pending`]).
    pending: Pending,
}

impl Writer {
    /// Writes `data` at absolute position `pos` of the active segment.
    fn write_at(&mut self, data: &[u8], pos: u64) -> Result<()> {
        self.out.write(&self.active, pos - self.active.base, data)
    }

    /// Unmaps the active segment and cuts its file to the data written.
    fn seal_active(&mut self, log: &CommitLog) -> Result<()> {
        self.out = SegmentWriter::Plain;
        log.seal(&self.active, self.pos - self.active.base)
    }
}

/// How to write the active segment `seg` with the writer at `pos`: through a mapping with async
/// flush, over space zeroed ahead with sync flush (a mapping would make every fsync also write
/// back the pages prefaulted ahead, and the copy would fault on each of them again).
fn open_writer(cfg: &StoreConfig, seg: &Arc<Segment>, pos: u64) -> Result<SegmentWriter> {
    let off = pos - seg.base;
    Ok(match cfg.flush {
        FlushMode::Async { .. } => WriteMap::open(seg, cfg.segment_size, off)?
            .map_or(SegmentWriter::Plain, SegmentWriter::Mapped),
        FlushMode::Sync => SegmentWriter::Zeroed(ZeroAhead::start(seg, cfg.segment_size, off)?),
    })
}

/// Wakes background threads for shutdown.
#[derive(Debug, Default)]
struct Shutdown {
    stopped: Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Shutdown {
    /// Waits up to `d`; returns whether shutdown was requested.
    fn wait(&self, d: std::time::Duration) -> bool {
        let Ok(g) = self.stopped.lock() else {
            return true;
        };
        if *g {
            return true;
        }
        match self.cv.wait_timeout(g, d) {
            Ok((g, _)) => *g,
            Err(_) => true,
        }
    }

    fn stop(&self) {
        if let Ok(mut g) = self.stopped.lock() {
            *g = true;
        }
        self.cv.notify_all();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.lock().map(|g| *g).unwrap_or(true)
    }
}

struct Inner {
    cfg: StoreConfig,
    log: CommitLog,
    queues: QueueTable,
    index: IndexFeed,
    writer: Mutex<Writer>,
    flush: Arc<FlushState>,
    listener: RwLock<Option<ArrivalListener>>,
    shutdown: Shutdown,
    closed: AtomicBool,
    /// Serialises checkpoints.
    checkpoint_lock: Mutex<()>,
    last_checkpoint: AtomicU64,
    corrupt_reads: AtomicU64,
    /// Held for the store's life: an exclusive lock on `<dir>/lock`.
    _lock_file: File,
}

impl Inner {
    /// The key index with every handed-over entry added to it. Failing to add them (a write
    /// error) poisons the store: the index would otherwise silently miss messages.
    fn key_index(&self) -> Result<std::sync::MutexGuard<'_, KeyIndex>> {
        self.index
            .current()
            .inspect_err(|e| self.flush.poison(format!("key index write failed: {e}")))
    }

    /// Whether appends are combined in [`Writer::pending`] and written by the flusher.
    fn combines_writes(&self) -> bool {
        self.cfg.flush == FlushMode::Sync
    }

    /// Writes the combined appends to the log file and records how far the file now holds
    /// records; a failed write poisons the store. Returns the queues that received them, for
    /// [`append::announce`] once the writer lock is released.
    fn write_pending(&self, w: &mut Writer) -> Result<Vec<Arrival>> {
        let Writer {
            pending,
            out,
            active,
            ..
        } = w;
        match pending.write_out(out, active) {
            Ok(Some((end, arrivals))) => {
                self.flush.set_in_file(end);
                Ok(arrivals)
            }
            Ok(None) => Ok(Vec::new()),
            Err(e) => {
                self.flush.poison(format!("commit log write failed: {e}"));
                Err(e)
            }
        }
    }

    /// Makes the log file hold every record below `upto` (an end of dispatched records): if
    /// combined appends below it are still buffered, writes them out now. Readers call it so a
    /// read right behind the appends (or of one's own append) finds them; the flusher calls it
    /// with `u64::MAX` before each fsync. Returns how far the file holds records. Call with no
    /// other lock of the store held.
    fn write_out_upto(&self, upto: u64) -> Result<u64> {
        let in_file = self.flush.in_file();
        if in_file >= upto || !self.combines_writes() || self.flush.written() <= in_file {
            return Ok(in_file);
        }
        let mut w = self.writer.lock().map_err(|_| StoreError::Closed)?;
        let arrivals = self.write_pending(&mut w)?;
        drop(w);
        append::announce(self, &arrivals);
        Ok(self.flush.in_file())
    }
}

/// Owns the background threads; closing happens when the last handle goes.
struct Lifecycle {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        let store = FileStoreRef {
            inner: &self.inner,
            threads: &self.threads,
        };
        if let Err(e) = store.close() {
            tracing::error!(error = %e, "closing the store on drop failed");
        }
    }
}

/// A message store on local files. Cheap to clone; all clones share one store, which is
/// closed (flushed and checkpointed) when the last clone is dropped.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
    life: Arc<Lifecycle>,
    recovery: Arc<RecoveryReport>,
}

/// The parts of a store that stopping and closing need.
struct FileStoreRef<'a> {
    inner: &'a Inner,
    threads: &'a Mutex<Vec<JoinHandle<()>>>,
}

impl FileStoreRef<'_> {
    fn stop_threads(&self) {
        self.inner.shutdown.stop();
        self.inner.flush.wake_written();
        self.inner.index.stop();
        let handles: Vec<_> = self
            .threads
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for h in handles {
            let _ = h.join();
        }
    }

    fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_threads();
        self.inner.flush.check_poisoned()?;
        let mut w = self.inner.writer.lock().map_err(|_| StoreError::Closed)?;
        self.inner.write_pending(&mut w)?;
        w.seal_active(&self.inner.log)?;
        drop(w);
        background::flush_now(self.inner)?;
        background::checkpoint(self.inner, true)
    }
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.inner.cfg.dir)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Opens (or creates) the store in `cfg.dir`, recovering after a crash, and starts the
    /// flusher and upkeep threads.
    pub fn open(cfg: StoreConfig) -> Result<Self> {
        let (inner, report) = recovery::open(cfg)?;
        let inner = Arc::new(inner);
        let threads = background::start(&inner)?;
        let life = Arc::new(Lifecycle {
            inner: inner.clone(),
            threads: Mutex::new(threads),
        });
        Ok(Self {
            inner,
            life,
            recovery: Arc::new(report),
        })
    }

    /// What recovery found when this store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The configuration in force.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Stops the background threads without flushing, persisting or checkpointing: what a
    /// process crash leaves behind (written data stays in the page cache). Later calls fail with
    /// [`StoreError::Closed`]. Drop the store afterwards to release the directory lock.
    pub fn simulate_crash(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.life_ref().stop_threads();
    }

    fn life_ref(&self) -> FileStoreRef<'_> {
        FileStoreRef {
            inner: &self.life.inner,
            threads: &self.life.threads,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner.flush.check_poisoned()
    }
}

impl MessageStore for FileStore {
    fn append_batch(&self, msgs: &[NewMessage]) -> Result<AppendResult> {
        self.check_open()?;
        append::append(&self.inner, msgs)
    }

    fn flush_waiter(&self) -> FlushWaiter {
        FlushWaiter::new(self.inner.flush.clone())
    }

    fn read(&self, req: &ReadRequest<'_>) -> Result<ReadResult> {
        read::read(&self.inner, req)
    }

    fn read_at(&self, physical_offset: u64) -> Result<Option<Bytes>> {
        read::read_at(&self.inner, physical_offset)
    }

    fn queue_info(&self, topic: &str, queue_id: i32) -> Option<QueueInfo> {
        self.inner
            .queues
            .get(topic, queue_id)
            .map(|q| read::queue_info(&self.inner, &q))
    }

    fn queues(&self) -> Vec<QueueInfo> {
        let mut all: Vec<QueueInfo> = self
            .inner
            .queues
            .all()
            .iter()
            .map(|q| read::queue_info(&self.inner, q))
            .collect();
        all.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
        all
    }

    fn offset_for_timestamp(
        &self,
        topic: &str,
        queue_id: i32,
        ts: i64,
        boundary: Boundary,
    ) -> Result<u64> {
        read::offset_for_timestamp(&self.inner, topic, queue_id, ts, boundary)
    }

    fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<Bytes>> {
        read::query_by_key(&self.inner, topic, key, (begin_ms, end_ms), limit)
    }

    fn set_arrival_listener(&self, listener: ArrivalListener) {
        if let Ok(mut l) = self.inner.listener.write() {
            *l = Some(listener);
        }
    }

    fn delete_topic(&self, topic: &str) -> Result<bool> {
        // Take the writer lock so no append for the topic is half dispatched meanwhile.
        let _w = self.inner.writer.lock().map_err(|_| StoreError::Closed)?;
        self.inner.queues.remove_topic(topic)
    }

    fn checkpoint(&self) -> Result<()> {
        self.check_open()?;
        background::checkpoint(&self.inner, false)
    }

    fn run_retention(&self) -> Result<RetentionReport> {
        self.check_open()?;
        background::retention(&self.inner)
    }

    fn stats(&self) -> StoreStats {
        let i = &self.inner;
        StoreStats {
            log_min: i.log.min_pos(),
            log_end: i.flush.written(),
            flushed: i.flush.flushed(),
            segments: i.log.segments_snapshot().len(),
            queues: i.queues.all().len(),
            index_files: i.key_index().map(|x| x.file_count()).unwrap_or(0),
            corrupt_records_skipped: i.corrupt_reads.load(Ordering::Relaxed),
            log_fsyncs: i.flush.rounds(),
        }
    }

    fn close(&self) -> Result<()> {
        self.life_ref().close()
    }
}
