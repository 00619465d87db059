//! Client registration and consumer bookkeeping: HEART_BEAT (34), UNREGISTER_CLIENT (35),
//! GET_CONSUMER_LIST_BY_GROUP (38), QUERY/UPDATE_CONSUMER_OFFSET (14/15), GET_MAX/MIN_OFFSET
//! (30/31), GET_EARLIEST_MSG_STORETIME (32), SEARCH_OFFSET_BY_TIMESTAMP (29), LOCK/UNLOCK_BATCH_MQ
//! (41/42).

use std::sync::Arc;
use std::time::Instant;

use catmq_protocol::body::{
    self, ConsumerListBody, HeartbeatData, LockBatchRequestBody, LockBatchResponseBody,
};
use catmq_protocol::headers::{
    ConsumerGroupRequestHeader, GetMaxOffsetRequestHeader, OffsetResponseHeader,
    QueryConsumerOffsetRequestHeader, QueueRequestHeader, SearchOffsetRequestHeader,
    TimestampResponseHeader, UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use catmq_protocol::{RemotingCommand, RequestCode, ResponseCode};
use catmq_remoting::{Connection, Handled};
use catmq_store::Boundary;

use super::{malformed, ok, refuse, Answer};
use crate::clients::ClientChannel;
use crate::state::{lock, now_ms, State};
use crate::topics::{group_name_error, retry_topic};

fn offset_reply(req: &RemotingCommand, offset: i64) -> Handled {
    ok(req)
        .with_ext(OffsetResponseHeader { offset }.to_ext())
        .into()
}

/// Checks the heartbeat's consumer group names, then creates the missing groups and their
/// retry topics: one save of each table however many groups the heartbeat names.
fn ensure_groups(st: &State, req: &RemotingCommand, hb: &HeartbeatData) -> Answer<()> {
    let sys_err = |e: crate::BrokerError| refuse(req, ResponseCode::SystemError, e.to_string());
    let names: Vec<&str> = hb
        .consumer_data_set
        .iter()
        .map(|c| c.group_name.as_str())
        .filter(|g| !g.is_empty())
        .collect();
    if let Some(e) = names.iter().find_map(|g| group_name_error(g)) {
        return Err(refuse(req, ResponseCode::SystemError, e));
    }
    let groups = lock(&st.groups)
        .find_or_create_all(names, st.cfg.auto_create_group, now_ms())
        .map_err(sys_err)?;
    let retry: Vec<(String, i32)> = groups
        .iter()
        .map(|g| (retry_topic(&g.group_name), g.retry_queue_nums))
        .collect();
    if lock(&st.topics)
        .ensure_all(&retry, now_ms())
        .map_err(sys_err)?
    {
        st.register_wake.notify_one();
    }
    Ok(())
}

pub(crate) fn heartbeat(st: &Arc<State>, conn: &Arc<Connection>, req: &RemotingCommand) -> Answer {
    let hb: HeartbeatData = body::decode("heartbeat", &req.body).map_err(malformed(req))?;
    let now = Instant::now();
    let chan = |id: &str| ClientChannel {
        client_id: id.to_owned(),
        conn: conn.clone(),
        language: req.language,
        version: req.version,
        last_seen: now,
    };
    ensure_groups(st, req, &hb)?;
    for c in &hb.consumer_data_set {
        if c.group_name.is_empty() {
            continue;
        }
        let changed = lock(&st.clients).register_consumer(c, chan(&hb.client_id));
        if changed {
            tracing::info!(group = %c.group_name, client = %hb.client_id, "consumer group membership changed");
            st.notify_ids_changed(&c.group_name);
        }
    }
    for p in &hb.producer_data_set {
        if !p.group_name.is_empty() {
            lock(&st.clients).register_producer(&p.group_name, chan(&hb.client_id));
        }
    }
    Ok(ok(req).into())
}

pub(crate) fn unregister(st: &Arc<State>, conn: &Arc<Connection>, req: &RemotingCommand) -> Answer {
    let h = UnregisterClientRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    if let Some(g) = h.producer_group.as_deref().filter(|g| !g.is_empty()) {
        lock(&st.clients).unregister_producer(g, conn.id());
    }
    if let Some(g) = h.consumer_group.as_deref().filter(|g| !g.is_empty()) {
        let changed = lock(&st.clients).unregister_consumer(g, conn.id());
        if changed {
            st.notify_ids_changed(g);
        }
    }
    Ok(ok(req).into())
}

pub(crate) fn consumer_list(st: &State, req: &RemotingCommand) -> Answer {
    let h = ConsumerGroupRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let ids = lock(&st.clients)
        .consumer_group(&h.consumer_group)
        .map(|g| g.client_ids())
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            format!("no consumer of group {} is online", h.consumer_group),
        ));
    }
    let b = ConsumerListBody {
        consumer_id_list: ids,
    };
    Ok(ok(req).with_body(body::encode(&b)).into())
}

pub(crate) fn query_offset(st: &State, req: &RemotingCommand) -> Answer {
    let h = QueryConsumerOffsetRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    if let Some(o) = st.offsets.query(&h.consumer_group, &h.topic, h.queue_id) {
        return Ok(offset_reply(req, o));
    }
    // As Apache RocketMQ: a group new to a queue that still starts at 0 starts there, unless the
    // client asked not to (then it applies its consume-from-where).
    let min = st
        .store
        .queue_info(&h.topic, h.queue_id)
        .map_or(0, |q| q.min_offset);
    if h.set_zero_if_not_found != Some(false) && min == 0 {
        return Ok(offset_reply(req, 0));
    }
    Err(refuse(
        req,
        ResponseCode::QueryNotFound,
        "Not found, maybe this group consumer boot first",
    ))
}

pub(crate) fn update_offset(st: &State, req: &RemotingCommand) -> Answer {
    let h = UpdateConsumerOffsetRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    if h.commit_offset < 0 {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            format!("offset {} is negative", h.commit_offset),
        ));
    }
    if let Some(e) = group_name_error(&h.consumer_group) {
        return Err(refuse(req, ResponseCode::SystemError, e));
    }
    // Offsets only for queues that exist (as Apache RocketMQ): the offset table is persisted
    // and must not grow with whatever names a client sends.
    let queues = lock(&st.topics)
        .get(&h.topic)
        .map(|t| t.read_queue_nums.max(t.write_queue_nums));
    let Some(queues) = queues else {
        let shown: String = h.topic.chars().take(127).collect();
        return Err(refuse(
            req,
            ResponseCode::TopicNotExist,
            format!("topic {shown} not exist"),
        ));
    };
    if !(0..queues).contains(&h.queue_id) {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            format!(
                "queue {} of topic {} does not exist (it has {queues})",
                h.queue_id, h.topic
            ),
        ));
    }
    st.offsets
        .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
    Ok(ok(req).into())
}

pub(crate) fn queue_offset(st: &State, req: &RemotingCommand, code: RequestCode) -> Answer {
    let (topic, queue) = if code == RequestCode::GetMaxOffset {
        let h = GetMaxOffsetRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
        (h.topic, h.queue_id)
    } else {
        let h = QueueRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
        (h.topic, h.queue_id)
    };
    let info = st.store.queue_info(&topic, queue);
    let v = info.map_or(0, |q| {
        if code == RequestCode::GetMaxOffset {
            q.max_offset
        } else {
            q.min_offset
        }
    });
    Ok(offset_reply(req, i64::try_from(v).unwrap_or(i64::MAX)))
}

pub(crate) fn earliest_time(st: &State, req: &RemotingCommand) -> Answer {
    let h = QueueRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let min = st
        .store
        .queue_info(&h.topic, h.queue_id)
        .map_or(0, |q| q.min_offset);
    let ts = super::store_time_at(st, &h.topic, h.queue_id, min)
        .map_err(|e| super::store_error_response(req, &e))?;
    match ts {
        Some(timestamp) => Ok(ok(req)
            .with_ext(TimestampResponseHeader { timestamp }.to_ext())
            .into()),
        None => Err(refuse(
            req,
            ResponseCode::SystemError,
            format!("queue {}:{} has no message", h.topic, h.queue_id),
        )),
    }
}

pub(crate) fn search_offset(st: &State, req: &RemotingCommand) -> Answer {
    let h = SearchOffsetRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let boundary = match h.boundary_type.as_deref() {
        Some(b) if b.eq_ignore_ascii_case("upper") => Boundary::Upper,
        _ => Boundary::Lower,
    };
    let o = st
        .store
        .offset_for_timestamp(&h.topic, h.queue_id, h.timestamp, boundary)
        .map_err(|e| super::store_error_response(req, &e))?;
    Ok(offset_reply(req, i64::try_from(o).unwrap_or(i64::MAX)))
}

pub(crate) fn lock_batch(st: &State, req: &RemotingCommand) -> Answer {
    let b: LockBatchRequestBody = body::decode("lock batch", &req.body).map_err(malformed(req))?;
    let held = lock(&st.locks).lock(
        &b.consumer_group,
        &b.client_id,
        &b.mq_set,
        Instant::now(),
        st.cfg.lock_expiry,
    );
    let resp = LockBatchResponseBody {
        lock_ok_mq_set: held,
    };
    Ok(ok(req).with_body(body::encode(&resp)).into())
}

pub(crate) fn unlock_batch(st: &State, req: &RemotingCommand) -> Answer {
    let b: LockBatchRequestBody =
        body::decode("unlock batch", &req.body).map_err(malformed(req))?;
    lock(&st.locks).unlock(&b.consumer_group, &b.client_id, &b.mq_set);
    Ok(ok(req).into())
}
