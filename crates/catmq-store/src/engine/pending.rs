//! Write-combining for sync flush: appends copy their records into one buffer under the writer
//! lock, and the flusher writes the buffer with one `pwrite` right before each fsync.
//!
//! With many appenders, a `pwrite` per append cost each of them a system call under the writer
//! lock, and one that touched a page the running fsync was writing back waited for that write
//! to finish, holding the lock. Combined, appenders only copy; the file sees one write per
//! fsync. Nothing is acknowledged before its fsync either way, so a sync append waits no
//! longer: the flusher writes what is pending and fsyncs it in the same step.
//!
//! Records in the buffer are dispatched to their queues already but are not in the file yet:
//! readers are bounded by the flush state's `in_file` position, and long-polling pulls are told
//! of arrivals only once the records are in the file (see [`Pending::write_out`]).

use std::sync::Arc;

use catmq_common::record::{MAGIC_PENDING_BATCH, MAGIC_POS};

use crate::commit_log::{Segment, SegmentWriter};
use crate::consume_queue::ConsumeQueue;
use crate::Result;

/// Past this many buffered bytes an appender writes the buffer itself instead of leaving it
/// to the flusher (a slow fsync must not let the buffer grow without bound).
pub(super) const LIMIT: usize = 1 << 20;

/// A buffer that grew past this (a big batch) is not kept for reuse.
const KEEP_CAPACITY: usize = 4 << 20;

/// How many of the latest arrivals an append looks through for its queue before it adds an
/// entry: a repeated queue further back only means one more (harmless) notification.
const ARRIVAL_LOOKBACK: usize = 16;

/// A queue that received appends, and its next offset after the latest of them.
pub(super) type Arrival = (Arc<ConsumeQueue>, u64);

/// Appended records not yet written to the log file.
#[derive(Debug, Default)]
pub(super) struct Pending {
    buf: Vec<u8>,
    /// Log position of `buf[0]`.
    start: u64,
    /// Batches written with the pending-batch magic in their first record: where that magic
    /// sits and the real one, written after the records (as an unbuffered batch is).
    batch_heads: Vec<(u64, [u8; 4])>,
    arrivals: Vec<Arrival>,
}

impl Pending {
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Adds the `count` encoded records in `records`, which go at log position `pos` (right
    /// after what is buffered). A batch's first record gets the pending-batch magic until the
    /// rest is written, so a batch cut short by a crash is not taken for complete records.
    pub(super) fn add(&mut self, pos: u64, records: &mut [u8], count: usize) {
        if self.buf.is_empty() {
            self.start = pos;
        }
        if count > 1 {
            if let Some(magic) = records.get_mut(MAGIC_POS..MAGIC_POS + 4) {
                let mut real = [0u8; 4];
                real.copy_from_slice(magic);
                magic.copy_from_slice(&MAGIC_PENDING_BATCH.to_be_bytes());
                self.batch_heads.push((pos + MAGIC_POS as u64, real));
            }
        }
        self.buf.extend_from_slice(records);
    }

    /// Notes that `queue` now ends at `next`, to tell long-polling readers once it is readable.
    pub(super) fn arrived(&mut self, queue: &Arc<ConsumeQueue>, next: u64) {
        let recent = self.arrivals.iter_mut().rev().take(ARRIVAL_LOOKBACK);
        match recent.into_iter().find(|(q, _)| Arc::ptr_eq(q, queue)) {
            Some(a) => a.1 = a.1.max(next),
            None => self.arrivals.push((Arc::clone(queue), next)),
        }
    }

    /// Writes the buffered records to `seg` through `out`, then the batches' real magic.
    /// Returns the log position the file now holds records up to and the queues that received
    /// them; `None` if nothing was buffered. The buffer is emptied even if the write fails (the
    /// caller poisons the store then).
    pub(super) fn write_out(
        &mut self,
        out: &mut SegmentWriter,
        seg: &Segment,
    ) -> Result<Option<(u64, Vec<Arrival>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let end = self.start + self.buf.len() as u64;
        let written = out
            .write(seg, self.start - seg.base, &self.buf)
            .and_then(|()| {
                self.batch_heads
                    .iter()
                    .try_for_each(|(pos, magic)| out.write(seg, pos - seg.base, magic))
            });
        self.buf.clear();
        self.batch_heads.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        let arrivals = std::mem::take(&mut self.arrivals);
        written.map(|()| Some((end, arrivals)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::DataFile;

    fn records(n: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| n.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn buffered_records_go_out_in_one_write_with_batch_magic_fixed_after() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment {
            base: 1 << 20,
            file: DataFile::open_rw(&dir.path().join("seg")).unwrap(),
        };
        let mut p = Pending::default();
        assert!(p
            .write_out(&mut SegmentWriter::Plain, &seg)
            .unwrap()
            .is_none());
        let (one, mut batch) = (records(1, 40), records(100, 64));
        let real_magic = batch[MAGIC_POS..MAGIC_POS + 4].to_vec();
        p.add(seg.base + 8, &mut one.clone(), 1);
        p.add(seg.base + 48, &mut batch, 2);
        assert_eq!(p.len(), 104);
        // Buffered with the pending-batch magic.
        assert_eq!(
            batch[MAGIC_POS..MAGIC_POS + 4],
            MAGIC_PENDING_BATCH.to_be_bytes()
        );
        let (end, arrivals) = p
            .write_out(&mut SegmentWriter::Plain, &seg)
            .unwrap()
            .unwrap();
        assert_eq!(end, seg.base + 112);
        assert!(arrivals.is_empty());
        assert_eq!(p.len(), 0);
        let mut file = vec![0u8; 112];
        assert_eq!(seg.file.read_at(&mut file, 0).unwrap(), 112);
        assert_eq!(&file[8..48], &one[..]);
        assert_eq!(&file[48 + MAGIC_POS..48 + MAGIC_POS + 4], &real_magic[..]);
        batch[MAGIC_POS..MAGIC_POS + 4].copy_from_slice(&real_magic);
        assert_eq!(&file[48..], &batch[..]);
        // The next buffer starts where it is told.
        p.add(seg.base + 112, &mut records(7, 10), 1);
        let (end, _) = p
            .write_out(&mut SegmentWriter::Plain, &seg)
            .unwrap()
            .unwrap();
        assert_eq!(end, seg.base + 122);
    }

    #[test]
    fn arrivals_keep_one_entry_per_recent_queue_with_its_latest_offset() {
        let dir = tempfile::tempdir().unwrap();
        let table = crate::consume_queue::QueueTable::open(dir.path().to_owned(), 64).unwrap();
        let (a, b) = (
            table.get_or_create("A", 0).unwrap(),
            table.get_or_create("B", 3).unwrap(),
        );
        let mut p = Pending::default();
        p.arrived(&a, 1);
        p.arrived(&b, 5);
        p.arrived(&a, 2);
        let got: Vec<_> = p
            .arrivals
            .iter()
            .map(|(q, n)| (q.topic.clone(), *n))
            .collect();
        assert_eq!(got, [("A".to_owned(), 2), ("B".to_owned(), 5)]);
        // Past the look-back a queue gets a second entry: one more notification, no loss.
        let others: Vec<_> = (0..ARRIVAL_LOOKBACK)
            .map(|i| table.get_or_create("C", i as i32).unwrap())
            .collect();
        others.iter().for_each(|q| p.arrived(q, 1));
        p.arrived(&a, 3);
        let for_a: Vec<u64> = p
            .arrivals
            .iter()
            .filter(|(q, _)| Arc::ptr_eq(q, &a))
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(for_a, [2, 3]);
    }
}
