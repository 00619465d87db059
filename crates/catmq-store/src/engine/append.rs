//! The append path: validate, assign offsets, encode, one positioned write, dispatch.

use std::sync::Arc;

use catmq_common::record::{MAGIC_PENDING_BATCH, MAGIC_POS};
use catmq_common::{properties, tags, NewMessage, StoreStamp};

use super::{open_map, Inner, Writer};
use crate::api::{AppendResult, Appended};
use crate::config::FlushMode;
use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::index::key_hash;
use crate::{Result, StoreError};

/// What is computed for a message before the writer lock is taken.
struct Prepared {
    len: usize,
    tag_code: i64,
    key_hashes: Vec<u64>,
    queue: Arc<ConsumeQueue>,
}

/// The key hashes under which a message is indexed: each of its `KEYS` and its `UNIQ_KEY`.
pub(crate) fn index_hashes(topic: &str, props: &str) -> Vec<u64> {
    let mut out: Vec<u64> = properties::keys(props)
        .map(|k| key_hash(topic, k))
        .collect();
    if let Some(u) = properties::get(props, properties::UNIQ_KEY).filter(|u| !u.is_empty()) {
        out.push(key_hash(topic, u));
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn prepare(inner: &Inner, msgs: &[NewMessage]) -> Result<(Vec<Prepared>, usize)> {
    if msgs.is_empty() {
        return Err(StoreError::EmptyBatch);
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(msgs.len());
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
        out.push(Prepared {
            len,
            tag_code: tags::tag_code(properties::get(&m.properties, properties::TAGS)),
            key_hashes: index_hashes(&m.topic, &m.properties),
            queue: inner.queues.get_or_create(&m.topic, m.queue_id)?,
        });
    }
    if total as u64 > inner.log.segment_size() {
        return Err(StoreError::MessageTooLarge {
            size: total,
            max: inner.log.segment_size() as usize,
        });
    }
    Ok((out, total))
}

/// Queue offsets for each message: the queue's next offset plus earlier messages of the same
/// queue in this batch.
fn assign_offsets(prep: &[Prepared]) -> Vec<u64> {
    let mut seen: Vec<(&Arc<ConsumeQueue>, u64)> = Vec::new();
    prep.iter()
        .map(
            |p| match seen.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &p.queue)) {
                Some((_, next)) => {
                    *next += 1;
                    *next
                }
                None => {
                    let next = p.queue.next_offset();
                    seen.push((&p.queue, next));
                    next
                }
            },
        )
        .collect()
}

fn roll_if_needed(inner: &Inner, w: &mut Writer, total: usize) -> Result<()> {
    let seg_size = inner.log.segment_size();
    if w.pos - w.active.base + total as u64 <= seg_size {
        return Ok(());
    }
    w.seal_active(&inner.log)?;
    let next = w.active.base + seg_size;
    w.active = inner.log.create_segment(next)?;
    w.pos = next;
    w.map = open_map(&inner.cfg, &w.active, next)?;
    Ok(())
}

/// Writes the encoded batch: first record marked pending, then the real magic, so a batch cut
/// short by a crash is not taken for complete records by recovery.
fn write_records(w: &mut Writer, count: usize) -> Result<()> {
    let pos = w.pos;
    let mut buf = std::mem::take(&mut w.buf);
    let result = if count > 1 {
        let mut real = [0u8; 4];
        real.copy_from_slice(&buf[MAGIC_POS..MAGIC_POS + 4]);
        buf[MAGIC_POS..MAGIC_POS + 4].copy_from_slice(&MAGIC_PENDING_BATCH.to_be_bytes());
        w.write_at(&buf, pos)
            .and_then(|()| w.write_at(&real, pos + MAGIC_POS as u64))
    } else {
        w.write_at(&buf, pos)
    };
    w.buf = buf;
    result
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
    if prep.iter().any(|p| !p.key_hashes.is_empty()) {
        let mut index = inner.index.lock().map_err(|_| StoreError::Closed)?;
        for (p, a) in prep.iter().zip(placed) {
            for h in &p.key_hashes {
                index.add(*h, a.physical_offset, store_ms)?;
            }
        }
    }
    Ok(())
}

/// Appends `msgs` as consecutive records.
pub(super) fn append(inner: &Inner, msgs: &[NewMessage]) -> Result<AppendResult> {
    let (prep, total) = prepare(inner, msgs)?;
    let mut w = inner.writer.lock().map_err(|_| StoreError::Closed)?;
    inner.flush.check_poisoned()?;
    roll_if_needed(inner, &mut w, total)?;
    let store_ms = inner.cfg.clock.now_ms();
    let offsets = assign_offsets(&prep);
    let start = w.pos;
    let mut buf = std::mem::take(&mut w.buf);
    buf.clear();
    let mut placed = Vec::with_capacity(msgs.len());
    for ((m, p), qoff) in msgs.iter().zip(&prep).zip(&offsets) {
        let phys = start + buf.len() as u64;
        let stamp = StoreStamp {
            queue_offset: i64::try_from(*qoff).unwrap_or(i64::MAX),
            physical_offset: i64::try_from(phys).unwrap_or(i64::MAX),
            store_timestamp: store_ms,
            store_host: inner.cfg.store_host,
        };
        m.encode(&stamp, &mut buf)?;
        placed.push(Appended {
            queue_id: m.queue_id,
            queue_offset: *qoff,
            physical_offset: phys,
            size: p.len as u32,
        });
    }
    w.buf = buf;
    if let Err(e) = write_records(&mut w, msgs.len()) {
        inner.flush.poison(format!("commit log write failed: {e}"));
        return Err(e);
    }
    w.pos = start + total as u64;
    if let Err(e) = dispatch(inner, &prep, &placed, store_ms) {
        inner
            .flush
            .poison(format!("consume queue or index write failed: {e}"));
        return Err(e);
    }
    let end = w.pos;
    inner
        .flush
        .set_written(end, inner.cfg.flush == FlushMode::Sync);
    if w.buf.capacity() > 4 << 20 {
        w.buf = Vec::new();
    }
    drop(w);
    notify_arrivals(inner, &prep);
    Ok(AppendResult {
        messages: placed,
        end,
        store_timestamp: store_ms,
    })
}

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
