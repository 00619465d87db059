//! The active segment's write mapping (async flush only).
//!
//! Appending through a shared mapping costs a `memcpy` instead of a `pwrite` per append; the
//! written bytes are in the page cache at once, so readers (`pread`) and a process crash see
//! exactly what a write would have left. What a buffered write costs the kernel (allocating and
//! zeroing page-cache pages, the file system's delayed-allocation reservation) happens instead
//! when a page is first touched for writing, so a *prefault thread* does that
//! (`MADV_POPULATE_WRITE`) a few MiB ahead of the writer, on the other core, and releases the
//! mapping behind it (`MADV_DONTNEED`; dirty pages stay in the page cache and are written back
//! as usual), so the process RSS stays at a few MiB whatever the segment size.
//!
//! The file is extended (sparse) to the full segment size. A page fault on a sparse page that
//! needs a block the disk does not have would raise SIGBUS, so the writer never copies into a
//! page that was not prefaulted successfully: it prefaults the range itself when the thread is
//! behind, and a failed prefault (a full disk) is an error for that append, not a signal.
//! Prefaulted pages have their blocks reserved, so the copy cannot need a new one.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use memmap2::{Advice, MmapOptions, MmapRaw, UncheckedAdvice};

use super::Segment;
use crate::{Result, StoreError};

/// Prefault and release granule.
const CHUNK: usize = 2 << 20;
/// How far ahead of the writer the prefault thread keeps pages ready.
const AHEAD: usize = 8 << 20;
/// When the writer has to prefault for itself, it does so up to a multiple of this.
const SELF_STEP: usize = 256 << 10;
const PAGE: usize = 4096;

/// State shared by the writer and the prefault thread.
#[derive(Debug)]
struct Shared {
    map: MmapRaw,
    /// Bytes below this offset were prefaulted successfully.
    ready: AtomicUsize,
    /// The writer's position: bytes below it are written and never touched again.
    written: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn populate(&self, off: usize, len: usize) -> std::io::Result<()> {
        self.map.advise_range(Advice::PopulateWrite, off, len)
    }
}

/// A writable mapping of a whole segment file, with its prefault thread.
#[derive(Debug)]
pub(crate) struct WriteMap {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    path: std::path::PathBuf,
}

impl WriteMap {
    /// Extends `seg` to `size` bytes (sparse) and maps it for writing, with the writer at `pos`.
    /// `Ok(None)` when the segment cannot be mapped: the caller then writes with `pwrite`.
    pub(crate) fn open(seg: &Segment, size: u64, pos: u64) -> Result<Option<Self>> {
        let path = seg.file.path.clone();
        let (Ok(len), Ok(pos)) = (usize::try_from(size), usize::try_from(pos)) else {
            return Ok(None);
        };
        let regular = seg.file.file.metadata().is_ok_and(|m| m.is_file());
        let extended = regular
            && match seg.file.len() {
                Ok(now) if now >= size => Ok(()),
                _ => seg.file.truncate(size),
            }
            .is_ok();
        if !extended {
            tracing::warn!(path = %path.display(), "cannot extend the segment for mapping; writing with pwrite");
            return Ok(None);
        }
        let map = match MmapOptions::new().len(len).map_raw(&seg.file.file) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot map the segment; writing with pwrite");
                return Ok(None);
            }
        };
        let page_start = pos & !(PAGE - 1);
        let shared = Arc::new(Shared {
            map,
            ready: AtomicUsize::new(page_start),
            written: AtomicUsize::new(pos),
            stop: AtomicBool::new(false),
        });
        let t = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("catmq-prefault".into())
            .spawn(move || prefault_loop(&t, page_start))
            .map_err(|e| StoreError::io("spawn prefault thread", &path, e))?;
        Ok(Some(Self {
            shared,
            thread: Some(thread),
            path,
        }))
    }

    /// Copies `data` to offset `off` of the segment.
    pub(crate) fn write(&mut self, off: u64, data: &[u8]) -> Result<()> {
        let s = &self.shared;
        let start = usize::try_from(off).unwrap_or(usize::MAX);
        let end = start.saturating_add(data.len());
        if end > s.map.len() {
            return Err(StoreError::Corrupt {
                what: "commit log mapping",
                path: self.path.clone(),
                pos: off,
                detail: format!("write of {} bytes past the mapping", data.len()),
            });
        }
        if end > s.ready.load(Ordering::Acquire) {
            // The prefault thread is behind (or failed): make the pages safe to copy into here,
            // up to the next step boundary so the next appends need not do it again.
            let upto = end.next_multiple_of(SELF_STEP).min(s.map.len());
            s.populate(start, upto - start)
                .map_err(|e| StoreError::io("prefault", &self.path, e))?;
            s.ready.fetch_max(upto, Ordering::AcqRel);
        }
        // SAFETY: `[start, end)` lies within the mapping (checked above) and its pages were
        // prefaulted for writing, so the copy cannot fault on a missing block. Only this writer
        // (serialized by the store's writer lock) stores into the mapping, and nothing holds a
        // reference into it: the prefault thread only calls madvise, on other ranges or with
        // POPULATE_WRITE which does not change contents, and readers use `pread`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), s.map.as_mut_ptr().add(start), data.len());
        }
        let before = s.written.load(Ordering::Relaxed);
        if end > before {
            s.written.store(end, Ordering::Release);
            if end / CHUNK != before / CHUNK {
                if let Some(t) = &self.thread {
                    t.thread().unpark();
                }
            }
        }
        Ok(())
    }
}

impl Drop for WriteMap {
    fn drop(&mut self) {
        super::stop_helper(&self.shared.stop, &mut self.thread);
    }
}

/// Keeps `[written, written + AHEAD)` prefaulted and releases whole chunks behind the writer.
fn prefault_loop(s: &Shared, start: usize) {
    let len = s.map.len();
    let mut released = start - start % CHUNK;
    while !s.stop.load(Ordering::Acquire) {
        let written = s.written.load(Ordering::Acquire);
        // Release first: a writer that keeps the thread busy populating must not make the
        // mapping (and the process RSS) grow with the segment.
        released = release_behind(s, released, written);
        // Everything below the writer was prefaulted (by the writer itself if this thread was
        // behind): never populate it again, it may have been released already.
        let ready = s.ready.load(Ordering::Acquire).max(written & !(PAGE - 1));
        if ready < len && ready < written.saturating_add(AHEAD) {
            let n = (CHUNK - ready % CHUNK).min(len - ready);
            if let Err(e) = s.populate(ready, n) {
                // The writer prefaults for itself from here on and reports the error.
                tracing::debug!(error = %e, "prefault failed");
                return;
            }
            s.ready.fetch_max(ready + n, Ordering::AcqRel);
            continue;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// Unmaps whole chunks from `released` up to a chunk behind `written`; returns the new mark.
fn release_behind(s: &Shared, mut released: usize, written: usize) -> usize {
    while released + 2 * CHUNK <= written {
        // SAFETY: MADV_DONTNEED on a shared file mapping only unmaps the pages; dirty pages
        // keep their data in the page cache and are written back as usual. The range lies
        // wholly before the writer's position, which only grows, and nothing in the process
        // holds a reference into it (readers use pread).
        let _ = unsafe {
            s.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, released, CHUNK)
        };
        released += CHUNK;
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit_log::test_segment;

    /// Resident kilobytes of the mapping that starts at `addr`, from `/proc/self/smaps`.
    fn resident_kb(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let head = format!("{addr:x}-");
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
        lines.next()?;
        lines
            .find_map(|l| l.strip_prefix("Rss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    #[test]
    fn the_mapping_stays_small_while_the_writer_moves_through_the_segment() {
        let size = 96u64 << 20;
        let (_dir, seg) = test_segment(size);
        let mut map = WriteMap::open(&seg, size, 0).unwrap().unwrap();
        let addr = map.shared.map.as_ptr() as usize;
        let chunk = vec![7u8; 64 << 10];
        let mut off = 0u64;
        while off + chunk.len() as u64 <= size - (8 << 20) {
            map.write(off, &chunk).unwrap();
            off += chunk.len() as u64;
        }
        // The prefault thread releases behind the writer: at most the window ahead, the chunk
        // being written and the one before it stay mapped. Wait for it (bounded).
        let bound_kb = ((AHEAD + 3 * CHUNK) >> 10) as u64;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut rss = resident_kb(addr).unwrap();
        while rss > bound_kb && std::time::Instant::now() < deadline {
            if let Some(t) = &map.thread {
                t.thread().unpark();
            }
            std::thread::yield_now();
            rss = resident_kb(addr).unwrap();
        }
        assert!(
            rss <= bound_kb,
            "{rss} kB of the mapping resident after writing {off} bytes"
        );
        let mut back = vec![0u8; chunk.len()];
        seg.file
            .read_at(&mut back, off - chunk.len() as u64)
            .unwrap();
        assert_eq!(back, chunk);
    }
}
