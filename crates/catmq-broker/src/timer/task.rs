//! The timer task: index new scheduled records, cascade and load buckets, deliver what is due.

use std::sync::Arc;
use std::time::{Duration, Instant};

use catmq_common::{properties as props, NewMessage, RecordView};

use super::wheel::{Entry, Wheel};
use super::{due_of, released};
use crate::queue::scan;
use crate::state::{lock, State};
use crate::topics::TIMER_TOPIC;

/// Records indexed per addition to the wheel.
const INGEST_BATCH: usize = 512;
/// Messages delivered per append.
const DELIVER_BATCH: usize = 64;
/// Longest sleep between passes (buckets are loaded on these ticks).
const MAX_IDLE: Duration = Duration::from_millis(500);
/// How often bucket files and the checkpoint are made durable.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Indexes every scheduled record not in the wheel yet (adding to the wheel every
/// [`INGEST_BATCH`] records, so the checkpoint moves along a long backlog).
pub(crate) fn ingest(st: &State, w: &mut Wheel) -> std::io::Result<()> {
    let mut batch: Vec<Entry> = Vec::new();
    let mut failed: Option<std::io::Error> = None;
    let scanned = scan(st, TIMER_TOPIC, w.ingested(), |at, v| {
        if failed.is_some() {
            return;
        }
        let Some(due) = due_of(v) else {
            tracing::warn!(offset = at, "scheduled record without TIMER_OUT_MS");
            return;
        };
        let topic = v
            .properties()
            .and_then(|p| props::get(p, props::REAL_TOPIC))
            .unwrap_or_default();
        let added = w.topic_id(topic).and_then(|topic| {
            batch.push(Entry {
                due,
                phys: u64::try_from(v.physical_offset()).unwrap_or(0),
                topic,
                flags: 0,
            });
            if batch.len() < INGEST_BATCH {
                return Ok(());
            }
            let r = w.add(&batch, at + 1, st.clock.now_ms());
            batch.clear();
            r
        });
        failed = added.err();
    });
    if let Some(e) = failed {
        return Err(e);
    }
    match scanned {
        Ok(next) => w.add(&batch, next, st.clock.now_ms()),
        Err(e) => {
            tracing::warn!("timer queue unreadable: {e}");
            Ok(())
        }
    }
}

/// Delivers every due entry; returns when the next one is due, if any is loaded.
fn deliver(st: &State, w: &mut Wheel) -> std::io::Result<Option<i64>> {
    loop {
        let now = st.clock.now_ms();
        let due = w.due(now, DELIVER_BATCH);
        if due.is_empty() {
            return Ok(w.next_due());
        }
        let mut msgs: Vec<NewMessage> = Vec::with_capacity(due.len());
        for (_, phys, _) in &due {
            match st.store.read_at(*phys) {
                Ok(Some(rec)) => match RecordView::parse(&rec).ok().and_then(|v| released(&v)) {
                    Some(m) => msgs.push(m),
                    None => tracing::warn!(phys, "scheduled record unusable; dropped"),
                },
                Ok(None) => tracing::warn!(phys, "scheduled record no longer stored; dropped"),
                Err(e) => {
                    tracing::warn!(phys, "scheduled record unreadable, retried later: {e}");
                    return Ok(Some(now + 1000));
                }
            }
        }
        if !msgs.is_empty() && !store_released(st, &msgs) {
            return Ok(Some(now + 1000));
        }
        let at = st.clock.now_ms();
        for (d, _, _) in &due {
            st.timer_lateness.record(at - d);
        }
        w.delivered(&due, at)?;
    }
}

/// Stores released messages; false if the store failed (the caller retries them later). A
/// message the store refuses for what it is (say a topic name it cannot hold) can never be
/// delivered: it is logged and dropped, so it does not hold back every message due after it.
fn store_released(st: &State, msgs: &[NewMessage]) -> bool {
    let e = match st.store.append_batch(msgs) {
        Ok(_) => {
            st.counters.stored(msgs.len());
            return true;
        }
        Err(e) => e,
    };
    if !e.is_message_error() {
        tracing::warn!("scheduled messages not delivered yet: {e}");
        return false;
    }
    // One by one, to keep the good ones. A store failure part way retries them all later,
    // so some may be delivered twice (at least once, as every redelivery).
    for m in msgs {
        match st.store.append_batch(std::slice::from_ref(m)) {
            Ok(_) => st.counters.stored(1),
            Err(e) if e.is_message_error() => {
                let topic: String = m.topic.chars().take(64).collect();
                tracing::error!(topic = %topic, "scheduled message refused by the store, dropped: {e}");
            }
            Err(e) => {
                tracing::warn!("scheduled messages not delivered yet: {e}");
                return false;
            }
        }
    }
    true
}

/// One pass: index, advance, deliver. Returns the time of the next due entry.
fn pass(st: &State, last_sync: &mut Instant) -> Option<i64> {
    let mut w = lock(&st.timer);
    let r = ingest(st, &mut w)
        .and_then(|()| w.advance(st.clock.now_ms()))
        .and_then(|()| deliver(st, &mut w));
    let next = match r {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("timer files: {e}");
            Some(st.clock.now_ms() + 1000)
        }
    };
    if last_sync.elapsed() >= SYNC_EVERY {
        *last_sync = Instant::now();
        if let Err(e) = w.sync() {
            tracing::error!("timer files not synced: {e}");
        }
    }
    next
}

/// The task: runs until shutdown (then syncs the wheel).
pub(crate) async fn run(st: Arc<State>) {
    let mut shutdown = st.shutdown.subscribe();
    let mut last_sync = Instant::now();
    loop {
        let s = st.clone();
        let (next, synced) = tokio::task::spawn_blocking(move || {
            let n = pass(&s, &mut last_sync);
            (n, last_sync)
        })
        .await
        .unwrap_or((None, Instant::now()));
        last_sync = synced;
        let wait = next.map_or(MAX_IDLE, |t| {
            Duration::from_millis(u64::try_from(t - st.clock.now_ms()).unwrap_or(0)).min(MAX_IDLE)
        });
        tokio::select! {
            _ = st.timer_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
    let s = st.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = lock(&s.timer).sync() {
            tracing::error!("timer files not synced at shutdown: {e}");
        }
    })
    .await;
}
