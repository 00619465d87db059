//! Admin codes for the CLI and the portal: topics and subscription groups (create, update,
//! delete, list), topic stats, consume stats, consumer connections, runtime info. Any code not
//! handled anywhere gets REQUEST_CODE_NOT_SUPPORTED.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use catmq_protocol::body::{
    self, fastjson, ConnectionInfo, ConsumeStats, ConsumerConnection, KvTable, MessageQueue,
    OffsetWrapper, SubscriptionGroupConfig, TopicList, TopicOffset, TopicStatsTable,
};
use catmq_protocol::codes::CATMQ_VERSION;
use catmq_protocol::headers::{
    ConsumerGroupRequestHeader, CreateTopicRequestHeader, DeleteSubscriptionGroupRequestHeader,
    GetConsumeStatsRequestHeader, GetSubscriptionGroupConfigRequestHeader, TopicRequestHeader,
};
use catmq_protocol::{RemotingCommand, RequestCode, ResponseCode};
use catmq_store::FlushMode;

use super::{malformed, not_supported, ok, refuse, Answer};
use crate::state::{lock, now_ms, State};
use crate::topics::{is_system_topic, topic_config, topic_name_error};

pub(crate) fn dispatch(st: &State, req: &RemotingCommand, code: RequestCode) -> Answer {
    use RequestCode as C;
    match code {
        C::UpdateAndCreateTopic => create_topic(st, req),
        C::DeleteTopicInBroker => delete_topic(st, req),
        C::GetAllTopicConfig => {
            let b = body::encode(lock(&st.topics).wrapper());
            Ok(ok(req).with_body(b).into())
        }
        C::GetTopicConfig => get_topic(st, req),
        C::GetTopicNameList => {
            let list = TopicList {
                broker_addr: Some(st.addr.to_string()),
                topic_list: lock(&st.topics)
                    .wrapper()
                    .topic_config_table
                    .keys()
                    .cloned()
                    .collect(),
            };
            Ok(ok(req).with_body(body::encode(&list)).into())
        }
        C::UpdateAndCreateSubscriptionGroup => create_group(st, req),
        C::DeleteSubscriptionGroup => delete_group(st, req),
        C::GetAllSubscriptionGroupConfig => {
            let b = body::encode(lock(&st.groups).wrapper());
            Ok(ok(req).with_body(b).into())
        }
        C::GetSubscriptionGroupConfig => get_group(st, req),
        C::GetTopicStatsInfo => topic_stats(st, req),
        C::GetConsumeStats => consume_stats(st, req),
        C::GetConsumerConnectionList => consumer_connections(st, req),
        C::GetBrokerRuntimeInfo => {
            let b = body::encode(&runtime_info(st));
            Ok(ok(req).with_body(b).into())
        }
        _ => Err(not_supported(req)),
    }
}

fn create_topic(st: &State, req: &RemotingCommand) -> Answer {
    let h = CreateTopicRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    if let Some(e) = topic_name_error(&h.topic) {
        return Err(refuse(req, ResponseCode::SystemError, e));
    }
    if is_system_topic(&h.topic) || h.topic == st.cfg.cluster_name {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            format!("the topic[{}] is conflict with system topic", h.topic),
        ));
    }
    let valid = 1..=1024;
    if !valid.contains(&h.read_queue_nums) || !valid.contains(&h.write_queue_nums) {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            "queue counts must be between 1 and 1024",
        ));
    }
    let mut cfg = topic_config(&h.topic, h.read_queue_nums, h.perm);
    cfg.write_queue_nums = h.write_queue_nums;
    cfg.order = h.order.unwrap_or(false);
    cfg.topic_sys_flag = h.topic_sys_flag.unwrap_or(0);
    if let Some(t) = h.topic_filter_type.filter(|t| !t.is_empty()) {
        cfg.topic_filter_type = t;
    }
    lock(&st.topics)
        .upsert(cfg, now_ms())
        .map_err(|e| refuse(req, ResponseCode::SystemError, e.to_string()))?;
    tracing::info!(topic = %h.topic, read = h.read_queue_nums, write = h.write_queue_nums, perm = h.perm, "topic created or updated");
    st.register_wake.notify_one();
    Ok(ok(req).into())
}

fn delete_topic(st: &State, req: &RemotingCommand) -> Answer {
    let h = TopicRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    if is_system_topic(&h.topic) {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            format!(
                "the topic[{}] is a system topic and cannot be deleted",
                h.topic
            ),
        ));
    }
    lock(&st.topics)
        .remove(&h.topic, now_ms())
        .map_err(|e| refuse(req, ResponseCode::SystemError, e.to_string()))?;
    st.offsets.remove_topic(&h.topic);
    st.store
        .delete_topic(&h.topic)
        .map_err(|e| super::store_error_response(req, &e))?;
    tracing::info!(topic = %h.topic, "topic deleted");
    st.register_wake.notify_one();
    Ok(ok(req).into())
}

fn get_topic(st: &State, req: &RemotingCommand) -> Answer {
    let h = TopicRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    match lock(&st.topics).get(&h.topic) {
        Some(c) => Ok(ok(req).with_body(body::encode(c)).into()),
        None => Err(refuse(
            req,
            ResponseCode::TopicNotExist,
            format!("No topic in this broker: {}", h.topic),
        )),
    }
}

fn create_group(st: &State, req: &RemotingCommand) -> Answer {
    let cfg: SubscriptionGroupConfig =
        body::decode("subscription group", &req.body).map_err(malformed(req))?;
    if cfg.group_name.is_empty() {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            "the group name is empty",
        ));
    }
    let name = cfg.group_name.clone();
    lock(&st.groups)
        .upsert(cfg, now_ms())
        .map_err(|e| refuse(req, ResponseCode::SystemError, e.to_string()))?;
    tracing::info!(group = %name, "subscription group created or updated");
    Ok(ok(req).into())
}

fn delete_group(st: &State, req: &RemotingCommand) -> Answer {
    let h = DeleteSubscriptionGroupRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    lock(&st.groups)
        .remove(&h.group_name, now_ms())
        .map_err(|e| refuse(req, ResponseCode::SystemError, e.to_string()))?;
    if h.clean_offset == Some(true) {
        st.offsets.remove_group(&h.group_name);
    }
    tracing::info!(group = %h.group_name, "subscription group deleted");
    Ok(ok(req).into())
}

fn get_group(st: &State, req: &RemotingCommand) -> Answer {
    let h = GetSubscriptionGroupConfigRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    match lock(&st.groups).get(&h.group) {
        Some(g) => Ok(ok(req).with_body(body::encode(g)).into()),
        None => Err(refuse(
            req,
            ResponseCode::SubscriptionGroupNotExist,
            format!("subscription group not exist, {}", h.group),
        )),
    }
}

pub(crate) fn mq(st: &State, topic: &str, queue_id: i32) -> MessageQueue {
    MessageQueue {
        broker_name: st.cfg.broker_name.clone(),
        queue_id,
        topic: topic.to_owned(),
    }
}

pub(crate) fn queue_count(st: &State, topic: &str) -> Option<i32> {
    lock(&st.topics)
        .get(topic)
        .map(|c| c.read_queue_nums.max(c.write_queue_nums))
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn topic_stats(st: &State, req: &RemotingCommand) -> Answer {
    let h = TopicRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let Some(queues) = queue_count(st, &h.topic) else {
        return Err(refuse(
            req,
            ResponseCode::TopicNotExist,
            format!("topic[{}] not exist", h.topic),
        ));
    };
    let mut table = TopicStatsTable::default();
    for q in 0..queues {
        let info = st.store.queue_info(&h.topic, q);
        let off = info.map_or_else(TopicOffset::default, |i| TopicOffset {
            min_offset: as_i64(i.min_offset),
            max_offset: as_i64(i.max_offset),
            last_update_timestamp: i.last_store_timestamp,
        });
        table.offset_table.0.insert(mq(st, &h.topic, q), off);
    }
    Ok(ok(req).with_body(fastjson::encode(&table)).into())
}

fn consume_stats(st: &State, req: &RemotingCommand) -> Answer {
    let h = GetConsumeStatsRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let group = h.consumer_group;
    let topics: Vec<String> = match h.topic.filter(|t| !t.is_empty()) {
        Some(t) => vec![t],
        None => {
            let mut t = st.offsets.topics_of_group(&group);
            if let Some(g) = lock(&st.clients).consumer_group(&group) {
                t.extend(g.subscriptions.keys().cloned());
            }
            t.sort();
            t.dedup();
            t
        }
    };
    let mut stats = ConsumeStats {
        consume_tps: st.counters.group_tps(&group),
        ..ConsumeStats::default()
    };
    for topic in topics {
        let Some(queues) = queue_count(st, &topic) else {
            continue;
        };
        for q in 0..queues {
            let broker_offset = st
                .store
                .queue_info(&topic, q)
                .map_or(0, |i| as_i64(i.max_offset));
            let consumer_offset = st.offsets.query(&group, &topic, q).unwrap_or(0).max(0);
            let w = OffsetWrapper {
                broker_offset,
                consumer_offset,
                pull_offset: st
                    .offsets
                    .pull_offset(&group, &topic, q)
                    .unwrap_or(consumer_offset),
                last_timestamp: u64::try_from(consumer_offset - 1)
                    .ok()
                    .and_then(|o| super::store_time_at(st, &topic, q, o).ok().flatten())
                    .unwrap_or(0),
            };
            stats.offset_table.0.insert(mq(st, &topic, q), w);
        }
    }
    Ok(ok(req).with_body(fastjson::encode(&stats)).into())
}

fn consumer_connections(st: &State, req: &RemotingCommand) -> Answer {
    let h = ConsumerGroupRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let clients = lock(&st.clients);
    let Some(g) = clients.consumer_group(&h.consumer_group) else {
        return Err(refuse(
            req,
            ResponseCode::ConsumerNotOnline,
            format!("the consumer group[{}] not online", h.consumer_group),
        ));
    };
    let mut connection_set: Vec<ConnectionInfo> = g
        .channels
        .values()
        .map(|c| ConnectionInfo {
            client_id: c.client_id.clone(),
            client_addr: c.conn.peer().to_string(),
            language: c.language.name().to_owned(),
            version: c.version,
        })
        .collect();
    connection_set.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let body = ConsumerConnection {
        connection_set,
        subscription_table: g.subscriptions.clone(),
        consume_type: g.consume_type,
        message_model: g.message_model,
        consume_from_where: g.consume_from_where,
    };
    Ok(ok(req).with_body(body::encode(&body)).into())
}

fn uptime(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!(
        "[ {} days, {} hours, {} minutes, {} seconds ]",
        s / 86_400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

fn runtime_info(st: &State) -> KvTable {
    let now = Instant::now();
    let stats = st.store.stats();
    let (put_tps, put_total) = lock(&st.counters.put).snapshot(now);
    let (get_tps, get_total) = lock(&st.counters.got).snapshot(now);
    let mut t = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        t.insert(k.to_owned(), v);
    };
    put(
        "brokerVersionDesc",
        format!("CatMQ {}", env!("CARGO_PKG_VERSION")),
    );
    put("brokerVersion", CATMQ_VERSION.to_string());
    put("brokerName", st.cfg.broker_name.clone());
    put("clusterName", st.cfg.cluster_name.clone());
    put("bootTimestamp", st.boot_ms.to_string());
    put("runtime", uptime(now_ms() - st.boot_ms));
    put("commitLogMinOffset", stats.log_min.to_string());
    put("commitLogMaxOffset", stats.log_end.to_string());
    put("commitLogFlushedOffset", stats.flushed.to_string());
    put("commitLogSegments", stats.segments.to_string());
    put("consumeQueues", stats.queues.to_string());
    put(
        "flushDiskType",
        match st.store_flush() {
            FlushMode::Sync => "SYNC_FLUSH".into(),
            FlushMode::Async { .. } => "ASYNC_FLUSH".into(),
        },
    );
    put("putTps", format!("{put_tps:.2}"));
    put("getTransferredTps", format!("{get_tps:.2}"));
    put("msgPutTotalSinceBoot", put_total.to_string());
    put("msgGetTotalSinceBoot", get_total.to_string());
    put("suspendedPulls", st.waiters.len().to_string());
    let c = &st.counters;
    put(
        "requestsJsonHeader",
        c.json_requests.load(Ordering::Relaxed).to_string(),
    );
    put(
        "requestsBinaryHeader",
        c.binary_requests.load(Ordering::Relaxed).to_string(),
    );
    put(
        "corruptRecordsSkipped",
        stats.corrupt_records_skipped.to_string(),
    );
    let (pending, tx) = crate::txn::stats(st);
    put("transactionHalfPending", pending.to_string());
    put("transactionHalfStored", tx.halves.to_string());
    put("transactionCommitted", tx.committed.to_string());
    put("transactionRolledBack", tx.rolled_back.to_string());
    put("transactionCheckBacks", tx.checks.to_string());
    put("transactionDiscarded", tx.discarded.to_string());
    let scheduled: u64 = lock(&st.timer).counts().values().sum();
    let late = st.timer_lateness.summary();
    put("timerScheduled", scheduled.to_string());
    put("timerDelivered", late.delivered.to_string());
    put("timerLatenessP50Ms", late.p50.to_string());
    put("timerLatenessP99Ms", late.p99.to_string());
    put("timerLatenessMaxMs", late.max.to_string());
    KvTable { table: t }
}
