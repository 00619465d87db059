//! The lite pull consumer: background pulls fill a buffer; `poll` takes from it. Queues come
//! from a subscription (rebalanced with the group) or are assigned by hand.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Mutex as AsyncMutex};

use super::core::{lock, Core, PullStatus};
use super::pq::ProcessQueue;
use super::push::{new_core, start_group};
use super::{rebalance, ConsumerOptions, MessageModel, Subscription};
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::Instance;
use crate::message::{MessageExt, MessageQueue};
use crate::producer::check_topic;

/// Long poll of a lite pull (short, so seeks and pauses take effect quickly).
const LITE_LONG_POLL: Duration = Duration::from_secs(5);

struct Batch {
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    generation: u64,
    msgs: Vec<MessageExt>,
}

/// Builds a [`LitePullConsumer`].
pub struct LitePullConsumerBuilder {
    group: String,
    config: ClientConfig,
    opts: ConsumerOptions,
    auto_commit: Option<Duration>,
}

/// A consumer that the application polls.
pub struct LitePullConsumer {
    core: Arc<Core>,
    rx: AsyncMutex<mpsc::Receiver<Batch>>,
    tx: mpsc::Sender<Batch>,
    consumed: std::sync::Mutex<HashMap<MessageQueue, i64>>,
    auto_commit: Option<Duration>,
    last_commit: std::sync::Mutex<Instant>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl LitePullConsumerBuilder {
    crate::config::builder_settings!(ConsumerOptions, consumer);

    /// Commit polled offsets every `interval` (default 5 s); `None`: only on `commit`.
    pub fn auto_commit(mut self, interval: Option<Duration>) -> Self {
        self.auto_commit = interval;
        self
    }

    /// Starts the consumer with no queues; then `subscribe` or `assign`.
    pub async fn start(self) -> Result<LitePullConsumer> {
        if self.group.is_empty() {
            return Err(ClientError::Invalid("consumer group is empty".into()));
        }
        if self.opts.model == MessageModel::Broadcasting {
            return Err(ClientError::Invalid(
                "the lite pull consumer reads as a clustering group; use assign for every queue"
                    .into(),
            ));
        }
        let instance = Instance::start(self.config).await?;
        let core = new_core(self.group, instance, self.opts, false, false, Vec::new());
        let cap = core.opts.max_cached_messages_per_queue.max(64);
        let (tx, rx) = mpsc::channel(cap);
        let starter_tx = tx.clone();
        let _ = core.starter.set(Box::new(move |core, mq, pq| {
            tokio::spawn(pull_loop(core.clone(), starter_tx.clone(), mq, pq));
        }));
        let (stop, _) = tokio::sync::watch::channel(false);
        Ok(LitePullConsumer {
            core,
            rx: AsyncMutex::new(rx),
            tx,
            consumed: std::sync::Mutex::new(HashMap::new()),
            auto_commit: self.auto_commit,
            last_commit: std::sync::Mutex::new(Instant::now()),
            stop,
        })
    }
}

impl LitePullConsumer {
    /// A builder for a consumer of `group`.
    pub fn builder(group: impl Into<String>) -> LitePullConsumerBuilder {
        LitePullConsumerBuilder {
            group: group.into(),
            config: ClientConfig::default(),
            opts: ConsumerOptions::default(),
            auto_commit: Some(Duration::from_secs(5)),
        }
    }

    /// Subscribes to `topic`: the group's members share its queues.
    pub async fn subscribe(&self, topic: &str, expr: &str) -> Result<()> {
        check_topic(topic)?;
        if self.core.manual.load(std::sync::atomic::Ordering::Acquire) {
            return Err(ClientError::Invalid(
                "queues were assigned by hand; subscribe is not possible".into(),
            ));
        }
        lock(&self.core.subs).insert(topic.to_owned(), Subscription::new(topic, expr));
        start_group(&self.core, self.stop.subscribe()).await;
        Ok(())
    }

    /// Reads exactly these queues (no group rebalancing), with `expr` as tag filter.
    pub async fn assign(&self, queues: Vec<MessageQueue>, expr: &str) -> Result<()> {
        if !lock(&self.core.subs).is_empty()
            && !self.core.manual.load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(ClientError::Invalid(
                "already subscribed; assign is not possible".into(),
            ));
        }
        self.core
            .manual
            .store(true, std::sync::atomic::Ordering::Release);
        {
            let mut subs = lock(&self.core.subs);
            for q in &queues {
                check_topic(&q.topic)?;
                subs.insert(q.topic.clone(), Subscription::new(&q.topic, expr));
            }
        }
        self.core.instance.heartbeat().await;
        let mut topics: Vec<&str> = queues.iter().map(|q| q.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        for t in topics {
            let mine: Vec<MessageQueue> = queues.iter().filter(|q| q.topic == t).cloned().collect();
            rebalance::apply(&self.core, t, mine).await;
        }
        Ok(())
    }

    /// The readable queues of `topic`.
    pub async fn fetch_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self
            .core
            .instance
            .refresh_route(topic)
            .await?
            .read_queues
            .clone())
    }

    /// The queues read now.
    pub fn assignment(&self) -> Vec<MessageQueue> {
        let mut v: Vec<_> = self.core.queues().into_keys().collect();
        v.sort();
        v
    }

    /// The next pulled messages, waiting up to `timeout`; empty if none arrived.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<MessageExt>> {
        if self.core.is_stopped() {
            return Err(ClientError::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.rx.lock().await;
        loop {
            let batch = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(b)) => b,
                Ok(None) => return Err(ClientError::Shutdown),
                Err(_) => return Ok(Vec::new()),
            };
            if batch.pq.is_dropped()
                || batch.pq.generation() != batch.generation
                || batch.pq.is_paused()
            {
                if batch.pq.is_paused()
                    && !batch.pq.is_dropped()
                    && batch.pq.generation() == batch.generation
                {
                    // Paused after it was pulled: read these again on resume.
                    if let Some(first) = batch.msgs.first() {
                        batch.pq.reset_to(first.queue_offset);
                    }
                }
                continue;
            }
            let offsets: Vec<i64> = batch.msgs.iter().map(|m| m.queue_offset).collect();
            batch.pq.remove(&offsets);
            if let Some(last) = offsets.iter().max() {
                lock(&self.consumed).insert(batch.mq.clone(), last + 1);
            }
            drop(rx);
            self.maybe_auto_commit().await;
            return Ok(batch.msgs);
        }
    }

    async fn maybe_auto_commit(&self) {
        let Some(every) = self.auto_commit else {
            return;
        };
        let due = lock(&self.last_commit).elapsed() >= every;
        if due {
            if let Err(e) = self.commit().await {
                tracing::warn!(error = %e, "auto commit failed");
            }
        }
    }

    /// Commits the offsets of everything polled so far.
    pub async fn commit(&self) -> Result<()> {
        let consumed: Vec<(MessageQueue, i64)> = lock(&self.consumed)
            .iter()
            .map(|(q, o)| (q.clone(), *o))
            .collect();
        for (mq, o) in &consumed {
            self.core.offsets.update(mq, *o, false);
        }
        *lock(&self.last_commit) = Instant::now();
        self.core.offsets.persist(None).await
    }

    /// Commits these offsets now.
    pub async fn commit_offsets(&self, offsets: &[(MessageQueue, i64)]) -> Result<()> {
        for (mq, o) in offsets {
            self.core.offsets.update(mq, *o, false);
        }
        let mqs: Vec<MessageQueue> = offsets.iter().map(|(q, _)| q.clone()).collect();
        self.core.offsets.persist(Some(&mqs)).await
    }

    /// The committed offset of `mq`, if the group has one.
    pub async fn committed(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        self.core.offsets.read_stored(mq).await
    }

    fn held(&self, mq: &MessageQueue) -> Result<Arc<ProcessQueue>> {
        self.core.queue(mq).ok_or_else(|| {
            ClientError::Invalid(format!(
                "queue {}@{}#{} is not assigned to this consumer",
                mq.topic, mq.broker_name, mq.queue_id
            ))
        })
    }

    /// Reads `mq` from `offset` next (within the queue's min..=max).
    pub async fn seek(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        let pq = self.held(mq)?;
        let (min, max) = (
            self.core.queue_bound(mq, false).await?,
            self.core.queue_bound(mq, true).await?,
        );
        if offset < min || offset > max {
            return Err(ClientError::Invalid(format!(
                "offset {offset} is outside {min}..={max}"
            )));
        }
        pq.reset_to(offset);
        lock(&self.consumed).remove(mq);
        Ok(())
    }

    /// Reads `mq` from its oldest stored message next.
    pub async fn seek_to_begin(&self, mq: &MessageQueue) -> Result<()> {
        let o = self.core.queue_bound(mq, false).await?;
        self.seek(mq, o).await
    }

    /// Reads only messages of `mq` that arrive from now on.
    pub async fn seek_to_end(&self, mq: &MessageQueue) -> Result<()> {
        let o = self.core.queue_bound(mq, true).await?;
        self.seek(mq, o).await
    }

    /// The offset of the first message of `mq` stored at or after `ts` (ms).
    pub async fn offset_for_timestamp(&self, mq: &MessageQueue, ts: i64) -> Result<i64> {
        self.core.offset_at(mq, ts).await
    }

    /// Stops fetching these queues (already fetched messages of them are not returned).
    pub fn pause(&self, queues: &[MessageQueue]) {
        for q in queues {
            if let Some(pq) = self.core.queue(q) {
                pq.set_paused(true);
            }
        }
    }

    /// Fetches these queues again.
    pub fn resume(&self, queues: &[MessageQueue]) {
        for q in queues {
            if let Some(pq) = self.core.queue(q) {
                pq.set_paused(false);
            }
        }
    }

    /// Commits (when auto commit is on), releases the queues, leaves the group, closes.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.core.stop();
        if self.auto_commit.is_some() {
            if let Err(e) = self.commit().await {
                tracing::warn!(error = %e, "final commit failed");
            }
        }
        rebalance::leave(&self.core).await;
        drop(self.tx);
    }
}

async fn pull_loop(
    core: Arc<Core>,
    tx: mpsc::Sender<Batch>,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
) {
    while !pq.is_dropped() && !core.is_stopped() {
        if pq.is_paused() || core.cache_full(&pq) {
            pq.wait_until(Duration::from_secs(1), || {
                (!pq.is_paused() && !core.cache_full(&pq)) || pq.is_dropped() || core.is_stopped()
            })
            .await;
            continue;
        }
        let Some(sub) = core.subscription(&mq.topic) else {
            return;
        };
        let generation = pq.generation();
        let offset = pq.next_offset();
        // A seek, pause or release abandons the outstanding long poll at once.
        let interrupted = || {
            pq.generation() != generation || pq.is_paused() || pq.is_dropped() || core.is_stopped()
        };
        let pulled = tokio::select! {
            r = core.pull(&mq, offset, &sub, Some(LITE_LONG_POLL), None) => r,
            _ = pq.wait_until(LITE_LONG_POLL * 4, interrupted) => continue,
        };
        match pulled {
            Ok(p) => {
                if pq.generation() != generation || pq.is_dropped() {
                    continue;
                }
                pq.set_next_offset(p.next);
                if p.status == PullStatus::OffsetMoved {
                    tracing::warn!(queue = ?mq, from = offset, to = p.next, "offset out of range; moved");
                }
                if p.msgs.is_empty() {
                    continue;
                }
                pq.put(&p.msgs);
                let batch = Batch {
                    mq: mq.clone(),
                    pq: pq.clone(),
                    generation,
                    msgs: p.msgs,
                };
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if core.is_stopped() || pq.is_dropped() {
                    return;
                }
                tracing::warn!(queue = ?mq, error = %e, "pull failed; retrying");
                core.instance.forget_route(&mq.topic);
                pq.wait_until(core.opts.pull_error_delay, || {
                    pq.is_dropped() || core.is_stopped()
                })
                .await;
            }
        }
    }
}
