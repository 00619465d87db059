//! What push and lite pull consumers share: the group's state and its requests to brokers
//! (pull, send back, lock, unlock, member list, queue offsets).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use catmq_common::properties;
use catmq_protocol::body::{
    self, ConsumeFromWhere, ConsumeType, ConsumerData, ConsumerListBody, LockBatchRequestBody,
    LockBatchResponseBody, MessageModel as WireModel,
};
use catmq_protocol::headers::{
    ConsumerGroupRequestHeader, ConsumerSendMsgBackRequestHeader, GetMaxOffsetRequestHeader,
    OffsetResponseHeader, PullMessageRequestHeader, PullMessageResponseHeader, QueueRequestHeader,
    SearchOffsetRequestHeader, PULL_COMMIT_OFFSET, PULL_SUBSCRIPTION, PULL_SUSPEND,
};
use catmq_protocol::{ExtFields, RemotingCommand, RequestCode, ResponseCode};
use tokio::sync::Notify;

use super::offsets::OffsetStore;
use super::pq::ProcessQueue;
use super::{ConsumeFrom, ConsumeHook, ConsumerOptions, MessageModel, Subscription};
use crate::error::{ClientError, Result};
use crate::instance::{ConsumerMember, Instance};
use crate::message::{MessageExt, MessageQueue};

/// Prefix of a group's retry topic.
pub(crate) const RETRY_PREFIX: &str = "%RETRY%";

/// Starts consuming a queue the rebalancer just took.
pub(crate) type QueueStarter =
    Box<dyn Fn(&Arc<Core>, MessageQueue, Arc<ProcessQueue>) + Send + Sync>;

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PullStatus {
    Found,
    NoNew,
    NoMatched,
    OffsetMoved,
}

/// A pull's answer.
pub(crate) struct Pulled {
    pub(crate) status: PullStatus,
    pub(crate) next: i64,
    pub(crate) msgs: Vec<MessageExt>,
}

pub(crate) struct Core {
    pub(crate) group: String,
    pub(crate) instance: Instance,
    pub(crate) opts: ConsumerOptions,
    pub(crate) orderly: bool,
    pub(crate) passive: bool,
    pub(crate) subs: Mutex<BTreeMap<String, Subscription>>,
    pub(crate) offsets: OffsetStore,
    pub(crate) pqs: Mutex<HashMap<MessageQueue, Arc<ProcessQueue>>>,
    pub(crate) hooks: Vec<Arc<dyn ConsumeHook>>,
    pub(crate) rebalance_now: Notify,
    pub(crate) starter: OnceLock<QueueStarter>,
    /// Lite pull `assign`: the rebalancer leaves the queues alone.
    pub(crate) manual: AtomicBool,
    /// Times a queue's pulling paused because its cache was full.
    pub(crate) flow_pauses: AtomicU64,
    stopped: AtomicBool,
}

impl Core {
    pub(crate) fn new(
        group: String,
        instance: Instance,
        opts: ConsumerOptions,
        orderly: bool,
        passive: bool,
        offsets: OffsetStore,
    ) -> Self {
        Self {
            group,
            instance,
            opts,
            orderly,
            passive,
            subs: Mutex::new(BTreeMap::new()),
            offsets,
            pqs: Mutex::new(HashMap::new()),
            hooks: Vec::new(),
            rebalance_now: Notify::new(),
            starter: OnceLock::new(),
            manual: AtomicBool::new(false),
            flow_pauses: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    pub(crate) fn clustering(&self) -> bool {
        self.opts.model == MessageModel::Clustering
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for pq in self.queues().values() {
            pq.wake();
        }
    }

    /// Whether the queue's cache is at its message-count or byte limit (flow control).
    pub(crate) fn cache_full(&self, pq: &ProcessQueue) -> bool {
        let (count, bytes) = pq.load();
        count >= self.opts.max_cached_messages_per_queue
            || bytes >= self.opts.max_cached_bytes_per_queue
    }

    pub(crate) fn subscription(&self, topic: &str) -> Option<Subscription> {
        lock(&self.subs).get(topic).cloned()
    }

    pub(crate) fn subscriptions(&self) -> Vec<Subscription> {
        lock(&self.subs).values().cloned().collect()
    }

    pub(crate) fn queues(&self) -> HashMap<MessageQueue, Arc<ProcessQueue>> {
        lock(&self.pqs).clone()
    }

    pub(crate) fn queue(&self, mq: &MessageQueue) -> Option<Arc<ProcessQueue>> {
        lock(&self.pqs).get(mq).cloned()
    }

    /// The master address of the queue's broker.
    pub(crate) async fn addr(&self, mq: &MessageQueue) -> Result<String> {
        self.instance.queue_addr(mq).await
    }

    /// One PULL_MESSAGE; `suspend`: how long the broker may hold it.
    pub(crate) async fn pull(
        &self,
        mq: &MessageQueue,
        offset: i64,
        sub: &Subscription,
        suspend: Option<Duration>,
        commit: Option<i64>,
    ) -> Result<Pulled> {
        let addr = self.addr(mq).await?;
        let spec = PullSpec {
            group: &self.group,
            mq,
            offset,
            max: self.opts.pull_batch_size,
            sub,
            suspend,
            commit: commit.filter(|c| *c > 0 && self.clustering()),
        };
        pull_queue(&self.instance, &addr, &spec).await
    }

    /// Sends a failed message back to the broker: to the retry topic, or to the dead-letter
    /// topic once it failed `max_reconsume_times` (or at once with `delay_level` -1).
    pub(crate) async fn send_back(&self, msg: &MessageExt, delay_level: i32) -> Result<()> {
        let addr = self.addr(&msg.queue).await?;
        let h = ConsumerSendMsgBackRequestHeader {
            offset: msg.commit_log_offset,
            group: self.group.clone(),
            delay_level,
            origin_msg_id: Some(msg.msg_id.clone()),
            origin_topic: Some(msg.topic().to_owned()),
            unit_mode: Some(false),
            max_reconsume_times: Some(self.opts.max_reconsume_times),
        };
        self.instance
            .call(
                &addr,
                RequestCode::ConsumerSendMsgBack,
                h.to_ext(),
                Bytes::new(),
            )
            .await
            .map(drop)
    }

    fn lock_body(&self, mqs: Vec<MessageQueue>) -> Bytes {
        body::encode(&LockBatchRequestBody {
            client_id: self.instance.client_id.clone(),
            consumer_group: self.group.clone(),
            mq_set: mqs,
            only_this_broker: false,
        })
    }

    /// Locks queues of one broker for this client; returns those it now holds.
    pub(crate) async fn lock(
        &self,
        addr: &str,
        mqs: Vec<MessageQueue>,
    ) -> Result<Vec<MessageQueue>> {
        let r = self
            .instance
            .call(
                addr,
                RequestCode::LockBatchMq,
                ExtFields::new(),
                self.lock_body(mqs),
            )
            .await?;
        let b: LockBatchResponseBody =
            body::decode("lock", &r.body).map_err(|e| ClientError::decode(addr, e))?;
        Ok(b.lock_ok_mq_set)
    }

    /// Releases queue locks.
    pub(crate) async fn unlock(&self, addr: &str, mqs: Vec<MessageQueue>) -> Result<()> {
        self.instance
            .call(
                addr,
                RequestCode::UnlockBatchMq,
                ExtFields::new(),
                self.lock_body(mqs),
            )
            .await
            .map(drop)
    }

    /// The ids of the group's members, as a broker of `topic` knows them.
    pub(crate) async fn member_ids(&self, topic: &str) -> Result<Vec<String>> {
        let route = self.instance.route(topic).await?;
        let mut addrs: Vec<&String> = route.brokers.values().collect();
        addrs.sort();
        let h = ConsumerGroupRequestHeader {
            consumer_group: self.group.clone(),
        };
        let mut last = None;
        for addr in addrs {
            let r = self
                .instance
                .call(
                    addr,
                    RequestCode::GetConsumerListByGroup,
                    h.to_ext(),
                    Bytes::new(),
                )
                .await;
            match r.and_then(|r| {
                body::decode::<ConsumerListBody>("consumer list", &r.body)
                    .map_err(|e| ClientError::decode(addr, e))
            }) {
                Ok(b) => {
                    let mut ids = b.consumer_id_list;
                    ids.sort();
                    return Ok(ids);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::NoRoute {
            topic: topic.to_owned(),
            reason: "no broker in the route".into(),
        }))
    }

    /// GET_MAX_OFFSET / GET_MIN_OFFSET of a queue.
    pub(crate) async fn queue_bound(&self, mq: &MessageQueue, max: bool) -> Result<i64> {
        let addr = self.addr(mq).await?;
        queue_bound(&self.instance, &addr, mq, max).await
    }

    /// The offset of the first message stored at or after `ts`.
    pub(crate) async fn offset_at(&self, mq: &MessageQueue, ts: i64) -> Result<i64> {
        let addr = self.addr(mq).await?;
        offset_at(&self.instance, &addr, mq, ts).await
    }

    /// Where to start reading `mq`: the committed offset, else per consume-from.
    pub(crate) async fn start_offset(&self, mq: &MessageQueue) -> Result<i64> {
        if let Some(o) = self.offsets.read_stored(mq).await? {
            return Ok(o);
        }
        let retry = mq.topic.starts_with(RETRY_PREFIX);
        let o = match self.opts.consume_from {
            ConsumeFrom::First => self.queue_bound(mq, false).await?,
            ConsumeFrom::Last if retry => 0,
            ConsumeFrom::Last => self.queue_bound(mq, true).await?,
            ConsumeFrom::Timestamp(_) if retry => self.queue_bound(mq, true).await?,
            ConsumeFrom::Timestamp(ts) => self.offset_at(mq, ts).await?,
        };
        self.offsets.update(mq, o, false);
        Ok(o)
    }

    /// The group as heartbeats describe it.
    pub(crate) fn data(&self) -> ConsumerData {
        ConsumerData {
            consume_from_where: match self.opts.consume_from {
                ConsumeFrom::First => ConsumeFromWhere::ConsumeFromFirstOffset,
                ConsumeFrom::Last => ConsumeFromWhere::ConsumeFromLastOffset,
                ConsumeFrom::Timestamp(_) => ConsumeFromWhere::ConsumeFromTimestamp,
            },
            consume_type: if self.passive {
                ConsumeType::ConsumePassively
            } else {
                ConsumeType::ConsumeActively
            },
            group_name: self.group.clone(),
            message_model: match self.opts.model {
                MessageModel::Clustering => WireModel::Clustering,
                MessageModel::Broadcasting => WireModel::Broadcasting,
            },
            subscription_data_set: self
                .subscriptions()
                .iter()
                .map(Subscription::data)
                .collect(),
            unit_mode: false,
        }
    }

    /// Calls the consume hooks.
    pub(crate) fn hooks_before(&self, ctx: &super::ConsumeContext, msgs: &[MessageExt]) {
        self.hooks.iter().for_each(|h| h.before(ctx, msgs));
    }

    pub(crate) fn hooks_after(&self, ctx: &super::ConsumeContext, msgs: &[MessageExt], ok: bool) {
        self.hooks.iter().for_each(|h| h.after(ctx, msgs, ok));
    }
}

impl ConsumerMember for Core {
    fn consumer_data(&self) -> ConsumerData {
        self.data()
    }

    fn ids_changed(&self) {
        self.rebalance_now.notify_one();
    }

    fn reset_offsets(&self, topic: &str, offsets: Vec<(MessageQueue, i64)>) {
        for (mq, o) in &offsets {
            self.offsets.update(mq, *o, false);
        }
        let mut pqs = lock(&self.pqs);
        for (mq, o) in offsets {
            if mq.topic != topic {
                continue;
            }
            if let Some(pq) = pqs.get(&mq) {
                if self.manual.load(Ordering::Acquire) {
                    pq.reset_to(o);
                } else if let Some(pq) = pqs.remove(&mq) {
                    pq.set_dropped();
                }
            }
        }
        drop(pqs);
        self.rebalance_now.notify_one();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Splits, decodes and filters the records of a FOUND pull. Retried messages get their
/// original topic back.
fn decode_records(
    body: Bytes,
    mq: &MessageQueue,
    sub: &Subscription,
    addr: &str,
) -> Result<Vec<MessageExt>> {
    let mut out = decode_all(body, &mq.broker_name, addr)?;
    out.retain(|m| sub.matches(m.tags()));
    for m in &mut out {
        if mq.topic.starts_with(RETRY_PREFIX) {
            if let Some(t) = m.message.properties.get(properties::RETRY_TOPIC).cloned() {
                m.message.topic = t;
            }
        }
        m.queue = mq.clone();
    }
    Ok(out)
}

/// What to pull.
pub(crate) struct PullSpec<'a> {
    pub(crate) group: &'a str,
    pub(crate) mq: &'a MessageQueue,
    pub(crate) offset: i64,
    pub(crate) max: i32,
    pub(crate) sub: &'a Subscription,
    pub(crate) suspend: Option<Duration>,
    pub(crate) commit: Option<i64>,
}

/// One PULL_MESSAGE to `addr`.
pub(crate) async fn pull_queue(inst: &Instance, addr: &str, p: &PullSpec<'_>) -> Result<Pulled> {
    let mut flags = PULL_SUBSCRIPTION;
    if p.suspend.is_some() {
        flags |= PULL_SUSPEND;
    }
    if p.commit.is_some() {
        flags |= PULL_COMMIT_OFFSET;
    }
    let h = PullMessageRequestHeader {
        consumer_group: p.group.to_owned(),
        topic: p.mq.topic.clone(),
        queue_id: p.mq.queue_id,
        queue_offset: p.offset,
        max_msg_nums: p.max,
        sys_flag: flags,
        commit_offset: Some(p.commit.unwrap_or(0)),
        suspend_timeout_millis: Some(p.suspend.map_or(0, |d| d.as_millis() as i64)),
        subscription: Some(p.sub.expr.clone()),
        sub_version: Some(p.sub.version),
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
    };
    let timeout = p
        .suspend
        .map_or(inst.cfg.request_timeout, |s| s + Duration::from_secs(15));
    let cmd = RemotingCommand::request(RequestCode::PullMessage.as_i32(), h.to_ext(), Bytes::new());
    let r = inst.remote.request(addr, cmd, timeout).await?;
    let status = match ResponseCode::from_i32(r.code) {
        Some(ResponseCode::Success) => PullStatus::Found,
        Some(ResponseCode::PullNotFound) => PullStatus::NoNew,
        Some(ResponseCode::PullRetryImmediately) => PullStatus::NoMatched,
        Some(ResponseCode::PullOffsetMoved) => PullStatus::OffsetMoved,
        _ => return Err(ClientError::refused(addr, &r)),
    };
    let rh =
        PullMessageResponseHeader::from_ext(&r.ext).map_err(|e| ClientError::decode(addr, e))?;
    let msgs = if status == PullStatus::Found {
        decode_records(r.body, p.mq, p.sub, addr)?
    } else {
        Vec::new()
    };
    Ok(Pulled {
        status,
        next: rh.next_begin_offset,
        msgs,
    })
}

/// Splits concatenated stored records (a QUERY_MESSAGE body) into messages of `broker`.
pub(crate) fn decode_all(mut body: Bytes, broker: &str, addr: &str) -> Result<Vec<MessageExt>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let size = catmq_common::RecordView::parse(&body)
            .map_err(|e| ClientError::decode(addr, e))?
            .total_size();
        let record = body.split_to(size.min(body.len()));
        out.push(MessageExt::decode(&record, broker, addr)?);
    }
    Ok(out)
}

/// GET_MAX_OFFSET / GET_MIN_OFFSET on `addr`.
pub(crate) async fn queue_bound(
    inst: &Instance,
    addr: &str,
    mq: &MessageQueue,
    max: bool,
) -> Result<i64> {
    let (code, ext) = if max {
        let h = GetMaxOffsetRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            committed: Some(true),
        };
        (RequestCode::GetMaxOffset, h.to_ext())
    } else {
        let h = QueueRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
        };
        (RequestCode::GetMinOffset, h.to_ext())
    };
    let r = inst.call(addr, code, ext, Bytes::new()).await?;
    let h = OffsetResponseHeader::from_ext(&r.ext).map_err(|e| ClientError::decode(addr, e))?;
    Ok(h.offset)
}

/// SEARCH_OFFSET_BY_TIMESTAMP on `addr`.
pub(crate) async fn offset_at(
    inst: &Instance,
    addr: &str,
    mq: &MessageQueue,
    ts: i64,
) -> Result<i64> {
    let h = SearchOffsetRequestHeader {
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        timestamp: ts,
        boundary_type: Some("LOWER".into()),
    };
    let r = inst
        .call(
            addr,
            RequestCode::SearchOffsetByTimestamp,
            h.to_ext(),
            Bytes::new(),
        )
        .await?;
    let h = OffsetResponseHeader::from_ext(&r.ext).map_err(|e| ClientError::decode(addr, e))?;
    Ok(h.offset)
}
