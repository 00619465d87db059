//! Sequential scan of the log for recovery: yields valid records, reports corrupt ranges, and
//! finds where the valid log ends.
//!
//! A position holds a valid record when its size, magic, field lengths and body CRC agree and
//! the record names that very position as its physical offset. Bad bytes followed by a valid
//! record in the same segment (or by a later segment) are mid-log corruption: reported with
//! their position and skipped, never served. Bad bytes with nothing valid after them are a torn
//! tail: the log is truncated there.
//!
//! A recycled segment file (see the module above) holds the records of an older segment after
//! the new ones. Such a record is whole and checks out, but names a position before the
//! segment's base: the first one found after the new records marks where they end, so the scan
//! stops there instead of searching the rest of the file.

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

impl<'a> Window<'a> {
    fn new(seg: &'a Segment) -> Result<Self> {
        Ok(Self {
            seg,
            len: seg.file.data_end()?,
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

    /// The bytes from `pos` to the end of what is buffered, or a fresh chunk from `pos`.
    fn rest_from(&mut self, pos: u64) -> Result<&[u8]> {
        let end = self.start + self.buf.len() as u64;
        let need = if pos >= self.start && pos + 8 <= end {
            usize::try_from(end - pos).unwrap_or(CHUNK)
        } else {
            CHUNK
        };
        self.get(pos, need)
    }

    /// What the bytes at `pos` (relative to the segment) hold.
    fn probe(&mut self, pos: u64, max_size: u64) -> Result<At> {
        let base = self.seg.base;
        let head = self.get(pos, 8)?;
        let Some((size, magic)) = peek_header(head) else {
            return Ok(At::Nothing);
        };
        if magic != MAGIC_V1 && magic != MAGIC_V2 {
            return Ok(At::Nothing);
        }
        let Ok(size) = usize::try_from(size) else {
            return Ok(At::Nothing);
        };
        if size < MIN_RECORD || size as u64 > max_size.min(self.len - pos) {
            return Ok(At::Nothing);
        }
        let bytes = self.get(pos, size)?;
        if check_record(bytes, base + pos).is_ok() {
            return Ok(At::Record(size));
        }
        let stale = RecordView::parse(bytes).is_ok_and(|v| {
            v.crc_ok() && u64::try_from(v.physical_offset()).is_ok_and(|p| p < base)
        });
        Ok(if stale { At::Stale } else { At::Nothing })
    }

    /// The next position after `from` that holds a record or an older segment's record.
    fn resync(&mut self, from: u64, max_size: u64) -> Result<Option<(u64, At)>> {
        let mut pos = from + 1;
        while pos + 8 <= self.len {
            let hay = self.rest_from(pos)?;
            if hay.len() < 8 {
                break;
            }
            let (span, hit) = (hay.len() - 7, magic_in(hay));
            let Some(i) = hit else {
                pos += span as u64;
                continue;
            };
            let cand = pos + i as u64;
            match self.probe(cand, max_size)? {
                At::Nothing => pos = cand + 1,
                found => return Ok(Some((cand, found))),
            }
        }
        Ok(None)
    }
}

/// What a position in a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// A valid record of this many bytes.
    Record(usize),
    /// A whole record of an older segment, left in a recycled file: the new records end before it.
    Stale,
    /// Neither.
    Nothing,
}

/// The first `i` such that `hay[i + 4..i + 8]` is a record magic (`i + 8 <= hay.len()`).
fn magic_in(hay: &[u8]) -> Option<usize> {
    let prefix = &MAGIC_V1.to_be_bytes()[..3];
    debug_assert_eq!(prefix, &MAGIC_V2.to_be_bytes()[..3]);
    let body = hay.get(4..)?;
    let last = [MAGIC_V1.to_be_bytes()[3], MAGIC_V2.to_be_bytes()[3]];
    memchr::memmem::find_iter(body, prefix)
        .find(|&i| body.get(i + 3).is_some_and(|b| last.contains(b)))
}

/// What follows bytes that hold no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterBad {
    /// Zeros to the end of the data.
    CleanEnd,
    /// A valid record at this position.
    RecordAt(u64),
    /// An older segment's record at this position (a recycled file).
    Stale(u64),
    /// The first record of an unfinished batch.
    Pending,
    /// Nothing valid.
    Nothing,
}

/// Looks past the bytes at `pos`, which hold no record.
fn after_bad(win: &mut Window<'_>, pos: u64, max_size: u64) -> Result<AfterBad> {
    if win.get(pos, 8)?.get(4..8) == Some(&MAGIC_PENDING_BATCH.to_be_bytes()[..]) {
        return Ok(AfterBad::Pending);
    }
    if win.zeros_from(pos)? {
        return Ok(AfterBad::CleanEnd);
    }
    Ok(match win.resync(pos, max_size)? {
        Some((n, At::Record(_))) => AfterBad::RecordAt(n),
        Some((n, _)) => AfterBad::Stale(n),
        None => AfterBad::Nothing,
    })
}

/// Drops the torn tail of the log from `pos` in `win`'s segment. The file is cut there, and later
/// segments removed, unless an older segment's records follow: the writer then writes over the
/// torn bytes and them, and the file keeps its blocks.
fn drop_tail(log: &CommitLog, win: &Window<'_>, pos: u64, after: AfterBad) -> Result<()> {
    let path = win.seg.file.path.display();
    if let AfterBad::Stale(n) = after {
        tracing::warn!(segment = %path, pos, bytes = n - pos, "torn tail dropped (a recycled file's older records follow)");
        return Ok(());
    }
    tracing::warn!(segment = %path, pos, bytes = win.len - pos, "torn tail cut off");
    log.truncate_at(win.seg.base + pos)
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
            match win.probe(pos, max_size)? {
                At::Record(size) => {
                    let bytes = win.get(pos, size)?;
                    if let Ok(view) = RecordView::parse(bytes) {
                        on_record(seg.base + pos, view)?;
                    }
                    out.records += 1;
                    pos += size as u64;
                    out.end = seg.base + pos;
                    continue;
                }
                At::Stale => {
                    // A recycled file's older records: the new ones end here.
                    out.end = seg.base + pos;
                    break;
                }
                At::Nothing => {}
            }
            match after_bad(&mut win, pos, max_size)? {
                AfterBad::CleanEnd => {
                    // The preallocated rest of the segment: the records end here.
                    out.end = seg.base + pos;
                    break;
                }
                AfterBad::RecordAt(n) => {
                    tracing::error!(segment = %seg.file.path.display(), from = pos, to = n, "corrupt bytes in the commit log; skipped");
                    out.corrupt.push((seg.base + pos, seg.base + n));
                    pos = n;
                }
                AfterBad::Stale(_) | AfterBad::Nothing if has_next => {
                    tracing::error!(segment = %seg.file.path.display(), from = pos, to = win.len, "corrupt end of a sealed segment; skipped");
                    out.corrupt.push((seg.base + pos, seg.base + win.len));
                    pos = win.len;
                }
                after => {
                    drop_tail(log, &win, pos, after)?;
                    out.truncated_at = Some(seg.base + pos);
                    out.end = seg.base + pos;
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use catmq_common::record::{NewMessage, StoreStamp};

    use super::*;

    const SIZE: u64 = 32 << 20;

    /// A record that says it is at `phys`.
    fn record(phys: u64) -> Vec<u8> {
        let m = NewMessage {
            topic: "T".into(),
            queue_id: 0,
            flag: 0,
            body: Bytes::from_static(b"a body"),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: 1,
            born_host: ([127, 0, 0, 1], 1).into(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        let stamp = StoreStamp {
            queue_offset: 0,
            physical_offset: phys as i64,
            store_timestamp: 2,
            store_host: ([127, 0, 0, 1], 2).into(),
        };
        let mut out = Vec::new();
        m.encode(&stamp, &mut out).unwrap();
        out
    }

    /// Writes a record at `pos` in `seg` that says it is at `says`; returns where it ends.
    fn put(seg: &Segment, pos: u64, says: u64) -> u64 {
        let r = record(says);
        seg.file.write_at(&r, pos).unwrap();
        pos + r.len() as u64
    }

    fn run(log: &CommitLog, from: u64) -> ScanOutcome {
        scan(log, from, |_, _| Ok(())).unwrap()
    }

    #[test]
    fn magic_is_found_at_any_offset_but_only_whole() {
        let mut hay = vec![0u8; 64];
        assert_eq!(magic_in(&hay), None);
        hay[20..24].copy_from_slice(&MAGIC_V2.to_be_bytes());
        assert_eq!(magic_in(&hay), Some(16));
        hay[10..14].copy_from_slice(&[0xDA, 0xA3, 0x20, 0x00]);
        hay[13..17].copy_from_slice(&MAGIC_V1.to_be_bytes());
        assert_eq!(magic_in(&hay), Some(9));
        assert_eq!(magic_in(&hay[..12]), None, "magic cut off by the end");
        assert_eq!(magic_in(&hay[..3]), None);
    }

    #[test]
    fn an_older_segments_record_ends_the_scan_of_a_recycled_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), SIZE, false).unwrap();
        let seg = log.create_segment(SIZE).unwrap();
        let mut end = 0;
        for _ in 0..2 {
            end = put(&seg, end, SIZE + end);
        }
        // Then a record of an older segment, then (never in a real file, but it shows the scan
        // does not look further) a record that would pass at its position.
        let stale_end = put(&seg, end, 4096);
        put(&seg, stale_end + 100, SIZE + stale_end + 100);
        let out = run(&log, SIZE);
        assert_eq!((out.records, out.end), (2, SIZE + end));
        assert_eq!((out.truncated_at, out.corrupt.len()), (None, 0));
        // A torn record before the older one is cut off.
        seg.file.write_at(&[9u8; 30], end).unwrap();
        put(&seg, end + 30, 4096);
        let out = run(&log, SIZE);
        assert_eq!((out.records, out.end), (2, SIZE + end));
        assert_eq!(out.truncated_at, Some(SIZE + end));
        assert!(
            seg.file.len().unwrap() > stale_end,
            "the file keeps its blocks"
        );
    }

    #[test]
    fn a_record_whose_magic_spans_two_reads_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let log = CommitLog::open(dir.path(), SIZE, false).unwrap();
        let seg = log.last().unwrap();
        let first = put(&seg, 0, 0);
        seg.file.write_at(&[9u8; 10], first).unwrap();
        // The scan reads 8 MiB from the damage on; this record's magic starts 2 bytes before that
        // read ends.
        let cand = first + CHUNK as u64 - 6;
        let after = put(&seg, cand, cand);
        let out = run(&log, 0);
        assert_eq!(out.corrupt, vec![(first, cand)]);
        assert_eq!((out.records, out.end, out.truncated_at), (2, after, None));
    }
}
