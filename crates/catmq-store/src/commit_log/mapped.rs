//! The active segment's write mapping.
//!
//! Appending through a shared mapping of a preallocated file costs a `memcpy` instead of a
//! `pwrite` per append; the written bytes are in the page cache at once, so readers (`pread`)
//! and a process crash see exactly what a write would have left. The file is `fallocate`d to
//! its full size first, so a page fault can never need a block the disk does not have (which
//! would raise SIGBUS): a full disk makes the segment roll fail with a clean error instead.
//! Pages are prefaulted ahead of the writer and released behind it, so the process RSS stays
//! at a few MiB whatever the segment size.
#![allow(unsafe_code)]

use memmap2::{Advice, MmapMut, MmapOptions, UncheckedAdvice};

use super::Segment;
use crate::{Result, StoreError};

/// How far ahead of the writer pages are prefaulted, and the release granule behind it.
const CHUNK: usize = 4 << 20;

/// A writable mapping of a whole segment file.
pub(crate) struct WriteMap {
    map: MmapMut,
    /// Pages below this offset were prefaulted.
    prefaulted: usize,
    /// Pages below this offset were released.
    released: usize,
}

impl std::fmt::Debug for WriteMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteMap")
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl WriteMap {
    /// Preallocates `seg` to `size` bytes and maps it for writing. `Ok(None)` when the file
    /// system cannot preallocate: the caller then writes with `pwrite`.
    pub(crate) fn open(seg: &Segment, size: u64) -> Result<Option<Self>> {
        let path = &seg.file.path;
        match rustix::fs::fallocate(&seg.file.file, rustix::fs::FallocateFlags::empty(), 0, size) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::NOSPC => {
                return Err(StoreError::io("preallocate", path, e.into()));
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot preallocate the segment; writing with pwrite");
                return Ok(None);
            }
        }
        let len = usize::try_from(size).map_err(|_| {
            StoreError::Config(format!("segment size {size} does not fit in memory"))
        })?;
        // SAFETY: the mapping is of a file this process created and holds an exclusive lock on
        // (`<dir>/lock`); nothing else truncates or writes it while it is mapped. The file was
        // just preallocated to `len` bytes, so every page of the mapping is backed.
        let map = unsafe { MmapOptions::new().len(len).map_mut(&seg.file.file) }
            .map_err(|e| StoreError::io("mmap", path, e))?;
        Ok(Some(Self {
            map,
            prefaulted: 0,
            released: 0,
        }))
    }

    /// Copies `data` to offset `off` of the segment.
    pub(crate) fn write(&mut self, off: u64, data: &[u8]) -> Result<()> {
        let start = usize::try_from(off).unwrap_or(usize::MAX);
        let end = start.saturating_add(data.len());
        self.prefault_to(end);
        let dst = self
            .map
            .get_mut(start..end)
            .ok_or_else(|| StoreError::Corrupt {
                what: "commit log mapping",
                path: std::path::PathBuf::new(),
                pos: off,
                detail: format!("write of {} bytes past the mapping of {}", data.len(), end),
            })?;
        dst.copy_from_slice(data);
        self.release_before(start);
        Ok(())
    }

    /// Prefaults whole chunks until `end` is covered (plus one chunk of lead).
    fn prefault_to(&mut self, end: usize) {
        while self.prefaulted < end.saturating_add(CHUNK) && self.prefaulted < self.map.len() {
            let len = CHUNK.min(self.map.len() - self.prefaulted);
            // A failed prefault only means the page faults happen on the copy instead.
            let _ = self
                .map
                .advise_range(Advice::PopulateWrite, self.prefaulted, len);
            self.prefaulted += len;
        }
    }

    /// Releases whole chunks that lie entirely before `pos` minus one chunk.
    fn release_before(&mut self, pos: usize) {
        while self.released + 2 * CHUNK <= pos {
            // SAFETY: MADV_DONTNEED on a shared file mapping only unmaps the pages; dirty
            // pages keep their data in the page cache and are written back as usual. The range
            // lies wholly before the write position, and nothing in this process reads the
            // mapping (readers use pread), so no reference into it is outstanding.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, self.released, CHUNK)
            };
            self.released += CHUNK;
        }
    }
}
