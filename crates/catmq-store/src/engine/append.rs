//! The append path: validate and encode outside the writer lock; under it, assign offsets,
//! stamp them into the encoded records, one positioned write, dispatch.

use std::cell::RefCell;
use std::sync::Arc;

use catmq_common::record::{restamp, MAGIC_PENDING_BATCH, MAGIC_POS};
use catmq_common::{properties, tags, NewMessage, StoreStamp};

use super::pending::{self, Arrival};
use super::{open_writer, Inner, Writer};
use crate::api::{AppendResult, Appended};
use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::fsutil;
use crate::index::{key_hash, Handed, PendingKey};
use crate::{Result, StoreError};

/// What is computed for a message before the writer lock is taken.
struct Prepared {
    len: usize,
    tag_code: i64,
    key_hashes: KeyHashes,
    queue: Arc<ConsumeQueue>,
    /// Where the store timestamp sits in the record.
    store_ts_pos: usize,
    /// Assigned under the writer lock.
    queue_offset: u64,
}

/// Buffers an append needs, kept per thread and reused across appends.
#[derive(Default)]
struct Scratch {
    /// The encoded records.
    buf: Vec<u8>,
    prep: Vec<Prepared>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The distinct key hashes of one message, without a heap allocation for the usual few.
#[derive(Debug, Default)]
pub(crate) struct KeyHashes {
    inline: [u64; 3],
    len: usize,
    spill: Vec<u64>,
}

impl KeyHashes {
    fn push(&mut self, h: u64) {
        if self.spill.is_empty() && self.len < self.inline.len() {
            self.inline[self.len] = h;
            self.len += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline[..self.len]);
            }
            self.spill.push(h);
        }
    }

    fn finish(mut self) -> Self {
        if self.spill.is_empty() {
            let v = &mut self.inline[..self.len];
            v.sort_unstable();
            let mut n = 0;
            for i in 0..v.len() {
                if n == 0 || v[i] != v[n - 1] {
                    v[n] = v[i];
                    n += 1;
                }
            }
            self.len = n;
        } else {
            self.spill.sort_unstable();
            self.spill.dedup();
        }
        self
    }

    pub(crate) fn as_slice(&self) -> &[u64] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

/// The properties the store itself reads: tags, keys and the unique key (last one wins).
pub(crate) fn indexed_properties(props: &str) -> (Option<&str>, &str, Option<&str>) {
    let (mut tags, mut keys, mut uniq) = (None, "", None);
    for (k, v) in properties::iter(props) {
        match k {
            properties::TAGS => tags = Some(v),
            properties::KEYS => keys = v,
            properties::UNIQ_KEY => uniq = Some(v),
            _ => {}
        }
    }
    (tags, keys, uniq)
}

/// The key hashes under which a message is indexed: each of its `KEYS` and its `UNIQ_KEY`.
pub(crate) fn index_hashes(topic: &str, keys: &str, uniq: Option<&str>) -> KeyHashes {
    let mut out = KeyHashes::default();
    for k in keys.split(' ').filter(|k| !k.is_empty()) {
        out.push(key_hash(topic, k));
    }
    if let Some(u) = uniq.filter(|u| !u.is_empty()) {
        out.push(key_hash(topic, u));
    }
    out.finish()
}

/// Checks and encodes `msgs` into `buf`, with the store's fields left for [`stamp`].
fn prepare(inner: &Inner, msgs: &[NewMessage], s: &mut Scratch) -> Result<()> {
    if msgs.is_empty() {
        return Err(StoreError::EmptyBatch);
    }
    let mut total = 0usize;
    let out = &mut s.prep;
    out.clear();
    for m in msgs {
        m.validate()?;
        if !(0..=0xFFFF).contains(&m.queue_id) {
            return Err(StoreError::BadQueueId {
                queue_id: m.queue_id,
            });
        }
        let len = m.encoded_len(&inner.cfg.store_host);
        if len > inner.cfg.max_message_size {
            return Err(StoreError::MessageTooLarge {
                size: len,
                max: inner.cfg.max_message_size,
            });
        }
        total += len;
        if total as u64 > inner.log.segment_size() {
            return Err(StoreError::MessageTooLarge {
                size: total,
                max: inner.log.segment_size() as usize,
            });
        }
        fsutil::check_topic_name(&m.topic)?;
        let (tags, keys, uniq) = indexed_properties(&m.properties);
        out.push(Prepared {
            len,
            tag_code: tags::tag_code(tags),
            key_hashes: index_hashes(&m.topic, keys, uniq),
            queue: inner.queues.get_or_create(&m.topic, m.queue_id)?,
            store_ts_pos: m.store_timestamp_pos(),
            queue_offset: 0,
        });
    }
    let buf = &mut s.buf;
    buf.clear();
    buf.reserve(total);
    let unstamped = StoreStamp {
        queue_offset: 0,
        physical_offset: 0,
        store_timestamp: 0,
        store_host: inner.cfg.store_host,
    };
    for m in msgs {
        m.encode(&unstamped, buf)?;
    }
    Ok(())
}

/// Stamps each encoded record in `buf` with its queue offset, its position (the batch starts
/// at `start`) and the store time; returns where each message was placed.
fn stamp(prep: &[Prepared], buf: &mut [u8], start: u64, store_ms: i64) -> Result<Vec<Appended>> {
    let mut placed = Vec::with_capacity(prep.len());
    let mut at = 0usize;
    for p in prep {
        let phys = start + at as u64;
        let qoff = i64::try_from(p.queue_offset).unwrap_or(i64::MAX);
        // `buf` holds exactly these records; a short slice would fail in `restamp`, not panic.
        let record = buf.get_mut(at..at + p.len).unwrap_or_default();
        restamp(
            record,
            qoff,
            i64::try_from(phys).unwrap_or(i64::MAX),
            p.store_ts_pos,
            store_ms,
        )?;
        placed.push(Appended {
            queue_id: p.queue.queue_id,
            queue_offset: p.queue_offset,
            physical_offset: phys,
            size: p.len as u32,
        });
        at += p.len;
    }
    Ok(placed)
}

/// Queue offsets for each message: the queue's next offset plus earlier messages of the same
/// queue in this batch.
fn assign_offsets(prep: &mut [Prepared]) {
    for i in 0..prep.len() {
        let earlier = prep[..i]
            .iter()
            .rev()
            .find(|e| Arc::ptr_eq(&e.queue, &prep[i].queue));
        prep[i].queue_offset = match earlier {
            Some(e) => e.queue_offset + 1,
            None => prep[i].queue.next_offset(),
        };
    }
}

/// Starts the next segment if `total` more bytes do not fit in the active one; returns the
/// queues of combined appends written out before the active one was sealed.
fn roll_if_needed(inner: &Inner, w: &mut Writer, total: usize) -> Result<Vec<Arrival>> {
    let seg_size = inner.log.segment_size();
    if w.pos - w.active.base + total as u64 <= seg_size {
        return Ok(Vec::new());
    }
    let arrivals = inner.write_pending(w)?;
    w.seal_active(&inner.log)?;
    let next = w.active.base + seg_size;
    w.active = inner.log.create_segment(next)?;
    w.pos = next;
    w.out = open_writer(&inner.cfg, &w.active, next)?;
    Ok(arrivals)
}

/// Writes the encoded batch: first record marked pending, then the real magic, so a batch cut
/// short by a crash is not taken for complete records by recovery.
fn write_records(w: &mut Writer, buf: &mut [u8], count: usize) -> Result<()> {
    let pos = w.pos;
    if count > 1 {
        let mut real = [0u8; 4];
        real.copy_from_slice(&buf[MAGIC_POS..MAGIC_POS + 4]);
        buf[MAGIC_POS..MAGIC_POS + 4].copy_from_slice(&MAGIC_PENDING_BATCH.to_be_bytes());
        w.write_at(buf, pos)
            .and_then(|()| w.write_at(&real, pos + MAGIC_POS as u64))
    } else {
        w.write_at(buf, pos)
    }
}

fn dispatch(inner: &Inner, prep: &[Prepared], placed: &[Appended], store_ms: i64) -> Result<()> {
    for (p, a) in prep.iter().zip(placed) {
        let entry = CqEntry {
            phys: a.physical_offset,
            size: a.size,
            tag_code: p.tag_code,
        };
        p.queue.push(a.queue_offset, entry, store_ms)?;
    }
    if prep.iter().all(|p| p.key_hashes.as_slice().is_empty()) {
        return Ok(());
    }
    let keys = prep.iter().zip(placed).flat_map(|(p, a)| {
        p.key_hashes.as_slice().iter().map(move |&hash| PendingKey {
            hash,
            phys: a.physical_offset,
            store_ms,
        })
    });
    if inner.index.hand_over(keys)? == Handed::CatchUp {
        drop(inner.key_index()?);
    }
    Ok(())
}

/// Appends `msgs` as consecutive records.
pub(super) fn append(inner: &Inner, msgs: &[NewMessage]) -> Result<AppendResult> {
    SCRATCH.with(|cell| {
        let Ok(mut s) = cell.try_borrow_mut() else {
            return append_encoded(inner, msgs, &mut Scratch::default());
        };
        let result = append_encoded(inner, msgs, &mut s);
        // Drop the queue handles now; keep the buffers unless a big batch grew them.
        s.prep.clear();
        if s.buf.capacity() > 4 << 20 {
            *s = Scratch::default();
        }
        result
    })
}

fn append_encoded(inner: &Inner, msgs: &[NewMessage], s: &mut Scratch) -> Result<AppendResult> {
    prepare(inner, msgs, s)?;
    let (prep, buf) = (&mut s.prep, &mut s.buf);
    let total = buf.len();
    let mut w = inner.writer.lock().map_err(|_| StoreError::Closed)?;
    inner.flush.check_poisoned()?;
    let mut arrivals = roll_if_needed(inner, &mut w, total)?;
    let store_ms = inner.cfg.clock.now_ms();
    assign_offsets(prep);
    let start = w.pos;
    let placed = stamp(prep, buf, start, store_ms)?;
    let combine = inner.combines_writes();
    if combine {
        w.pending.add(start, buf, msgs.len());
    } else if let Err(e) = write_records(&mut w, buf, msgs.len()) {
        inner.flush.poison(format!("commit log write failed: {e}"));
        return Err(e);
    }
    w.pos = start + total as u64;
    if let Err(e) = dispatch(inner, prep, &placed, store_ms) {
        inner
            .flush
            .poison(format!("consume queue or index write failed: {e}"));
        return Err(e);
    }
    let end = w.pos;
    inner.flush.set_written(end, combine);
    if combine {
        for p in prep.iter() {
            w.pending.arrived(&p.queue, p.queue_offset + 1);
        }
        if w.pending.len() >= pending::LIMIT {
            arrivals.extend(inner.write_pending(&mut w)?);
        }
    } else {
        inner.flush.set_in_file(end);
    }
    drop(w);
    if combine {
        announce(inner, &arrivals);
    } else {
        notify_arrivals(inner, prep);
    }
    Ok(AppendResult {
        messages: placed,
        end,
        store_timestamp: store_ms,
    })
}

/// Tells the arrival listener (long-polling pulls) of appends whose records are now readable.
fn notify_arrivals(inner: &Inner, prep: &[Prepared]) {
    let Ok(listener) = inner.listener.read() else {
        return;
    };
    let Some(listener) = listener.as_ref() else {
        return;
    };
    let mut last: Option<&Arc<ConsumeQueue>> = None;
    for p in prep {
        if last.is_some_and(|q| Arc::ptr_eq(q, &p.queue)) {
            continue;
        }
        last = Some(&p.queue);
        listener(&p.queue.topic, p.queue.queue_id, p.queue.next_offset());
    }
}

/// Tells the arrival listener that each queue now ends at the offset given (combined appends
/// just written to the file).
pub(super) fn announce(inner: &Inner, arrivals: &[Arrival]) {
    if arrivals.is_empty() {
        return;
    }
    let Ok(listener) = inner.listener.read() else {
        return;
    };
    if let Some(listener) = listener.as_ref() {
        for (q, next) in arrivals {
            listener(&q.topic, q.queue_id, *next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hashes_are_distinct_and_sorted_inline_or_spilled() {
        let few = index_hashes("T", "b a b", Some("a"));
        let mut want = vec![key_hash("T", "a"), key_hash("T", "b")];
        want.sort_unstable();
        assert_eq!(few.as_slice(), want.as_slice());
        let many = index_hashes("T", "k1 k2 k3 k4  k2", Some("u"));
        let mut want: Vec<u64> = ["k1", "k2", "k3", "k4", "u"]
            .iter()
            .map(|k| key_hash("T", k))
            .collect();
        want.sort_unstable();
        assert_eq!(many.as_slice(), want.as_slice());
        assert!(index_hashes("T", "", Some("")).as_slice().is_empty());
    }

    #[test]
    fn indexed_properties_take_the_last_value() {
        let p = properties::encode([
            (properties::TAGS, "A"),
            (properties::KEYS, "k"),
            ("X", "y"),
            (properties::TAGS, "B"),
        ]);
        assert_eq!(indexed_properties(&p), (Some("B"), "k", None));
    }
}
