//! Cancelling a scheduled message (RECALL_MESSAGE, 370) and looking one up.

use bytes::Bytes;
use catmq_common::{properties as props, RecordView};
use catmq_protocol::headers::RecallHandle;

use super::due_of;
use super::task::ingest;
use super::wheel::{Cancel, Whereabouts};
use crate::state::{lock, State};
use crate::topics::TIMER_TOPIC;

/// The recall handle for a scheduled message sent to `topic` with id `msg_id`, due at `due`.
pub(crate) fn recall_handle(st: &State, topic: &str, msg_id: &str, due: i64) -> String {
    RecallHandle {
        topic: topic.to_owned(),
        broker_name: st.cfg.broker_name.clone(),
        timestamp: due.saturating_add(1).to_string(),
        msg_id: msg_id.to_owned(),
    }
    .encode()
}

/// A scheduled record found by its unique id.
pub(crate) struct Scheduled {
    pub record: Bytes,
    pub due: i64,
    pub phys: u64,
}

/// The scheduled record of `topic` whose `UNIQ_KEY` is `msg_id`.
pub(crate) fn find(st: &State, topic: &str, msg_id: &str) -> Result<Option<Scheduled>, String> {
    let found = st
        .store
        .query_by_key(TIMER_TOPIC, msg_id, 0, i64::MAX, 32)
        .map_err(|e| format!("the key index is unreadable: {e}"))?;
    for record in found {
        let Ok(v) = RecordView::parse(&record) else {
            continue;
        };
        let p = v.properties().unwrap_or_default();
        if props::get(p, props::REAL_TOPIC) != Some(topic)
            || props::get(p, props::UNIQ_KEY) != Some(msg_id)
        {
            continue;
        }
        let (Some(due), Ok(phys)) = (due_of(&v), u64::try_from(v.physical_offset())) else {
            continue;
        };
        return Ok(Some(Scheduled { record, due, phys }));
    }
    Ok(None)
}

/// Why a recall failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecallError {
    NotFound,
    TooLate,
    Failed(String),
}

/// Cancels the scheduled message `msg_id` of `topic`; `Ok(false)` when it was cancelled before.
pub(crate) fn recall(st: &State, topic: &str, msg_id: &str) -> Result<bool, RecallError> {
    let s = find(st, topic, msg_id)
        .map_err(RecallError::Failed)?
        .ok_or(RecallError::NotFound)?;
    let mut w = lock(&st.timer);
    let io = |e: std::io::Error| RecallError::Failed(format!("timer files: {e}"));
    ingest(st, &mut w).map_err(io)?;
    let id = w.topic_id(topic).map_err(io)?;
    match w.cancel(s.due, s.phys, id, st.clock.now_ms()).map_err(io)? {
        Cancel::Cancelled => {
            tracing::info!(topic, msg_id, due = s.due, "scheduled message recalled");
            Ok(true)
        }
        Cancel::AlreadyCancelled => Ok(false),
        Cancel::TooLate => Err(RecallError::TooLate),
    }
}

/// Where the scheduled message `msg_id` of `topic` is: (due time, state, the record).
pub(crate) fn whereabouts(
    st: &State,
    topic: &str,
    msg_id: &str,
) -> Result<Option<(i64, Whereabouts, Bytes)>, String> {
    let Some(s) = find(st, topic, msg_id)? else {
        return Ok(None);
    };
    let mut w = lock(&st.timer);
    ingest(st, &mut w).map_err(|e| format!("timer files: {e}"))?;
    let state = w.whereabouts(s.due, s.phys, st.clock.now_ms());
    Ok(Some((s.due, state, s.record)))
}
