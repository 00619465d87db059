//! The active segment's zeroing thread (sync flush only).
//!
//! An fsync that covers appends into never-written space also writes the file system's record
//! of the blocks it had to allocate for them (block bitmap, extent tree, inode), and on this
//! kind of disk that costs more than the records: fdatasync of 32 appended 1 KiB records ran at
//! about 5,000/s on a growing file and about 8,000–9,000/s on space written before
//! (docs/benchmarks.md). So in sync mode a *zeroing thread* keeps the stretch just ahead of the
//! writer written with zeros and written back (`sync_file_range`), one chunk at a time, and the
//! writer's `pwrite`s overwrite allocated, clean blocks: each fsync then writes the records'
//! pages and nothing else. Chunks are small (1 MiB): a big one under writeback makes the
//! flusher's fsync wait for it.
//!
//! The file grows past the records as it is zeroed; recovery takes zeros after the last record
//! for the clean end, as it does for a mapped segment's preallocated tail, and a sealed segment
//! is cut back to its records. The thread never writes below the writer's position: the writer
//! copies below `zeroed` without coordination, and above it only under `gate`, which the thread
//! holds while it writes a chunk.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Segment;
use crate::{Result, StoreError};

/// Zeroing granule.
const CHUNK: u64 = 1 << 20;
/// How far ahead of the writer the thread keeps space zeroed.
const AHEAD: u64 = 8 << 20;
/// Zeros go in with writes of this size: the page cache sizes its folios by the write, and the
/// writer's small writes into a large folio walk all of its blocks (and hold the inode lock
/// for as long as a big write takes).
const PIECE: usize = 16 << 10;

#[derive(Debug)]
struct Shared {
    seg: Arc<Segment>,
    /// The segment's size: nothing is zeroed past it.
    limit: u64,
    /// Offsets below this are allocated: zeroed, written by the writer, or left from a recycled
    /// file.
    zeroed: AtomicU64,
    /// The writer's offset in the segment.
    written: AtomicU64,
    /// Held by the thread while it writes a chunk, and by a writer that writes above `zeroed`.
    gate: Mutex<()>,
    stop: AtomicBool,
}

/// The zeroing thread of one segment; stopped when dropped.
#[derive(Debug)]
pub(crate) struct ZeroAhead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ZeroAhead {
    /// Starts zeroing `seg` (of `size` bytes) ahead of a writer at offset `pos`. What the file
    /// already holds past `pos` (a zeroed tail, a recycled file's old records) needs no zeroing.
    pub(crate) fn start(seg: &Arc<Segment>, size: u64, pos: u64) -> Result<Self> {
        let mut z = Self::idle(seg, size, pos);
        z.shared
            .zeroed
            .fetch_max(seg.file.data_end()?.min(size), Ordering::AcqRel);
        let t = Arc::clone(&z.shared);
        z.thread = Some(
            std::thread::Builder::new()
                .name("catmq-zero".into())
                .spawn(move || zero_loop(&t))
                .map_err(|e| StoreError::io("spawn zeroing thread", &seg.file.path, e))?,
        );
        Ok(z)
    }

    /// The writer's side without the thread.
    fn idle(seg: &Arc<Segment>, size: u64, pos: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                seg: Arc::clone(seg),
                limit: size,
                zeroed: AtomicU64::new(pos),
                written: AtomicU64::new(pos),
                gate: Mutex::new(()),
                stop: AtomicBool::new(false),
            }),
            thread: None,
        }
    }

    /// Writes `data` at offset `off` of the segment (with `pwrite`).
    pub(crate) fn write(&self, off: u64, data: &[u8]) -> Result<()> {
        let s = &self.shared;
        let end = off + data.len() as u64;
        // Ahead of the zeroing (it is behind, stopped or done): wait out a chunk being zeroed and
        // move the writer's mark before the thread may look again.
        let ahead = end > s.zeroed.load(Ordering::Acquire);
        let gate = if ahead {
            Some(s.gate.lock().map_err(|_| StoreError::Closed)?)
        } else {
            None
        };
        s.seg.file.write_at(data, off)?;
        // Only forward: a batch's second write (its first record's magic) lies below its end.
        let before = s.written.fetch_max(end, Ordering::AcqRel);
        drop(gate);
        if ahead || before / CHUNK < end / CHUNK {
            self.wake();
        }
        Ok(())
    }

    fn wake(&self) {
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for ZeroAhead {
    fn drop(&mut self) {
        super::stop_helper(&self.shared.stop, &mut self.thread);
    }
}

/// Keeps `[written, written + AHEAD)` zeroed and written back, a chunk at a time.
fn zero_loop(s: &Shared) {
    let zeros = vec![0u8; PIECE];
    while !s.stop.load(Ordering::Acquire) {
        let written = s.written.load(Ordering::Acquire);
        let zeroed = s.zeroed.load(Ordering::Acquire);
        if zeroed >= s.limit || zeroed >= written.saturating_add(AHEAD) {
            std::thread::park_timeout(Duration::from_millis(100));
            continue;
        }
        match zero_chunk(s, &zeros) {
            Ok(Some((from, to))) => write_back(s, from, to),
            Ok(None) => {}
            Err(e) => {
                // The writer allocates as it writes from here on; a full disk is its error.
                tracing::debug!(error = %e, "zeroing ahead of the writer stopped");
                return;
            }
        }
    }
}

/// Zeroes from the higher of `zeroed` and `written` to the next chunk boundary; the range
/// zeroed, if any.
fn zero_chunk(s: &Shared, zeros: &[u8]) -> Result<Option<(u64, u64)>> {
    let _gate = s.gate.lock().map_err(|_| StoreError::Closed)?;
    let from = s
        .zeroed
        .load(Ordering::Acquire)
        .max(s.written.load(Ordering::Acquire));
    let to = ((from / CHUNK + 1) * CHUNK).min(s.limit);
    if from >= to {
        s.zeroed.fetch_max(s.limit, Ordering::AcqRel);
        return Ok(None);
    }
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(zeros.len(), |n| n.min(zeros.len()));
        s.seg.file.write_at(&zeros[..n], at)?;
        at += n as u64;
    }
    s.zeroed.fetch_max(to, Ordering::AcqRel);
    Ok(Some((from, to)))
}

/// Writes `[from, to)` back and waits, so the blocks are allocated and the pages clean before
/// the writer gets there. Best effort: a failure here surfaces in the flusher's next fsync.
fn write_back(s: &Shared, from: u64, to: u64) {
    let (Ok(off), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: sync_file_range takes a file descriptor and plain integers; the descriptor
    // belongs to the segment, which `s` keeps open.
    let rc = unsafe { libc::sync_file_range(s.seg.file.file.as_raw_fd(), off, len, flags) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "sync_file_range failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit_log::test_segment;

    #[test]
    fn zeroing_starts_after_everything_the_writer_wrote() {
        let size = 4u64 << 20;
        let (_dir, seg) = test_segment(size);
        let z = ZeroAhead::idle(&seg, size, 100);
        let rec = vec![9u8; 1190];
        // Ahead of the zeroing: a batch's records, then its first magic again, lower down.
        z.write(100, &rec).unwrap();
        z.write(104, &rec[4..8]).unwrap();
        let (from, to) = zero_chunk(&z.shared, &[0u8; PIECE]).unwrap().unwrap();
        assert_eq!((from, to), (1290, CHUNK));
        let mut back = vec![0u8; rec.len()];
        seg.file.read_at(&mut back, 100).unwrap();
        assert_eq!(back, rec);
        // Below the zeroed mark the writer needs no gate; the next chunk starts at the mark.
        z.write(1290, &rec).unwrap();
        assert_eq!(
            zero_chunk(&z.shared, &[0u8; PIECE]).unwrap(),
            Some((CHUNK, 2 * CHUNK))
        );
        seg.file.read_at(&mut back, 1290).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn the_writer_and_the_zeroing_never_overwrite_each_other() {
        let size = 24u64 << 20;
        let (_dir, seg) = test_segment(size);
        let z = ZeroAhead::start(&seg, size, 0).unwrap();
        let rec: Vec<u8> = (0..1190u32).map(|i| (i % 251 + 1) as u8).collect();
        let mut off = 0u64;
        while off + rec.len() as u64 <= size - (2 << 20) {
            // As a batch is written: the records, then a word inside the first one again.
            z.write(off, &rec).unwrap();
            z.write(off + 4, &rec[4..8]).unwrap();
            off += rec.len() as u64;
        }
        // The thread zeroes ahead of the writer, up to the segment's end.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while z.shared.zeroed.load(Ordering::Acquire) < size {
            assert!(
                std::time::Instant::now() < deadline,
                "zeroing never finished"
            );
            z.wake();
            std::thread::yield_now();
        }
        drop(z);
        assert_eq!(seg.file.len().unwrap(), size);
        let mut back = vec![0u8; size as usize];
        seg.file.read_at(&mut back, 0).unwrap();
        for (i, chunk) in back[..off as usize].chunks(rec.len()).enumerate() {
            assert_eq!(chunk, &rec[..], "record {i} damaged");
        }
        assert!(back[off as usize..].iter().all(|b| *b == 0));
    }
}
