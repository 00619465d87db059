//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320).
//!
//! The append happens on the connection's task and the answer leaves as soon as the store has
//! the message (async flush) or as soon as the fsync covering it is done (sync flush): no queue
//! hand-off or timer sits on this path.

use std::sync::Arc;
use std::time::Duration;

use catmq_common::msgid::offset_msg_id;
use catmq_common::{properties as props, NewMessage};
use catmq_protocol::batch::decode_batch;
use catmq_protocol::body::{perm, TopicConfig};
use catmq_protocol::headers::{SendMessageRequestHeader, SendMessageResponseHeader};
use catmq_protocol::{RemotingCommand, RequestCode, ResponseCode};
use catmq_remoting::{Connection, Handled};
use catmq_store::{AppendResult, StoreError};

use super::{malformed, refuse, Answer};
use crate::state::{lock, now_ms, State};
use crate::topics::{
    dlq_topic, is_system_topic, topic_name_error, DLQ_PREFIX, RETRY_PREFIX, TIMER_TOPIC,
};
use crate::{timer, txn};

/// How long a sync-flush send waits for its fsync before answering FLUSH_DISK_TIMEOUT.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Most messages in one batch.
const MAX_BATCH: usize = 65_536;

/// The response for a failed append.
pub(crate) fn store_error_response(req: &RemotingCommand, e: &StoreError) -> RemotingCommand {
    let code = match e {
        StoreError::MessageTooLarge { .. }
        | StoreError::InvalidMessage(_)
        | StoreError::EmptyBatch
        | StoreError::BadQueueId { .. } => ResponseCode::MessageIllegal,
        StoreError::Poisoned { .. } | StoreError::Closed => ResponseCode::ServiceNotAvailable,
        _ => ResponseCode::SystemError,
    };
    refuse(req, code, format!("store refused the message: {e}"))
}

pub(crate) fn send(st: &Arc<State>, conn: &Arc<Connection>, req: &RemotingCommand) -> Answer {
    let h = if req.code == RequestCode::SendMessage.as_i32() {
        SendMessageRequestHeader::from_ext(&req.ext)
    } else {
        SendMessageRequestHeader::from_ext_v2(&req.ext)
    }
    .map_err(malformed(req))?;
    let batch = req.code == RequestCode::SendBatchMessage.as_i32() || h.batch == Some(true);
    if st.cfg.broker_permission & perm::WRITE == 0 {
        return Err(refuse(
            req,
            ResponseCode::NoPermission,
            format!(
                "the broker[{}] sending message is forbidden",
                st.cfg.broker_name
            ),
        ));
    }
    let topic = resolve_topic(st, req, &h)?;
    let queue_id = choose_queue(st, req, &h, &topic)?;
    let properties = h.properties.clone().unwrap_or_default();
    let base = NewMessage {
        topic: h.topic.clone(),
        queue_id,
        flag: h.flag,
        body: req.body.clone(),
        properties,
        sys_flag: h.sys_flag,
        born_timestamp: h.born_timestamp,
        born_host: conn.peer(),
        reconsume_times: h.reconsume_times.unwrap_or(0),
        prepared_transaction_offset: 0,
    };
    if txn::is_prepared(&base) {
        if batch {
            return Err(refuse(
                req,
                ResponseCode::MessageIllegal,
                "a batch cannot be transactional",
            ));
        }
        let result =
            txn::store_half(st, conn, base.clone()).map_err(|e| store_error_response(req, &e))?;
        st.counters.stored(1);
        let resp = response(st, req, &[base], queue_id, &result);
        return Ok(answer_when_durable(st, req, &[], result.end, resp));
    }
    let msgs = if batch {
        unpack_batch(st, req, base)?
    } else {
        vec![route(st, req, &h, base)?]
    };
    let result = st
        .store
        .append_batch(&msgs)
        .map_err(|e| store_error_response(req, &e))?;
    st.counters.stored(msgs.len());
    let resp = response(st, req, &msgs, queue_id, &result);
    Ok(answer_when_durable(st, req, &msgs, result.end, resp))
}

fn resolve_topic(
    st: &State,
    req: &RemotingCommand,
    h: &SendMessageRequestHeader,
) -> Answer<TopicConfig> {
    if let Some(e) = topic_name_error(&h.topic) {
        return Err(refuse(req, ResponseCode::MessageIllegal, e));
    }
    if is_system_topic(&h.topic) {
        return Err(refuse(
            req,
            ResponseCode::MessageIllegal,
            format!(
                "the topic[{}] is a system topic; send to it is not allowed",
                h.topic
            ),
        ));
    }
    if let Some(c) = lock(&st.topics).get(&h.topic) {
        return Ok(c.clone());
    }
    let now = now_ms();
    let created = if let Some(group) = h.topic.strip_prefix(RETRY_PREFIX) {
        let queues = retry_queue_nums(st, group);
        lock(&st.topics)
            .ensure(&h.topic, queues, now)
            .map(|(c, _)| Some(c))
    } else if st.cfg.auto_create_topic && !h.default_topic.is_empty() {
        lock(&st.topics).create_on_send(
            &h.topic,
            &h.default_topic,
            h.default_topic_queue_nums,
            0,
            now,
        )
    } else {
        Ok(None)
    };
    match created {
        Ok(Some(c)) => {
            st.register_wake.notify_one();
            Ok(c)
        }
        Ok(None) => Err(refuse(
            req,
            ResponseCode::TopicNotExist,
            format!("topic[{}] not exist, apply first please!", h.topic),
        )),
        Err(e) => Err(refuse(req, ResponseCode::SystemError, e.to_string())),
    }
}

fn retry_queue_nums(st: &State, group: &str) -> i32 {
    lock(&st.groups)
        .get(group)
        .map_or(1, |g| g.retry_queue_nums.max(1))
}

fn choose_queue(
    st: &State,
    req: &RemotingCommand,
    h: &SendMessageRequestHeader,
    topic: &TopicConfig,
) -> Answer<i32> {
    if topic.perm & perm::WRITE == 0 {
        return Err(refuse(
            req,
            ResponseCode::NoPermission,
            format!("the topic[{}] sending message is forbidden", h.topic),
        ));
    }
    let queues = topic.write_queue_nums.max(topic.read_queue_nums);
    if h.queue_id >= queues {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            format!(
                "request queueId[{}] is illegal: topic {} has {} queues",
                h.queue_id, h.topic, queues
            ),
        ));
    }
    Ok(if h.queue_id < 0 {
        st.pick_queue(topic.write_queue_nums)
    } else {
        h.queue_id
    })
}

/// The recall handle of a message sent to the timer (not for retries).
fn recall_handle(st: &State, m: &NewMessage) -> Option<String> {
    if m.topic != TIMER_TOPIC {
        return None;
    }
    let p = &m.properties;
    let topic = props::get(p, props::REAL_TOPIC).filter(|t| !t.starts_with(RETRY_PREFIX))?;
    let id = props::get(p, props::UNIQ_KEY)?;
    let due = props::get(p, timer::TIMER_OUT_MS)?.parse().ok()?;
    Some(timer::recall_handle(st, topic, id, due))
}

/// Retry-topic sends beyond the group's retries go to its dead-letter topic; delayed ones wait
/// in the schedule topic.
fn route(
    st: &State,
    req: &RemotingCommand,
    h: &SendMessageRequestHeader,
    mut msg: NewMessage,
) -> Answer<NewMessage> {
    if let Some(group) = h.topic.strip_prefix(RETRY_PREFIX) {
        let cfg = super::find_group(st, req, group)?;
        let max = h.max_reconsume_times.unwrap_or(cfg.retry_max_times);
        if msg.reconsume_times > max {
            let dlq = dlq_topic(group);
            let made = lock(&st.topics).ensure(&dlq, 1, now_ms());
            if made
                .map_err(|e| refuse(req, ResponseCode::SystemError, e.to_string()))?
                .1
            {
                st.register_wake.notify_one();
            }
            tracing::info!(
                group,
                reconsume = msg.reconsume_times,
                "message moved to the dead-letter topic"
            );
            msg.topic = dlq;
            msg.queue_id = 0;
            msg.properties = props::update(&msg.properties, &[], &[props::DELAY]);
        }
    }
    timer::defer_if_scheduled(st, &mut msg)
        .map_err(|e| refuse(req, ResponseCode::MessageIllegal, e.0))?;
    Ok(msg)
}

fn unpack_batch(st: &State, req: &RemotingCommand, base: NewMessage) -> Answer<Vec<NewMessage>> {
    if base.topic.starts_with(RETRY_PREFIX) {
        return Err(refuse(
            req,
            ResponseCode::MessageIllegal,
            "batch request does not support retry group",
        ));
    }
    let entries = decode_batch(&req.body, MAX_BATCH)
        .map_err(|e| refuse(req, ResponseCode::MessageIllegal, e.to_string()))?;
    if entries.is_empty() {
        return Err(refuse(req, ResponseCode::MessageIllegal, "empty batch"));
    }
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let asks = timer::requested_due(st, &e.properties, 0)
            .map_err(|e| refuse(req, ResponseCode::MessageIllegal, e.0))?;
        if asks.is_some() {
            return Err(refuse(
                req,
                ResponseCode::MessageIllegal,
                "messages in a batch cannot be delayed",
            ));
        }
        out.push(NewMessage {
            flag: e.flag,
            body: e.body,
            properties: e.properties,
            ..base.clone()
        });
    }
    Ok(out)
}

fn response(
    st: &State,
    req: &RemotingCommand,
    msgs: &[NewMessage],
    queue_id: i32,
    result: &AppendResult,
) -> RemotingCommand {
    let ids: Vec<String> = result
        .messages
        .iter()
        .map(|a| {
            offset_msg_id(
                st.addr,
                i64::try_from(a.physical_offset).unwrap_or(i64::MAX),
            )
        })
        .collect();
    let first = result.messages.first();
    let header = SendMessageResponseHeader {
        msg_id: ids.join(","),
        queue_id: if msgs
            .first()
            .is_some_and(|m| m.topic.starts_with(DLQ_PREFIX))
        {
            0
        } else {
            queue_id
        },
        queue_offset: first.map_or(0, |a| i64::try_from(a.queue_offset).unwrap_or(i64::MAX)),
        transaction_id: msgs
            .first()
            .and_then(|m| props::get(&m.properties, props::UNIQ_KEY))
            .map(str::to_owned),
        batch_uniq_id: None,
        msg_region: Some("DefaultRegion".into()),
        trace_on: Some("true".into()),
        recall_handle: msgs.first().and_then(|m| recall_handle(st, m)),
    };
    RemotingCommand::response_to(req, ResponseCode::Success).with_ext(header.to_ext())
}

fn answer_when_durable(
    st: &State,
    req: &RemotingCommand,
    msgs: &[NewMessage],
    end: u64,
    resp: RemotingCommand,
) -> Handled {
    let wait = st.sync_flush
        && msgs
            .first()
            .is_none_or(|m| props::get(&m.properties, props::WAIT) != Some("false"));
    if !wait {
        return resp.into();
    }
    let waiter = st.store.flush_waiter();
    if waiter.flushed() >= end {
        return resp.into();
    }
    let (opaque, ser) = (req.opaque, req.serialize);
    Handled::Later(Box::pin(async move {
        let failed =
            |code, remark: String| RemotingCommand::response(opaque, ser, code).with_remark(remark);
        let reply = match tokio::time::timeout(FLUSH_TIMEOUT, waiter.wait(end)).await {
            Ok(Ok(())) => resp,
            Ok(Err(e)) => failed(
                ResponseCode::ServiceNotAvailable,
                format!("flush failed: {e}"),
            ),
            Err(_) => failed(
                ResponseCode::FlushDiskTimeout,
                "the message is stored but its fsync did not finish in time".into(),
            ),
        };
        Some(reply.into())
    }))
}
