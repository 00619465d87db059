//! Reads: by queue offset (one positioned read per contiguous run of records), by physical
//! offset, by timestamp and by key.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use catmq_common::properties;
use catmq_common::record::RecordView;

use super::Inner;
use crate::api::{Boundary, QueueInfo, ReadRequest, ReadResult, ReadStatus};
use crate::commit_log::check_record;
use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::index::{key_hash, lookup_sealed};
use crate::{Result, StoreError};

/// Entries looked at in one read when a tag filter may skip most of them.
const FILTER_SCAN: usize = 1024;

pub(super) fn queue_info(inner: &Inner, q: &ConsumeQueue) -> QueueInfo {
    let (min, max) = (q.min_offset(), q.next_offset());
    let mut last = i64::try_from(q.last_store_ms()).unwrap_or(0);
    if last == 0 && max > min {
        // Not known since the restart: read it from the newest record.
        if let Ok(Some((_, ts))) = store_time_at(inner, q, max - 1) {
            last = ts;
            q.note_store_ms(ts);
        }
    }
    QueueInfo {
        topic: q.topic.clone(),
        queue_id: q.queue_id,
        min_offset: min,
        max_offset: max,
        last_store_timestamp: last,
    }
}

fn empty(status: ReadStatus, next: u64, min: u64, max: u64) -> ReadResult {
    ReadResult {
        status,
        messages: Vec::new(),
        next_offset: next,
        min_offset: min,
        max_offset: max,
    }
}

/// A contiguous stretch of the log holding the records to return.
struct Run {
    start: u64,
    end: u64,
    /// (queue offset, size) of each record in the run.
    records: Vec<(u64, u32)>,
}

/// Picks the entries to return and groups them into runs; stops at the first record not in the
/// log file yet (`in_file`). Returns the runs and the next offset to read.
fn plan(
    inner: &Inner,
    req: &ReadRequest<'_>,
    entries: &[CqEntry],
    in_file: u64,
) -> (Vec<Run>, u64) {
    let seg_size = inner.log.segment_size();
    let log_min = inner.log.min_pos();
    let mut runs: Vec<Run> = Vec::new();
    let (mut count, mut bytes) = (0u32, 0usize);
    let mut next = req.offset;
    for (i, e) in entries.iter().enumerate() {
        if count >= req.max_messages || (count > 0 && bytes + e.size as usize > req.max_bytes) {
            break;
        }
        if !e.is_hole() && e.phys + u64::from(e.size) > in_file {
            break;
        }
        next = req.offset + i as u64 + 1;
        if e.is_hole() || e.phys < log_min {
            continue;
        }
        if req
            .tag_codes
            .is_some_and(|codes| !codes.contains(&e.tag_code))
        {
            continue;
        }
        count += 1;
        bytes += e.size as usize;
        let qoff = req.offset + i as u64;
        match runs.last_mut() {
            Some(r) if r.end == e.phys && e.phys % seg_size != 0 => {
                r.end += u64::from(e.size);
                r.records.push((qoff, e.size));
            }
            _ => runs.push(Run {
                start: e.phys,
                end: e.phys + u64::from(e.size),
                records: vec![(qoff, e.size)],
            }),
        }
    }
    (runs, next)
}

/// Where the last record that `entries` point at ends (0 if they are all holes).
fn records_end(entries: &[CqEntry]) -> u64 {
    entries
        .iter()
        .rev()
        .find(|e| !e.is_hole())
        .map_or(0, |e| e.phys + u64::from(e.size))
}

/// Reads a run and returns its checked records; a corrupt record is logged and left out.
fn read_run(inner: &Inner, req: &ReadRequest<'_>, run: &Run, out: &mut Vec<Bytes>) -> Result<()> {
    let buf = inner
        .log
        .read(run.start, usize::try_from(run.end - run.start).unwrap_or(0))?;
    let mut at = 0usize;
    for (qoff, size) in &run.records {
        let size = *size as usize;
        let pos = run.start + at as u64;
        let slice = buf.slice(at..(at + size).min(buf.len()));
        at += size;
        let ok = match check_record(&slice, pos) {
            Ok(v)
                if v.total_size() == size
                    && v.queue_offset() == *qoff as i64
                    && v.queue_id() == req.queue_id =>
            {
                Ok(())
            }
            Ok(_) => Err("record does not match its consume-queue entry".to_owned()),
            Err(e) => Err(e),
        };
        match ok {
            Ok(()) => out.push(slice),
            Err(detail) => {
                inner.corrupt_reads.fetch_add(1, Ordering::Relaxed);
                tracing::error!(topic = req.topic, queue = req.queue_id, queue_offset = qoff, position = pos, %detail, "corrupt record not served");
            }
        }
    }
    Ok(())
}

pub(super) fn read(inner: &Inner, req: &ReadRequest<'_>) -> Result<ReadResult> {
    let Some(q) = inner.queues.get(req.topic, req.queue_id) else {
        return Ok(empty(ReadStatus::NoMatchedQueue, 0, 0, 0));
    };
    let (min, max) = (q.min_offset(), q.next_offset());
    let status = if max == 0 {
        Some((ReadStatus::NoMessageInQueue, 0))
    } else if req.offset < min {
        Some((ReadStatus::OffsetTooSmall, min))
    } else if req.offset == max {
        Some((ReadStatus::OffsetOverflowOne, req.offset))
    } else if req.offset > max {
        Some((ReadStatus::OffsetOverflowBadly, max))
    } else {
        None
    };
    if let Some((status, next)) = status {
        return Ok(empty(status, next, min, max));
    }
    let want = req.max_messages.max(1) as usize;
    let scan = if req.tag_codes.is_some() {
        want.max(FILTER_SCAN)
    } else {
        want
    };
    // Only entries below the `max` read above: appends going on may add more, and a result
    // must never return a message at or past the `next_offset` it reports.
    let scan = scan.min(usize::try_from(max - req.offset).unwrap_or(usize::MAX));
    let entries = q.entries(req.offset, scan)?;
    let in_file = inner.write_out_upto(records_end(&entries))?;
    let (runs, next) = plan(inner, req, &entries, in_file);
    if next == req.offset && req.max_messages > 0 {
        // The first record is not in the file: its write failed (the store is poisoned).
        // Never skip it: nothing new to read.
        return Ok(empty(ReadStatus::OffsetOverflowOne, req.offset, min, max));
    }
    let mut messages = Vec::with_capacity(runs.iter().map(|r| r.records.len()).sum());
    for run in &runs {
        read_run(inner, req, run, &mut messages)?;
    }
    let status = if messages.is_empty() {
        ReadStatus::NoMatchedMessage
    } else {
        ReadStatus::Found
    };
    Ok(ReadResult {
        status,
        messages,
        next_offset: next.max(req.offset + 1).min(max),
        min_offset: min,
        max_offset: max,
    })
}

pub(super) fn read_at(inner: &Inner, phys: u64) -> Result<Option<Bytes>> {
    // The file holds whole records only: one that starts below `in_file` ends below it.
    if phys < inner.log.min_pos() || phys >= inner.write_out_upto(phys + 1)? {
        return Ok(None);
    }
    match inner.log.read_record(phys) {
        Ok(b) => Ok(Some(b)),
        Err(StoreError::Corrupt { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Store time of the message at `qoff`, looking forward past holes; `None` past the end.
fn store_time_at(inner: &Inner, q: &ConsumeQueue, mut qoff: u64) -> Result<Option<(u64, i64)>> {
    let max = q.next_offset();
    while qoff < max {
        let entries = q.entries(qoff, 16)?;
        let in_file = inner.write_out_upto(records_end(&entries))?;
        for e in &entries {
            if !e.is_hole() && e.phys + u64::from(e.size) > in_file {
                // Not in the file (its write failed): past the readable end.
                return Ok(None);
            }
            if !e.is_hole() && e.phys >= inner.log.min_pos() {
                if let Ok(b) = inner.log.read(e.phys, e.size as usize) {
                    if let Ok(v) = RecordView::parse(&b) {
                        return Ok(Some((qoff, v.store_timestamp())));
                    }
                }
            }
            qoff += 1;
        }
        if entries.is_empty() {
            break;
        }
    }
    Ok(None)
}

pub(super) fn offset_for_timestamp(
    inner: &Inner,
    topic: &str,
    qid: i32,
    ts: i64,
    boundary: Boundary,
) -> Result<u64> {
    let Some(q) = inner.queues.get(topic, qid) else {
        return Ok(0);
    };
    let (min, max) = (q.min_offset(), q.next_offset());
    // First offset in [min, max) whose store time is > ts (Upper) or >= ts (Lower).
    let (mut lo, mut hi) = (min, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match store_time_at(inner, &q, mid)? {
            Some((at, t)) => {
                let before = match boundary {
                    Boundary::Lower => t < ts,
                    Boundary::Upper => t <= ts,
                };
                if before {
                    lo = at + 1;
                } else {
                    hi = mid;
                }
            }
            None => hi = mid,
        }
    }
    Ok(match boundary {
        Boundary::Lower => lo,
        Boundary::Upper => lo.saturating_sub(1).max(min),
    })
}

fn matches_key(v: &RecordView<'_>, topic: &str, key: &str) -> bool {
    if v.topic() != Some(topic) {
        return false;
    }
    let props = v.properties().unwrap_or("");
    properties::get(props, properties::UNIQ_KEY) == Some(key)
        || properties::keys(props).any(|k| k == key)
}

pub(super) fn query_by_key(
    inner: &Inner,
    topic: &str,
    key: &str,
    (begin, end): (i64, i64),
    limit: usize,
) -> Result<Vec<Bytes>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let hash = key_hash(topic, key);
    let cap = limit.saturating_mul(4).max(64);
    let (mut hits, sealed) = inner.key_index()?.lookup_active(hash, begin, end, cap)?;
    hits.extend(lookup_sealed(&sealed, hash, begin, end, cap)?);
    let mut phys: Vec<u64> = hits.iter().map(|h| h.phys).collect();
    phys.sort_unstable_by(|a, b| b.cmp(a));
    phys.dedup();
    let mut out = Vec::new();
    for p in phys {
        if out.len() >= limit {
            break;
        }
        let Some(rec) = read_at(inner, p)? else {
            continue;
        };
        let keep = RecordView::parse(&rec).is_ok_and(|v| {
            matches_key(&v, topic, key) && (begin..=end).contains(&v.store_timestamp())
        });
        if keep {
            out.push(rec);
        }
    }
    Ok(out)
}
