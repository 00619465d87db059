//! The send paths: prepare (validate, id, compress), choose a queue, attempt, retry.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use catmq_common::properties;
use catmq_common::record::sys_flag;
use catmq_protocol::batch::{encode_batch, BatchEntry};
use catmq_protocol::headers::{SendMessageRequestHeader, SendMessageResponseHeader};
use catmq_protocol::{RemotingCommand, RequestCode, ResponseCode};

use super::{Inner, QueueSelector, SendContext};
use crate::compress;
use crate::error::{ClientError, Result};
use crate::message::{
    new_uniq_id, now_ms, Message, MessageQueue, SendResult, SendStatus, TIMER_DELAY_MS,
    TIMER_DELIVER_MS,
};
use crate::route::Route;

/// Longest topic name.
const MAX_TOPIC_LEN: usize = 127;

pub(super) enum Target {
    Any,
    Queue(MessageQueue),
}

/// A message ready for the wire.
struct Prepared {
    topic: String,
    body: Bytes,
    sys_flag: i32,
    flag: i32,
    properties: String,
    uniq_id: String,
    batch: bool,
}

pub(crate) fn check_topic(topic: &str) -> Result<()> {
    let ok_chars = topic
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '-' | '_'));
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN || !ok_chars {
        return Err(ClientError::Invalid(format!(
            "topic {topic:?} is not valid: 1..={MAX_TOPIC_LEN} characters of [A-Za-z0-9%|_-]"
        )));
    }
    Ok(())
}

fn check_size(p: &Inner, len: usize) -> Result<()> {
    if len == 0 {
        return Err(ClientError::Invalid("message body is empty".into()));
    }
    if len > p.opts.max_message_size {
        return Err(ClientError::Invalid(format!(
            "message body is {len} bytes, over the producer's limit of {} bytes (max_message_size)",
            p.opts.max_message_size
        )));
    }
    Ok(())
}

/// Gives the message its unique id (unless it has one) and returns the id.
fn stamp_uniq(p: &Inner, msg: &mut Message) -> String {
    msg.properties
        .entry(properties::UNIQ_KEY.to_owned())
        .or_insert_with(|| new_uniq_id(p.instance.ip))
        .clone()
}

/// Checks the message, gives it its unique id, and compresses the body if large.
fn prepare(p: &Inner, msg: &mut Message) -> Result<Prepared> {
    check_topic(&msg.topic)?;
    check_size(p, msg.body.len())?;
    let uniq_id = stamp_uniq(p, msg);
    let (body, sys_flag) = if msg.body.len() > p.opts.compress_threshold {
        match compress::compress(&msg.body, p.opts.compression, p.opts.compress_level) {
            Ok(c) if c.len() < msg.body.len() => (c, p.opts.compression.sys_flag()),
            Ok(_) => (msg.body.clone(), 0),
            Err(e) => {
                tracing::warn!(error = %e, "compression failed; sending uncompressed");
                (msg.body.clone(), 0)
            }
        }
    } else {
        (msg.body.clone(), 0)
    };
    Ok(Prepared {
        topic: msg.topic.clone(),
        body,
        sys_flag,
        flag: msg.flag,
        properties: msg.encoded_properties(),
        uniq_id,
        batch: false,
    })
}

fn prepare_batch(p: &Inner, msgs: Vec<Message>) -> Result<Prepared> {
    let Some(topic) = msgs.first().map(|m| m.topic.clone()) else {
        return Err(ClientError::Invalid("batch is empty".into()));
    };
    check_topic(&topic)?;
    let mut entries = Vec::with_capacity(msgs.len());
    let mut ids = Vec::with_capacity(msgs.len());
    for mut m in msgs {
        if m.topic != topic {
            return Err(ClientError::Invalid(format!(
                "a batch goes to one topic: {} and {topic}",
                m.topic
            )));
        }
        if m.delay_level().is_some_and(|l| l > 0)
            || m.property(TIMER_DELIVER_MS).is_some()
            || m.property(TIMER_DELAY_MS).is_some()
        {
            return Err(ClientError::Invalid(
                "messages in a batch cannot be delayed".into(),
            ));
        }
        if m.body.is_empty() {
            return Err(ClientError::Invalid("message body is empty".into()));
        }
        ids.push(stamp_uniq(p, &mut m));
        entries.push(BatchEntry {
            flag: m.flag,
            properties: m.encoded_properties(),
            body: m.body,
        });
    }
    let body = encode_batch(&entries).map_err(|e| ClientError::Invalid(e.to_string()))?;
    check_size(p, body.len())?;
    Ok(Prepared {
        topic,
        body,
        sys_flag: 0,
        flag: 0,
        properties: String::new(),
        uniq_id: ids.join(","),
        batch: true,
    })
}

/// A writable queue, round robin, skipping paused brokers and the one that just failed.
fn choose(p: &Inner, route: &Route, avoid: Option<&str>) -> Option<MessageQueue> {
    let queues = &route.write_queues;
    let n = queues.len();
    if n == 0 {
        return None;
    }
    let start = p.next_queue.fetch_add(1, Ordering::Relaxed);
    let nth = |i: usize| &queues[(start + i) % n];
    let usable = |q: &MessageQueue| avoid != Some(q.broker_name.as_str());
    let healthy =
        |q: &MessageQueue| !p.opts.avoid_faulty_brokers || p.faults.available(&q.broker_name);
    (0..n)
        .map(nth)
        .find(|q| usable(q) && healthy(q))
        .or_else(|| (0..n).map(nth).find(|q| usable(q)))
        .or_else(|| Some(nth(0)))
        .cloned()
}

async fn route_for(p: &Inner, topic: &str) -> Result<std::sync::Arc<Route>> {
    p.instance
        .send_route(
            topic,
            &p.opts.default_topic,
            p.opts.default_topic_queue_nums,
        )
        .await
}

fn request(p: &Inner, m: &Prepared, q: &MessageQueue) -> RemotingCommand {
    let h = SendMessageRequestHeader {
        producer_group: p.group.clone(),
        topic: m.topic.clone(),
        default_topic: p.opts.default_topic.clone(),
        default_topic_queue_nums: p.opts.default_topic_queue_nums,
        queue_id: q.queue_id,
        sys_flag: m.sys_flag,
        born_timestamp: now_ms(),
        flag: m.flag,
        properties: Some(m.properties.clone()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(m.batch),
        max_reconsume_times: None,
        broker_name: Some(q.broker_name.clone()),
    };
    let code = if m.batch {
        RequestCode::SendBatchMessage
    } else {
        RequestCode::SendMessageV2
    };
    RemotingCommand::request(code.as_i32(), h.to_ext(true), m.body.clone())
}

fn result_of(
    addr: &str,
    m: &Prepared,
    q: &MessageQueue,
    resp: &RemotingCommand,
) -> Result<SendResult> {
    let status = match ResponseCode::from_i32(resp.code) {
        Some(ResponseCode::Success) => SendStatus::SendOk,
        Some(ResponseCode::FlushDiskTimeout) => SendStatus::FlushDiskTimeout,
        Some(ResponseCode::FlushSlaveTimeout) => SendStatus::FlushSlaveTimeout,
        Some(ResponseCode::SlaveNotAvailable) => SendStatus::SlaveNotAvailable,
        _ => return Err(ClientError::refused(addr, resp)),
    };
    let h =
        SendMessageResponseHeader::from_ext(&resp.ext).map_err(|e| ClientError::decode(addr, e))?;
    Ok(SendResult {
        status,
        msg_id: m.uniq_id.clone(),
        offset_msg_id: h.msg_id,
        queue: MessageQueue {
            queue_id: h.queue_id,
            ..q.clone()
        },
        queue_offset: h.queue_offset,
        region: h.msg_region,
        recall_handle: h.recall_handle,
    })
}

/// The master address of the queue's broker.
fn master_addr<'r>(route: &'r Route, q: &MessageQueue) -> Result<&'r str> {
    route
        .addr(&q.broker_name)
        .ok_or_else(|| ClientError::NoRoute {
            topic: q.topic.clone(),
            reason: format!("broker {} has no master address", q.broker_name),
        })
}

/// One attempt at one queue.
async fn attempt(
    p: &Inner,
    msg: &Message,
    m: &Prepared,
    route: &Route,
    q: &MessageQueue,
) -> Result<SendResult> {
    let addr = master_addr(route, q)?;
    let ctx = SendContext {
        message: msg,
        queue: q,
        broker_addr: addr,
    };
    p.hooks.iter().for_each(|h| h.before(&ctx));
    let started = Instant::now();
    let sent = p
        .instance
        .remote
        .request(addr, request(p, m, q), p.opts.send_timeout)
        .await;
    let outcome = sent.and_then(|resp| result_of(addr, m, q, &resp));
    let failed = outcome.as_ref().is_err_and(ClientError::is_retryable);
    p.faults.record(&q.broker_name, started.elapsed(), failed);
    p.hooks
        .iter()
        .for_each(|h| h.after(&ctx, outcome.as_ref().map(Some)));
    outcome
}

/// Sends with retries: each retry goes to another broker when the route has one.
async fn deliver(p: &Inner, msg: &Message, m: Prepared, target: Target) -> Result<SendResult> {
    let attempts = match target {
        Target::Any => 1 + p.opts.retries,
        Target::Queue(_) => 1,
    };
    let mut avoid: Option<String> = None;
    let mut last_err = None;
    for _ in 0..attempts {
        let route = match route_for(p, &m.topic).await {
            Ok(r) => r,
            Err(e) if e.is_retryable() => {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let q = match &target {
            Target::Queue(q) => Some(q.clone()),
            Target::Any => choose(p, &route, avoid.as_deref()),
        };
        let Some(q) = q else {
            return Err(ClientError::NoRoute {
                topic: m.topic.clone(),
                reason: "no writable queue".into(),
            });
        };
        match attempt(p, msg, &m, &route, &q).await {
            Ok(r) if r.status == SendStatus::SendOk || !p.opts.retry_when_not_stored_ok => {
                return Ok(r)
            }
            Ok(r) => {
                avoid = Some(q.broker_name.clone());
                last_err = None;
                tracing::debug!(status = ?r.status, broker = %q.broker_name, "stored but not OK; retrying");
                if attempts == 1 {
                    return Ok(r);
                }
            }
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, broker = %q.broker_name, "send failed; retrying");
                if e.response_code() == Some(ResponseCode::TopicNotExist.as_i32()) {
                    p.instance.forget_route(&m.topic);
                }
                avoid = Some(q.broker_name.clone());
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| ClientError::NoRoute {
        topic: m.topic.clone(),
        reason: "every attempt was stored without OK status".into(),
    }))
}

pub(super) async fn send(p: &Inner, mut msg: Message, target: Target) -> Result<SendResult> {
    let prepared = prepare(p, &mut msg)?;
    deliver(p, &msg, prepared, target).await
}

/// Sends `msg` as a half (prepared) transactional message of the producer's group.
pub(super) async fn send_half(p: &Inner, mut msg: Message) -> Result<SendResult> {
    msg.properties
        .insert(properties::TRAN_MSG.to_owned(), "true".to_owned());
    msg.properties
        .insert(properties::PGROUP.to_owned(), p.group.clone());
    msg.properties.remove(properties::DELAY);
    let mut prepared = prepare(p, &mut msg)?;
    prepared.sys_flag |= sys_flag::TRANSACTION_PREPARED;
    deliver(p, &msg, prepared, Target::Any).await
}

pub(super) async fn send_batch(p: &Inner, msgs: Vec<Message>) -> Result<SendResult> {
    let first = msgs.first().cloned().unwrap_or_default();
    let prepared = prepare_batch(p, msgs)?;
    deliver(p, &first, prepared, Target::Any).await
}

pub(super) async fn send_oneway(p: &Inner, mut msg: Message) -> Result<()> {
    let m = prepare(p, &mut msg)?;
    let route = route_for(p, &m.topic).await?;
    let q = choose(p, &route, None).ok_or_else(|| ClientError::NoRoute {
        topic: m.topic.clone(),
        reason: "no writable queue".into(),
    })?;
    let addr = master_addr(&route, &q)?;
    let ctx = SendContext {
        message: &msg,
        queue: &q,
        broker_addr: addr,
    };
    p.hooks.iter().for_each(|h| h.before(&ctx));
    let r = p.instance.remote.oneway(addr, request(p, &m, &q)).await;
    p.hooks
        .iter()
        .for_each(|h| h.after(&ctx, r.as_ref().map(|_| None)));
    r
}

pub(super) async fn select_queue(
    p: &Inner,
    msg: &Message,
    selector: &dyn QueueSelector,
    arg: &str,
) -> Result<MessageQueue> {
    check_topic(&msg.topic)?;
    let route = route_for(p, &msg.topic).await?;
    let queues = &route.write_queues;
    if queues.is_empty() {
        return Err(ClientError::NoRoute {
            topic: msg.topic.clone(),
            reason: "no writable queue".into(),
        });
    }
    let i = selector.select(queues, msg, arg);
    queues.get(i).cloned().ok_or_else(|| {
        ClientError::Invalid(format!(
            "the queue selector chose index {i} of {} queues",
            queues.len()
        ))
    })
}
