//! The commit log: segmented, append-only files of stored-message records.
//!
//! Segment files live in `commitlog/` and are named by their base offset (20 digits). A segment
//! covers `[base, base + segment_size)`; records never cross a segment. The active segment's file
//! may run on past its records (a mapped segment is extended to full size, a sync-mode segment is
//! zeroed ahead of the writer): zeros after the last record are its clean end, and a segment is cut
//! back to its records when the next one starts. Physical offsets are absolute positions in this
//! address space.

mod mapped;
mod scan;
mod zero_ahead;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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
}

impl CommitLog {
    /// Opens the segments under `dir`, creating the first one if there is none.
    pub(crate) fn open(dir: &Path, segment_size: u64) -> Result<Self> {
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
        let log = Self {
            dir: dir.to_path_buf(),
            segment_size,
            segments: RwLock::new(segments),
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

    /// Creates the segment starting at `base` and makes its directory entry durable.
    pub(crate) fn create_segment(&self, base: u64) -> Result<Arc<Segment>> {
        let path = self.dir.join(fsutil::offset_name(base));
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

    /// Deletes the oldest segment, unless it is the only one. Returns its base and end.
    pub(crate) fn remove_oldest(&self) -> Result<Option<(u64, u64)>> {
        let removed = {
            let mut segs = self.segments.write().map_err(|_| StoreError::Closed)?;
            if segs.len() < 2 {
                return Ok(None);
            }
            segs.remove(0)
        };
        fsutil::remove_file(&removed.file.path)?;
        fsutil::sync_dir(&self.dir)?;
        Ok(Some((removed.base, removed.base + self.segment_size)))
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
    if !view.crc_ok() {
        return Err(format!(
            "body CRC mismatch (stored {:#x})",
            view.stored_crc()
        ));
    }
    if u64::try_from(view.physical_offset()).ok() != Some(pos) {
        return Err(format!(
            "record says it is at {}, found at {pos}",
            view.physical_offset()
        ));
    }
    Ok(view)
}

/// A fresh segment of `size` bytes at position 0 in a temporary directory (kept alive by the
/// returned guard), for the segment writers' tests.
#[cfg(test)]
pub(crate) fn test_segment(size: u64) -> (tempfile::TempDir, Arc<Segment>) {
    let dir = tempfile::tempdir().unwrap();
    let log = CommitLog::open(dir.path(), size).unwrap();
    let seg = log.create_segment(0).unwrap();
    (dir, seg)
}
