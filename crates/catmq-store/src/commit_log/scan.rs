//! Sequential scan of the log for recovery: yields valid records, reports corrupt ranges, and
//! finds where the valid log ends.
//!
//! A position holds a valid record when its size, magic, field lengths and body CRC agree and
//! the record names that very position as its physical offset. Bad bytes followed by a valid
//! record in the same segment (or by a later segment) are mid-log corruption: reported with
//! their position and skipped, never served. Bad bytes with nothing valid after them are a torn
//! tail: the log is truncated there.

use catmq_common::record::{
    peek_header, RecordView, MAGIC_PENDING_BATCH, MAGIC_V1, MAGIC_V2, MIN_RECORD,
};

use super::{check_record, CommitLog, Segment};
use crate::Result;

const CHUNK: usize = 8 << 20;

/// What a scan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ScanOutcome {
    /// Position just after the last valid record.
    pub(crate) end: u64,
    /// Corrupt ranges `[from, to)` that were skipped.
    pub(crate) corrupt: Vec<(u64, u64)>,
    /// Where a torn tail was cut off, if one was.
    pub(crate) truncated_at: Option<u64>,
    /// Records found.
    pub(crate) records: u64,
}

/// A window of one segment's bytes, refilled from the file as the scan moves on.
struct Window<'a> {
    seg: &'a Segment,
    len: u64,
    start: u64,
    buf: Vec<u8>,
}

/// Where a file's data ends: the end of its last data region (holes and never-written
/// preallocated space after it read as zeros). The file length where the file system cannot say.
fn data_end(seg: &Segment) -> Result<u64> {
    use rustix::fs::{seek, SeekFrom};
    let len = seg.file.len()?;
    let (mut end, mut off) = (0u64, 0u64);
    while off < len {
        let Ok(data) = seek(&seg.file.file, SeekFrom::Data(off as i64)) else {
            break;
        };
        let hole = seek(&seg.file.file, SeekFrom::Hole(data as i64)).unwrap_or(len);
        if hole <= off {
            return Ok(len);
        }
        end = hole.min(len);
        off = hole;
    }
    Ok(end)
}

impl<'a> Window<'a> {
    fn new(seg: &'a Segment) -> Result<Self> {
        Ok(Self {
            seg,
            len: data_end(seg)?,
            start: 0,
            buf: Vec::new(),
        })
    }

    /// Whether every byte from `pos` to the end of the data is zero: the clean end of the
    /// records in a preallocated segment.
    fn zeros_from(&mut self, mut pos: u64) -> Result<bool> {
        while pos < self.len {
            let n = usize::try_from((self.len - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
            let chunk = self.get(pos, n)?;
            if chunk.is_empty() {
                break;
            }
            if chunk.iter().any(|b| *b != 0) {
                return Ok(false);
            }
            pos += chunk.len() as u64;
        }
        Ok(true)
    }

    /// The bytes at `[pos, pos + need)` (fewer at end of file), refilling when needed.
    fn get(&mut self, pos: u64, need: usize) -> Result<&[u8]> {
        let end = self.start + self.buf.len() as u64;
        if pos < self.start || pos + need as u64 > end {
            let want = need
                .max(CHUNK)
                .min(usize::try_from(self.len.saturating_sub(pos)).unwrap_or(usize::MAX));
            self.buf.resize(want, 0);
            let n = self.seg.file.read_at(&mut self.buf, pos)?;
            self.buf.truncate(n);
            self.start = pos;
        }
        let off = usize::try_from(pos - self.start).unwrap_or(usize::MAX);
        let have = self.buf.len().saturating_sub(off);
        Ok(&self.buf[off.min(self.buf.len())..off.min(self.buf.len()) + have.min(need)])
    }

    /// Checks for a valid record at `pos` (relative to the segment).
    fn valid_at(&mut self, pos: u64, max_size: u64) -> Result<Option<usize>> {
        let base = self.seg.base;
        let head = self.get(pos, 8)?;
        let Some((size, magic)) = peek_header(head) else {
            return Ok(None);
        };
        if magic != MAGIC_V1 && magic != MAGIC_V2 {
            return Ok(None);
        }
        let Ok(size) = usize::try_from(size) else {
            return Ok(None);
        };
        if size < MIN_RECORD || size as u64 > max_size.min(self.len - pos) {
            return Ok(None);
        }
        let bytes = self.get(pos, size)?;
        Ok(check_record(bytes, base + pos).ok().map(|_| size))
    }

    /// The next position after `from` holding a valid record, if any.
    fn resync(&mut self, from: u64, max_size: u64) -> Result<Option<u64>> {
        let mut pos = from + 1;
        while pos + 8 <= self.len {
            let chunk_end = (pos + CHUNK as u64).min(self.len);
            let hay = self
                .get(pos, usize::try_from(chunk_end - pos).unwrap_or(CHUNK))?
                .to_vec();
            for (i, w) in hay.windows(4).enumerate() {
                let m = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                if (m == MAGIC_V1 || m == MAGIC_V2) && pos + i as u64 >= from + 5 {
                    let cand = pos + i as u64 - 4;
                    if self.valid_at(cand, max_size)?.is_some() {
                        return Ok(Some(cand));
                    }
                }
            }
            pos = chunk_end.saturating_sub(3).max(pos + 1);
        }
        Ok(None)
    }
}

/// Scans from `from` to the end of the log, calling `on_record` for each valid record, and cuts
/// off a torn tail.
pub(crate) fn scan(
    log: &CommitLog,
    from: u64,
    mut on_record: impl FnMut(u64, RecordView<'_>) -> Result<()>,
) -> Result<ScanOutcome> {
    let segs = log.segments_snapshot();
    let max_size = log.segment_size();
    let mut out = ScanOutcome {
        end: from,
        ..ScanOutcome::default()
    };
    for (i, seg) in segs.iter().enumerate() {
        if seg.base + max_size <= from {
            continue;
        }
        let has_next = i + 1 < segs.len();
        let mut win = Window::new(seg)?;
        let mut pos = from.saturating_sub(seg.base);
        while pos < win.len {
            if let Some(size) = win.valid_at(pos, max_size)? {
                let bytes = win.get(pos, size)?;
                if let Ok(view) = RecordView::parse(bytes) {
                    on_record(seg.base + pos, view)?;
                }
                out.records += 1;
                pos += size as u64;
                out.end = seg.base + pos;
                continue;
            }
            let pending =
                win.get(pos, 8)?.get(4..8) == Some(&MAGIC_PENDING_BATCH.to_be_bytes()[..]);
            if !pending && win.zeros_from(pos)? {
                // The preallocated rest of the segment: the records end here.
                out.end = seg.base + pos;
                break;
            }
            let next = if pending {
                None
            } else {
                win.resync(pos, max_size)?
            };
            match next {
                Some(n) => {
                    tracing::error!(segment = %seg.file.path.display(), from = pos, to = n, "corrupt bytes in the commit log; skipped");
                    out.corrupt.push((seg.base + pos, seg.base + n));
                    pos = n;
                }
                None if has_next && !pending => {
                    tracing::error!(segment = %seg.file.path.display(), from = pos, to = win.len, "corrupt end of a sealed segment; skipped");
                    out.corrupt.push((seg.base + pos, seg.base + win.len));
                    pos = win.len;
                }
                None => {
                    let at = seg.base + pos;
                    tracing::warn!(segment = %seg.file.path.display(), pos, bytes = win.len - pos, "torn tail cut off");
                    log.truncate_at(at)?;
                    out.truncated_at = Some(at);
                    out.end = at;
                    return Ok(out);
                }
            }
        }
        if !has_next && pos >= win.len {
            out.end = seg.base + pos.min(win.len);
        }
    }
    Ok(out)
}
