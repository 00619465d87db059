//! Consume queues: per (topic, queue id), fixed-width entries that map a queue offset to its
//! record in the commit log in O(1).
//!
//! Files live in `consumequeue/<escaped topic>/<queue id>/`, named by the queue offset of their
//! first entry, `entries_per_file` entries each. An entry is 20 bytes, big-endian: physical
//! offset (u64), record size (u32), tag code (i64). An all-zero entry is a hole (its record was
//! lost to corruption) and is skipped by readers. New entries sit in a small in-memory tail
//! until they are written to their file (when the tail fills up, and at every checkpoint).

mod table;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fsutil::{self, DataFile};
use crate::{Result, StoreError};

pub(crate) use table::QueueTable;

/// Bytes per entry.
pub(crate) const ENTRY_SIZE: usize = 20;
/// Entries kept in memory before they are written to the file.
const TAIL_CAP: usize = 1024;
/// Largest gap of holes a recovered record may open. A record's queue offset is not covered by
/// its CRC, so a damaged one must not make the queue allocate billions of holes.
const MAX_GAP: u64 = 1 << 16;

/// One consume-queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CqEntry {
    pub(crate) phys: u64,
    pub(crate) size: u32,
    pub(crate) tag_code: i64,
}

impl CqEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.phys.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.tag_code.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        let mut phys = [0u8; 8];
        let mut size = [0u8; 4];
        let mut tag = [0u8; 8];
        if b.len() >= ENTRY_SIZE {
            phys.copy_from_slice(&b[0..8]);
            size.copy_from_slice(&b[8..12]);
            tag.copy_from_slice(&b[12..20]);
        }
        Self {
            phys: u64::from_be_bytes(phys),
            size: u32::from_be_bytes(size),
            tag_code: i64::from_be_bytes(tag),
        }
    }

    /// A hole left where a record was lost.
    pub(crate) fn is_hole(&self) -> bool {
        self.size == 0
    }
}

#[derive(Debug)]
struct CqFile {
    first: u64,
    file: DataFile,
}

#[derive(Debug, Default)]
struct CqState {
    files: Vec<Arc<CqFile>>,
    /// Entries below this offset are written to files.
    persisted: u64,
    /// Entries `[persisted, persisted + tail.len())`.
    tail: Vec<CqEntry>,
    /// Files written since their last fsync.
    unsynced: Vec<Arc<CqFile>>,
}

/// One queue's index.
#[derive(Debug)]
pub(crate) struct ConsumeQueue {
    pub(crate) topic: String,
    pub(crate) queue_id: i32,
    dir: PathBuf,
    per_file: u64,
    state: Mutex<CqState>,
    /// Next offset to be assigned (= max offset).
    next: AtomicU64,
    /// Lowest offset still readable (moves with retention).
    min: AtomicU64,
    /// Store timestamp of the newest message (ms), for statistics.
    last_store_ms: AtomicU64,
}

impl ConsumeQueue {
    /// Opens (or starts) the queue stored in `dir`.
    pub(crate) fn open(dir: PathBuf, topic: String, queue_id: i32, per_file: u64) -> Result<Self> {
        let mut state = CqState::default();
        for (first, path) in fsutil::list_offset_files(&dir, None)? {
            state.files.push(Arc::new(CqFile {
                first,
                file: DataFile::open_rw(&path)?,
            }));
        }
        if let Some(last) = state.files.last() {
            let whole = last.file.len()? / ENTRY_SIZE as u64;
            state.persisted = last.first + whole.min(per_file);
        }
        let min = state.files.first().map_or(0, |f| f.first);
        let q = Self {
            topic,
            queue_id,
            dir,
            per_file,
            next: AtomicU64::new(state.persisted),
            min: AtomicU64::new(min),
            last_store_ms: AtomicU64::new(0),
            state: Mutex::new(state),
        };
        Ok(q)
    }

    fn lock(&self) -> Result<MutexGuard<'_, CqState>> {
        self.state.lock().map_err(|_| StoreError::Closed)
    }

    /// Next offset to be assigned; also the queue's max offset.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    pub(crate) fn min_offset(&self) -> u64 {
        self.min.load(Ordering::Acquire).min(self.next_offset())
    }

    pub(crate) fn last_store_ms(&self) -> u64 {
        self.last_store_ms.load(Ordering::Relaxed)
    }

    /// Records the store time of the newest message when it is learnt after a restart.
    pub(crate) fn note_store_ms(&self, ms: i64) {
        let ms = u64::try_from(ms).unwrap_or(0);
        let _ = self
            .last_store_ms
            .compare_exchange(0, ms, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Adds the entry for queue offset `qoff`. Offsets below the next one are ignored (already
    /// there); a gap above it is filled with holes. Called under the store's writer lock.
    pub(crate) fn push(&self, qoff: u64, entry: CqEntry, store_ms: i64) -> Result<()> {
        let mut st = self.lock()?;
        let next = st.persisted + st.tail.len() as u64;
        if qoff < next {
            tracing::warn!(topic = %self.topic, queue = self.queue_id, qoff, next, "duplicate consume-queue entry ignored");
            return Ok(());
        }
        if qoff - next > MAX_GAP {
            tracing::error!(topic = %self.topic, queue = self.queue_id, qoff, next, phys = entry.phys, "implausible queue offset in a record; entry skipped");
            return Ok(());
        }
        for _ in next..qoff {
            st.tail.push(CqEntry::default());
            if st.tail.len() >= TAIL_CAP {
                self.write_tail(&mut st)?;
            }
        }
        st.tail.push(entry);
        self.last_store_ms
            .store(u64::try_from(store_ms).unwrap_or(0), Ordering::Relaxed);
        self.next.store(qoff + 1, Ordering::Release);
        if st.tail.len() >= TAIL_CAP {
            self.write_tail(&mut st)?;
        }
        Ok(())
    }

    fn file_for(&self, st: &mut CqState, qoff: u64) -> Result<Arc<CqFile>> {
        let first = qoff - qoff % self.per_file;
        if let Some(f) = st.files.iter().rev().find(|f| f.first == first) {
            return Ok(f.clone());
        }
        fsutil::create_dir(&self.dir)?;
        let f = Arc::new(CqFile {
            first,
            file: DataFile::open_rw(&self.dir.join(fsutil::offset_name(first)))?,
        });
        fsutil::sync_dir(&self.dir)?;
        st.files.push(f.clone());
        st.files.sort_by_key(|f| f.first);
        Ok(f)
    }

    /// Writes the in-memory tail to the files (no fsync).
    fn write_tail(&self, st: &mut CqState) -> Result<()> {
        let mut off = st.persisted;
        let tail = std::mem::take(&mut st.tail);
        let mut i = 0;
        let mut buf = Vec::with_capacity(tail.len() * ENTRY_SIZE);
        while i < tail.len() {
            let file = self.file_for(st, off)?;
            let room = usize::try_from(file.first + self.per_file - off).unwrap_or(usize::MAX);
            let n = room.min(tail.len() - i);
            buf.clear();
            tail[i..i + n].iter().for_each(|e| e.encode(&mut buf));
            file.file
                .write_at(&buf, (off - file.first) * ENTRY_SIZE as u64)?;
            if !st.unsynced.iter().any(|f| Arc::ptr_eq(f, &file)) {
                st.unsynced.push(file);
            }
            off += n as u64;
            i += n;
        }
        st.persisted = off;
        Ok(())
    }

    /// Writes the tail and fsyncs every file written since the last sync.
    pub(crate) fn sync(&self) -> Result<()> {
        let unsynced = {
            let mut st = self.lock()?;
            self.write_tail(&mut st)?;
            std::mem::take(&mut st.unsynced)
        };
        unsynced.iter().try_for_each(|f| f.file.sync_data())
    }

    /// Reads up to `n` entries starting at `from` (fewer at the end of the queue).
    pub(crate) fn entries(&self, from: u64, n: usize) -> Result<Vec<CqEntry>> {
        let st = self.lock()?;
        let end = (st.persisted + st.tail.len() as u64).min(from.saturating_add(n as u64));
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(from)).unwrap_or(0));
        let mut off = from;
        while off < end.min(st.persisted) {
            let first = off - off % self.per_file;
            let Some(file) = st.files.iter().find(|f| f.first == first) else {
                // The file was deleted by retention; report holes so the reader moves on.
                out.push(CqEntry::default());
                off += 1;
                continue;
            };
            let stop = end.min(st.persisted).min(first + self.per_file);
            let mut buf = vec![0u8; usize::try_from(stop - off).unwrap_or(0) * ENTRY_SIZE];
            let got = file
                .file
                .read_at(&mut buf, (off - first) * ENTRY_SIZE as u64)?;
            buf.truncate(got - got % ENTRY_SIZE);
            if buf.is_empty() {
                break;
            }
            out.extend(buf.chunks_exact(ENTRY_SIZE).map(CqEntry::decode));
            off += (buf.len() / ENTRY_SIZE) as u64;
        }
        if off >= st.persisted && off < end {
            let skip = usize::try_from(off - st.persisted).unwrap_or(usize::MAX);
            let take = usize::try_from(end - off).unwrap_or(0);
            out.extend(st.tail.iter().skip(skip).take(take));
        }
        Ok(out)
    }

    /// Recovery: drops every entry whose record starts at or after `phys_limit`.
    pub(crate) fn truncate_from_phys(&self, phys_limit: u64) -> Result<()> {
        let mut keep = self.next_offset();
        let min = self.min_offset();
        const STEP: usize = 4096;
        'outer: while keep > min {
            let from = keep.saturating_sub(STEP as u64).max(min);
            let entries = self.entries(from, usize::try_from(keep - from).unwrap_or(STEP))?;
            for (i, e) in entries.iter().enumerate().rev() {
                if !e.is_hole() && e.phys < phys_limit {
                    keep = from + i as u64 + 1;
                    break 'outer;
                }
            }
            keep = from;
        }
        self.truncate_to(keep)
    }

    /// Keeps entries below `len` only.
    fn truncate_to(&self, len: u64) -> Result<()> {
        let mut st = self.lock()?;
        self.write_tail(&mut st)?;
        let mut removed = Vec::new();
        // A file starting exactly at `len` is kept (emptied): its name records the next offset.
        while st.files.len() > 1 && st.files.last().is_some_and(|f| f.first > len) {
            if let Some(f) = st.files.pop() {
                removed.push(f);
            }
        }
        for f in &removed {
            fsutil::remove_file(&f.file.path)?;
        }
        if let Some(f) = st.files.last() {
            if len >= f.first {
                f.file.truncate((len - f.first) * ENTRY_SIZE as u64)?;
                f.file.sync_data()?;
            }
        }
        st.unsynced
            .retain(|u| !removed.iter().any(|r| Arc::ptr_eq(r, u)));
        st.persisted = len;
        self.next.store(len, Ordering::Release);
        if self.min.load(Ordering::Acquire) > len {
            self.min.store(len, Ordering::Release);
        }
        Ok(())
    }

    /// The first entry in `[from, to)` that is not a hole.
    fn first_real_entry(&self, mut from: u64, to: u64) -> Result<Option<(u64, CqEntry)>> {
        while from < to {
            let n = usize::try_from((to - from).min(256)).unwrap_or(256);
            let entries = self.entries(from, n)?;
            if entries.is_empty() {
                break;
            }
            if let Some(i) = entries.iter().position(|e| !e.is_hole()) {
                return Ok(Some((from + i as u64, entries[i])));
            }
            from += entries.len() as u64;
        }
        Ok(None)
    }

    /// Retention: the log now starts at `log_min`; move the min offset past entries before it
    /// and delete files that hold only such entries.
    pub(crate) fn apply_log_min(&self, log_min: u64) -> Result<()> {
        let (mut lo, mut hi) = (self.min_offset(), self.next_offset());
        // The first real entry at or after `hi`, once `hi` has moved.
        let mut first_kept = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // A hole says nothing: decide by the first real entry at or after `mid`.
            match self.first_real_entry(mid, hi)? {
                Some((at, e)) if e.phys < log_min => lo = at + 1,
                found => {
                    // `[mid, hi)` holds only holes when nothing was found.
                    first_kept = found.map(|(at, _)| at).or(first_kept);
                    hi = mid;
                }
            }
        }
        // Holes before the first entry the log still has stand for records lost with the
        // deleted segments (recovery could not replay them): the queue starts after them.
        let lo = first_kept.unwrap_or(lo);
        self.min.store(lo, Ordering::Release);
        let mut st = self.lock()?;
        // The last file always stays: its name and length record the queue's next offset.
        let keep_from = st.files.last().map_or(0, |f| f.first);
        let expired = |f: &Arc<CqFile>| f.first + self.per_file <= lo && f.first < keep_from;
        let doomed: Vec<_> = st.files.iter().filter(|f| expired(f)).cloned().collect();
        st.files.retain(|f| !expired(f));
        st.unsynced
            .retain(|u| !doomed.iter().any(|d| Arc::ptr_eq(d, u)));
        drop(st);
        for f in doomed {
            fsutil::remove_file(&f.file.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_offset_moves_past_holes_left_by_deleted_records() {
        let dir = tempfile::tempdir().unwrap();
        let q = ConsumeQueue::open(dir.path().to_path_buf(), "T".into(), 0, 4).unwrap();
        let entry = |phys| CqEntry {
            phys,
            size: 10,
            tag_code: 0,
        };
        // Offsets 0-2 before the log's start, 3-5 lost (holes), 6-7 in the log.
        for (qoff, phys) in [(0, 0), (1, 10), (2, 20), (6, 100), (7, 110)] {
            q.push(qoff, entry(phys), 0).unwrap();
        }
        q.apply_log_min(50).unwrap();
        assert_eq!((q.min_offset(), q.next_offset()), (6, 8));
        // Nothing moves while the first entry is still in the log.
        q.apply_log_min(100).unwrap();
        assert_eq!(q.min_offset(), 6);
        q.apply_log_min(105).unwrap();
        assert_eq!(q.min_offset(), 7);
    }
}
