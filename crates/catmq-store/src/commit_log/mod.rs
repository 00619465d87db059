//! The commit log: segmented, append-only files of stored-message records.
//!
//! Segment files live in `commitlog/` and are named by their base offset (20 digits). A segment
//! covers `[base, base + segment_size)`; records never cross a segment. The active segment's file
//! may run on past its records (a mapped segment is extended to full size, a sync-mode segment is
//! zeroed ahead of the writer): zeros after the last record are its clean end, and a segment is cut
//! back to its records when the next one starts. Physical offsets are absolute positions in this
//! address space.
//!
//! With recycling on (sync flush), the file of a segment that retention deletes is kept as
//! `commitlog/spare` and renamed to the next new segment, so the writer writes over blocks the file
//! already has. Its old records after the new ones never pass as records: each names its own
//! position as its physical offset, and theirs name an older one.

mod mapped;
mod scan;
mod zero_ahead;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use catmq_common::record::{RecordView, MAGIC_PENDING_BATCH};

use crate::fsutil::{self, DataFile};
use crate::{Result, StoreError};

pub(crate) use mapped::WriteMap;
pub(crate) use scan::scan;
pub(crate) use zero_ahead::ZeroAhead;

/// Stops a segment's helper thread: sets its `stop` flag, wakes it and waits for it to end.
fn stop_helper(
    stop: &std::sync::atomic::AtomicBool,
    thread: &mut Option<std::thread::JoinHandle<()>>,
) {
    stop.store(true, std::sync::atomic::Ordering::Release);
    if let Some(t) = thread.take() {
        t.thread().unpark();
        let _ = t.join();
    }
}

/// How the writer puts records into the active segment.
#[derive(Debug)]
pub(crate) enum SegmentWriter {
    /// `pwrite`, allocating as it goes.
    Plain,
    /// A copy into a shared mapping kept prefaulted ahead (async flush).
    Mapped(WriteMap),
    /// `pwrite` over space zeroed ahead (sync flush).
    Zeroed(ZeroAhead),
}

impl SegmentWriter {
    /// Writes `data` at offset `off` of `seg`, the segment this writer was opened for.
    pub(crate) fn write(&mut self, seg: &Segment, off: u64, data: &[u8]) -> Result<()> {
        match self {
            Self::Plain => seg.file.write_at(data, off),
            Self::Mapped(m) => m.write(off, data),
            Self::Zeroed(z) => z.write(off, data),
        }
    }
}

/// One segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base: u64,
    pub(crate) file: DataFile,
}

/// The set of segments. Appending is the engine's job (it holds the writer lock); this type
/// finds, creates, reads, syncs and deletes segments.
#[derive(Debug)]
pub(crate) struct CommitLog {
    dir: PathBuf,
    segment_size: u64,
    segments: RwLock<Vec<Arc<Segment>>>,
    /// Whether a deleted segment's file is kept for the next new segment.
    recycle: bool,
    /// The kept file, if any.
    spare: Mutex<Option<PathBuf>>,
}

/// File name of the kept (spare) segment file.
const SPARE: &str = "spare";

impl CommitLog {
    /// Opens the segments under `dir`, creating the first one if there is none. With `recycle`,
    /// deleted segments' files are reused (see the module documentation).
    pub(crate) fn open(dir: &Path, segment_size: u64, recycle: bool) -> Result<Self> {
        fsutil::create_dir(dir)?;
        let mut segments = Vec::new();
        for (base, path) in fsutil::list_offset_files(dir, None)? {
            if base % segment_size != 0 {
                return Err(StoreError::Config(format!(
                    "segment {} does not start on a multiple of segment_size {segment_size}: \
                     was the store written with another segment size?",
                    path.display()
                )));
            }
            segments.push(Arc::new(Segment {
                base,
                file: DataFile::open_rw(&path)?,
            }));
        }
        let spare = dir.join(SPARE);
        let fits = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.len() <= segment_size);
        let spare = if !spare.exists() {
            None
        } else if recycle && fits(&spare) {
            Some(spare)
        } else {
            fsutil::remove_file(&spare)?;
            None
        };
        let log = Self {
            dir: dir.to_path_buf(),
            segment_size,
            segments: RwLock::new(segments),
            recycle,
            spare: Mutex::new(spare),
        };
        if log.segments_snapshot().is_empty() {
            log.create_segment(0)?;
        }
        Ok(log)
    }

    pub(crate) fn segment_size(&self) -> u64 {
        self.segment_size
    }

    pub(crate) fn segments_snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The last (active) segment.
    pub(crate) fn last(&self) -> Result<Arc<Segment>> {
        self.segments
            .read()
            .ok()
            .and_then(|s| s.last().cloned())
            .ok_or(StoreError::Closed)
    }

    /// The segment holding `pos`.
    pub(crate) fn segment_for(&self, pos: u64) -> Option<Arc<Segment>> {
        let segs = self.segments.read().ok()?;
        let idx = segs.partition_point(|s| s.base <= pos).checked_sub(1)?;
        let seg = segs.get(idx)?;
        (pos < seg.base + self.segment_size).then(|| seg.clone())
    }

    /// Lowest position still stored.
    pub(crate) fn min_pos(&self) -> u64 {
        self.segments
            .read()
            .ok()
            .and_then(|s| s.first().map(|f| f.base))
            .unwrap_or(0)
    }

    /// Creates the segment starting at `base` (from the spare file if there is one) and makes its
    /// directory entry durable.
    pub(crate) fn create_segment(&self, base: u64) -> Result<Arc<Segment>> {
        let path = self.dir.join(fsutil::offset_name(base));
        let spare = self.spare.lock().ok().and_then(|mut s| s.take());
        tracing::debug!(base, recycled = spare.is_some(), "new commit-log segment");
        if let Some(spare) = spare {
            if let Err(e) = std::fs::rename(&spare, &path) {
                tracing::warn!(error = %e, spare = %spare.display(), "reusing the spare segment file failed; starting a new file");
                fsutil::remove_file(&spare)?;
            }
        }
        let seg = Arc::new(Segment {
            base,
            file: DataFile::open_rw(&path)?,
        });
        fsutil::sync_dir(&self.dir)?;
        self.segments
            .write()
            .map_err(|_| StoreError::Closed)?
            .push(seg.clone());
        Ok(seg)
    }

    /// Cuts a segment's file to its data (`len` bytes), dropping the preallocated tail.
    pub(crate) fn seal(&self, seg: &Segment, len: u64) -> Result<()> {
        if seg.file.len()? > len {
            seg.file.truncate(len)?;
        }
        Ok(())
    }

    /// Reads `len` bytes at `pos` (which must lie within one segment).
    pub(crate) fn read(&self, pos: u64, len: usize) -> Result<Bytes> {
        let seg = self.segment_for(pos).ok_or_else(|| self.missing(pos))?;
        let mut buf = BytesMut::zeroed(len);
        let n = seg.file.read_at(&mut buf, pos - seg.base)?;
        if n < len {
            return Err(StoreError::Corrupt {
                what: "commit log",
                path: seg.file.path.clone(),
                pos: pos - seg.base,
                detail: format!("wanted {len} bytes, file has {n}"),
            });
        }
        Ok(buf.freeze())
    }

    /// Reads and checks the record at `pos`.
    pub(crate) fn read_record(&self, pos: u64) -> Result<Bytes> {
        let head = self.read(pos, 4)?;
        let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let size = usize::try_from(size).unwrap_or(0);
        if size < catmq_common::record::MIN_RECORD || size as u64 > self.segment_size {
            return Err(self.corrupt_at(pos, format!("impossible record size {size}")));
        }
        let bytes = self.read(pos, size)?;
        check_record(&bytes, pos).map_err(|d| self.corrupt_at(pos, d))?;
        Ok(bytes)
    }

    pub(crate) fn corrupt_at(&self, pos: u64, detail: String) -> StoreError {
        let (path, off) = match self.segment_for(pos) {
            Some(s) => (s.file.path.clone(), pos - s.base),
            None => (self.dir.clone(), pos),
        };
        StoreError::Corrupt {
            what: "commit log record",
            path,
            pos: off,
            detail,
        }
    }

    fn missing(&self, pos: u64) -> StoreError {
        StoreError::Corrupt {
            what: "commit log",
            path: self.dir.clone(),
            pos,
            detail: "no segment holds this position (deleted by retention?)".into(),
        }
    }

    /// Fsyncs every segment overlapping `[from, to)`.
    pub(crate) fn sync_range(&self, from: u64, to: u64) -> Result<()> {
        for seg in self.segments_snapshot() {
            if seg.base < to && seg.base + self.segment_size > from {
                seg.file.sync_data()?;
            }
        }
        Ok(())
    }

    /// Deletes the oldest segment, unless it is the only one. Returns its base and end. With
    /// `free_space` (retention for disk use) no file is kept as the spare, and a kept spare is
    /// deleted too.
    pub(crate) fn remove_oldest(&self, free_space: bool) -> Result<Option<(u64, u64)>> {
        let removed = {
            let mut segs = self.segments.write().map_err(|_| StoreError::Closed)?;
            if segs.len() < 2 {
                return Ok(None);
            }
            segs.remove(0)
        };
        let range = (removed.base, removed.base + self.segment_size);
        if free_space {
            let spare = self.spare.lock().map_err(|_| StoreError::Closed)?.take();
            for path in spare.iter().chain([&removed.file.path]) {
                fsutil::remove_file(path)?;
            }
        } else if let Some(seg) = self.keep_as_spare(removed)? {
            fsutil::remove_file(&seg.file.path)?;
        }
        fsutil::sync_dir(&self.dir)?;
        Ok(Some(range))
    }

    /// Keeps a deleted segment's file as the spare when recycling is on, no spare is kept yet and
    /// nothing else holds the segment (a reader that still holds it reads it after the delete).
    /// Returns the segment when its file is not kept.
    fn keep_as_spare(&self, seg: Arc<Segment>) -> Result<Option<Arc<Segment>>> {
        if !self.recycle {
            return Ok(Some(seg));
        }
        let mut spare = self.spare.lock().map_err(|_| StoreError::Closed)?;
        if spare.is_some() {
            return Ok(Some(seg));
        }
        let seg = match Arc::try_unwrap(seg) {
            Ok(seg) => seg,
            Err(held) => {
                tracing::debug!(base = held.base, "a deleted segment still read is not kept");
                return Ok(Some(held));
            }
        };
        let (from, to) = (seg.file.path.clone(), self.dir.join(SPARE));
        drop(seg);
        std::fs::rename(&from, &to).map_err(|e| StoreError::io("rename", &from, e))?;
        *spare = Some(to);
        Ok(None)
    }

    /// Removes the segments after the one holding `pos` and truncates that one at `pos`.
    pub(crate) fn truncate_at(&self, pos: u64) -> Result<()> {
        let mut segs = self.segments.write().map_err(|_| StoreError::Closed)?;
        while segs.len() > 1 && segs.last().is_some_and(|s| s.base > pos) {
            if let Some(s) = segs.pop() {
                fsutil::remove_file(&s.file.path)?;
            }
        }
        if let Some(seg) = segs.last() {
            if pos >= seg.base {
                seg.file.truncate(pos - seg.base)?;
                seg.file.sync_data()?;
            }
        }
        fsutil::sync_dir(&self.dir)
    }
}

/// Checks that `buf` starts with a whole, valid record stored at `pos`.
pub(crate) fn check_record(buf: &[u8], pos: u64) -> Result<RecordView<'_>, String> {
    if buf.get(4..8) == Some(&MAGIC_PENDING_BATCH.to_be_bytes()[..]) {
        return Err("first record of an unfinished batch".into());
    }
    let view = RecordView::parse(buf).map_err(|e| e.to_string())?;
    // The position first: it is cheap, and it turns away a recycled file's old records.
    if u64::try_from(view.physical_offset()).ok() != Some(pos) {
        return Err(format!(
            "record says it is at {}, found at {pos}",
            view.physical_offset()
        ));
    }
    if !view.crc_ok() {
        return Err(format!(
            "body CRC mismatch (stored {:#x})",
            view.stored_crc()
        ));
    }
    Ok(view)
}

/// A fresh segment of `size` bytes at position 0 in a temporary directory (kept alive by the
/// returned guard), for the segment writers' tests.
#[cfg(test)]
pub(crate) fn test_segment(size: u64) -> (tempfile::TempDir, Arc<Segment>) {
    let dir = tempfile::tempdir().unwrap();
    let log = CommitLog::open(dir.path(), size, false).unwrap();
    let seg = log.create_segment(0).unwrap();
    (dir, seg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 64 << 10;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_deleted_segment_becomes_the_next_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), SIZE, true).unwrap();
        log.last().unwrap().file.write_at(&[7u8; 5000], 0).unwrap();
        log.create_segment(SIZE).unwrap();
        assert_eq!(log.remove_oldest(false).unwrap(), Some((0, SIZE)));
        assert_eq!(
            names(dir.path()),
            [fsutil::offset_name(SIZE), SPARE.to_string()]
        );
        // The spare survives a reopen, and the next segment is made from it, old bytes and all.
        drop(log);
        let log = CommitLog::open(dir.path(), SIZE, true).unwrap();
        let seg = log.create_segment(2 * SIZE).unwrap();
        assert_eq!(
            names(dir.path()),
            [fsutil::offset_name(SIZE), fsutil::offset_name(2 * SIZE)]
        );
        assert_eq!(seg.file.len().unwrap(), 5000);
        // Only one spare is kept; without recycling a spare left behind is deleted on open.
        log.create_segment(3 * SIZE).unwrap();
        log.remove_oldest(false).unwrap();
        log.remove_oldest(false).unwrap();
        assert_eq!(
            names(dir.path()),
            [fsutil::offset_name(3 * SIZE), SPARE.to_string()]
        );
        drop(log);
        CommitLog::open(dir.path(), SIZE, false).unwrap();
        assert_eq!(names(dir.path()), [fsutil::offset_name(3 * SIZE)]);
    }

    #[test]
    fn a_spare_longer_than_a_segment_is_deleted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(fsutil::offset_name(0)), b"").unwrap();
        std::fs::write(dir.path().join(SPARE), [1u8; 5000]).unwrap();
        drop(CommitLog::open(dir.path(), 8192, true).unwrap());
        assert!(dir.path().join(SPARE).exists());
        drop(CommitLog::open(dir.path(), 4096, true).unwrap());
        assert_eq!(names(dir.path()), [fsutil::offset_name(0)]);
    }

    #[test]
    fn deleting_for_disk_space_keeps_no_spare() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), SIZE, true).unwrap();
        for base in 1..4 {
            log.create_segment(base * SIZE).unwrap();
        }
        log.remove_oldest(false).unwrap();
        assert!(dir.path().join(SPARE).exists());
        log.remove_oldest(true).unwrap();
        assert_eq!(
            names(dir.path()),
            [fsutil::offset_name(2 * SIZE), fsutil::offset_name(3 * SIZE)]
        );
    }

    #[test]
    fn a_segment_a_reader_still_holds_is_deleted_not_recycled() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), SIZE, true).unwrap();
        log.create_segment(SIZE).unwrap();
        let held = log.segment_for(0).unwrap();
        log.remove_oldest(false).unwrap();
        assert_eq!(names(dir.path()), [fsutil::offset_name(SIZE)]);
        // The reader can still read what it holds.
        held.file.write_at(b"x", 0).unwrap();
        let seg = log.create_segment(2 * SIZE).unwrap();
        assert_eq!(seg.file.len().unwrap(), 0);
    }
}
