//! Scheduled messages: RECALL_MESSAGE (370), GET_TIMER_METRICS (61) and CatMQ's per-message
//! lookup (CATMQ_QUERY_TIMER_MESSAGE).

use catmq_common::RecordView;
use catmq_protocol::headers::{
    QueryTimerMessageRequestHeader, RecallHandle, RecallMessageRequestHeader,
    RecallMessageResponseHeader,
};
use catmq_protocol::{RemotingCommand, ResponseCode};
use serde_json::json;

use super::{malformed, ok, refuse, Answer};
use crate::state::{lock, State};
use crate::timer::wheel::Whereabouts;
use crate::timer::{self, RecallError};

pub(crate) fn recall(st: &State, req: &RemotingCommand) -> Answer {
    let h = RecallMessageRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let illegal = |m: String| refuse(req, ResponseCode::IllegalOperation, m);
    let handle = RecallHandle::decode(&h.recall_handle).map_err(illegal)?;
    if handle.topic != h.topic {
        return Err(illegal("recall failed, topic not match".into()));
    }
    if handle.broker_name != st.cfg.broker_name {
        return Err(illegal(format!(
            "recall failed, the handle names broker {} and this is {}",
            handle.broker_name, st.cfg.broker_name
        )));
    }
    match timer::recall(st, &h.topic, &handle.msg_id) {
        Ok(first) => {
            let header = RecallMessageResponseHeader {
                msg_id: handle.msg_id,
            };
            let resp = ok(req).with_ext(header.to_ext());
            Ok(if first {
                resp
            } else {
                resp.with_remark("the message was recalled before")
            }
            .into())
        }
        Err(RecallError::NotFound) => Err(illegal(format!(
            "recall failed, no scheduled message {} in topic {}",
            handle.msg_id, h.topic
        ))),
        Err(RecallError::TooLate) => Err(illegal(
            "recall failed, timestamp invalid: the message was delivered already".into(),
        )),
        Err(RecallError::Failed(e)) => Err(refuse(
            req,
            ResponseCode::SystemError,
            format!("recall failed, execute error: {e}"),
        )),
    }
}

pub(crate) fn query(st: &State, req: &RemotingCommand) -> Answer {
    let h = QueryTimerMessageRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let found = timer::whereabouts(st, &h.topic, &h.msg_id)
        .map_err(|e| refuse(req, ResponseCode::SystemError, e))?;
    let Some((due, state, record)) = found else {
        return Err(refuse(
            req,
            ResponseCode::QueryNotFound,
            format!("no scheduled message {} in topic {}", h.msg_id, h.topic),
        ));
    };
    let state = match state {
        Whereabouts::Pending => "PENDING",
        Whereabouts::Cancelled => "CANCELLED",
        Whereabouts::Delivered => "DELIVERED",
    };
    let body = json!({
        "topic": h.topic,
        "msgId": h.msg_id,
        "dueMs": due,
        "state": state,
        "nowMs": st.clock.now_ms(),
        "storeTimestamp": RecordView::parse(&record).map_or(0, |v| v.store_timestamp()),
    });
    Ok(ok(req).with_body(body.to_string()).into())
}

/// GET_TIMER_METRICS: Apache RocketMQ's shape (`timingCount`: topic → count) plus CatMQ's
/// delivery lateness.
pub(crate) fn metrics(st: &State, req: &RemotingCommand) -> Answer {
    let now = st.clock.now_ms();
    let counts = lock(&st.timer).counts();
    let pending: u64 = counts.values().sum();
    let timing: serde_json::Map<String, serde_json::Value> = counts
        .into_iter()
        .map(|(t, n)| (t, json!({"count": n, "timeStamp": now})))
        .collect();
    let l = st.timer_lateness.summary();
    let body = json!({
        "dataVersion": {"counter": 0, "stateVersion": 0, "timestamp": now},
        "timingCount": timing,
        "scheduled": pending,
        "lateness": {
            "delivered": l.delivered,
            "p50Ms": l.p50,
            "p99Ms": l.p99,
            "maxMs": l.max,
        },
    });
    Ok(ok(req).with_body(body.to_string()).into())
}
