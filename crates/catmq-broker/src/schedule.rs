//! Delayed delivery by level (the 18 levels of Apache RocketMQ: retries and `DELAY` sends).
//!
//! A delayed message is stored at once in `SCHEDULE_TOPIC_XXXX`, queue `level - 1`, with its real
//! topic and queue in `REAL_TOPIC` / `REAL_QID`. Each level's queue is in store-time order, so
//! its due times are too: the delivery task reads each queue from its progress offset, re-appends
//! every message that is due to its real topic, and sleeps until the next due time or until a
//! message enters the schedule topic. The progress offsets are committed like a consumer
//! group's (`SCHEDULE_GROUP`), so after a restart delivery resumes where it was; a message
//! delivered in the last persist interval before a crash may be delivered twice, never lost.

use std::sync::Arc;
use std::time::Duration;

use catmq_common::{properties as props, NewMessage, RecordView};
use catmq_store::{ReadRequest, ReadStatus};

use crate::state::{now_ms, State};
use crate::topics::SCHEDULE_TOPIC;

/// The internal group whose offsets are the delivery progress of each level.
pub const SCHEDULE_GROUP: &str = "CATMQ_SCHEDULE";

/// The delay level a message asks for, if any (`DELAY` > 0).
pub(crate) fn delay_level(properties: &str) -> Option<i32> {
    props::get(properties, props::DELAY)
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|l| *l > 0)
}

/// Rewrites `msg` to wait in the schedule topic for `level` (capped at the highest level).
pub(crate) fn defer(st: &State, msg: &mut NewMessage, level: i32) {
    let max = i32::try_from(st.cfg.delay_levels.len()).unwrap_or(i32::MAX);
    let level = level.clamp(1, max);
    msg.properties = props::update(
        &msg.properties,
        &[
            (props::REAL_TOPIC, &msg.topic),
            (props::REAL_QID, &msg.queue_id.to_string()),
            (props::DELAY, &level.to_string()),
        ],
        &[],
    );
    msg.topic = SCHEDULE_TOPIC.to_owned();
    msg.queue_id = level - 1;
}

/// The message to deliver for a due schedule record.
fn released(view: &RecordView<'_>) -> Option<NewMessage> {
    let mut m = view.to_new_message();
    let topic = props::get(&m.properties, props::REAL_TOPIC)?.to_owned();
    let queue = props::get(&m.properties, props::REAL_QID)?.parse().ok()?;
    m.properties = props::update(&m.properties, &[], &[props::DELAY]);
    m.topic = topic;
    m.queue_id = queue;
    Some(m)
}

/// What one pass over a level found.
enum Level {
    /// Nothing left to look at.
    Idle,
    /// The next message is due at this time (ms).
    DueAt(i64),
}

fn level_pass(st: &State, queue: i32, delay_ms: i64, now: i64) -> Level {
    let committed = st.offsets.query(SCHEDULE_GROUP, SCHEDULE_TOPIC, queue);
    let mut offset = u64::try_from(committed.unwrap_or(0)).unwrap_or(0);
    loop {
        let req = ReadRequest {
            topic: SCHEDULE_TOPIC,
            queue_id: queue,
            offset,
            max_messages: 32,
            max_bytes: 4 << 20,
            tag_codes: None,
        };
        let r = match st.store.read(&req) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(queue, "schedule queue unreadable: {e}");
                return Level::DueAt(now + 1000);
            }
        };
        match r.status {
            ReadStatus::Found => {}
            ReadStatus::OffsetTooSmall | ReadStatus::OffsetOverflowBadly
                if r.next_offset != offset =>
            {
                offset = r.next_offset;
                commit(st, queue, offset);
                continue;
            }
            ReadStatus::NoMatchedMessage if r.next_offset > offset => {
                offset = r.next_offset;
                continue;
            }
            _ => return Level::Idle,
        }
        for rec in &r.messages {
            let Ok(view) = RecordView::parse(rec) else {
                tracing::warn!(queue, offset, "unparsable schedule record skipped");
                offset += 1;
                continue;
            };
            let due = view.store_timestamp().saturating_add(delay_ms);
            if due > now {
                commit(st, queue, offset);
                return Level::DueAt(due);
            }
            match released(&view) {
                Some(m) => {
                    if let Err(e) = st.store.append(&m) {
                        tracing::warn!(queue, "delayed message not delivered yet: {e}");
                        commit(st, queue, offset);
                        return Level::DueAt(now + 1000);
                    }
                    st.counters.stored(1);
                }
                None => tracing::warn!(
                    queue,
                    offset,
                    "schedule record without REAL_TOPIC/REAL_QID dropped"
                ),
            }
            offset = u64::try_from(view.queue_offset()).unwrap_or(offset) + 1;
        }
        commit(st, queue, offset);
    }
}

fn commit(st: &State, queue: i32, offset: u64) {
    let o = i64::try_from(offset).unwrap_or(i64::MAX);
    st.offsets.commit(SCHEDULE_GROUP, SCHEDULE_TOPIC, queue, o);
}

/// Delivers every due message; returns the next due time, if any message waits.
pub(crate) fn deliver_due(st: &State) -> Option<i64> {
    let now = now_ms();
    let mut next: Option<i64> = None;
    for (i, delay) in st.cfg.delay_levels.iter().enumerate() {
        let queue = i32::try_from(i).unwrap_or(i32::MAX);
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        if let Level::DueAt(t) = level_pass(st, queue, delay_ms, now) {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    }
    next
}

/// The delivery task: runs until shutdown.
pub(crate) async fn run(st: Arc<State>) {
    let mut shutdown = st.shutdown.subscribe();
    loop {
        let s = st.clone();
        let next = tokio::task::spawn_blocking(move || deliver_due(&s))
            .await
            .unwrap_or(Some(now_ms() + 1000));
        let wait = next.map_or(Duration::from_secs(3600), |t| {
            Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0))
        });
        tokio::select! {
            _ = st.schedule_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
