//! The push consumer: subscribes, rebalances, pulls in the background and calls a listener.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::concurrent::Concurrent;
use super::core::{lock, Core, RETRY_PREFIX};
use super::offsets::{Backing, OffsetStore};
use super::orderly::Orderly;
use super::pull_loop::Service;
use super::rebalance;
use super::{
    AllocateStrategy, ConcurrentListener, ConsumeHook, ConsumerOptions, MessageModel,
    OrderlyListener, Subscription,
};
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{ConsumerMember, Instance};
use crate::producer::check_topic;

/// How long shutdown waits for running listener calls.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);
/// Retry delay after a queue could not be taken yet.
const RETAKE_DELAY: Duration = Duration::from_millis(500);

enum Listener {
    None,
    Concurrent(Arc<dyn ConcurrentListener>),
    Orderly(Arc<dyn OrderlyListener>),
}

/// Builds a [`PushConsumer`].
pub struct PushConsumerBuilder {
    group: String,
    config: ClientConfig,
    opts: ConsumerOptions,
    subs: Vec<(String, String)>,
    listener: Listener,
    hooks: Vec<Arc<dyn ConsumeHook>>,
}

/// One queue of a push consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue.
    pub queue: crate::MessageQueue,
    /// Messages pulled and not yet consumed.
    pub cached_messages: usize,
    /// Their body bytes.
    pub cached_bytes: usize,
    /// Where the next pull starts.
    pub next_offset: i64,
}

/// A push consumer: call [`PushConsumer::shutdown`] to stop it cleanly.
pub struct PushConsumer {
    core: Arc<Core>,
    service: Service,
    stop: tokio::sync::watch::Sender<bool>,
}

impl PushConsumer {
    /// A builder for a consumer of `group`.
    pub fn builder(group: impl Into<String>) -> PushConsumerBuilder {
        PushConsumerBuilder {
            group: group.into(),
            config: ClientConfig::default(),
            opts: ConsumerOptions::default(),
            subs: Vec::new(),
            listener: Listener::None,
            hooks: Vec::new(),
        }
    }

    /// This client's id (`ip@instance`).
    pub fn client_id(&self) -> &str {
        &self.core.instance.client_id
    }

    /// The queues this member reads now.
    pub fn assignment(&self) -> Vec<crate::MessageQueue> {
        let mut v: Vec<_> = self.core.queues().into_keys().collect();
        v.sort();
        v
    }

    /// Per queue: messages and body bytes waiting to be consumed, and the next pull offset.
    pub fn cache_stats(&self) -> Vec<QueueStats> {
        let mut v: Vec<QueueStats> = self
            .core
            .queues()
            .into_iter()
            .map(|(queue, pq)| {
                let (cached_messages, cached_bytes) = pq.load();
                QueueStats {
                    queue,
                    cached_messages,
                    cached_bytes,
                    next_offset: pq.next_offset(),
                }
            })
            .collect();
        v.sort_by(|a, b| a.queue.cmp(&b.queue));
        v
    }

    /// Times pulling paused because a queue's cache was full (flow control).
    pub fn flow_control_pauses(&self) -> u64 {
        self.core
            .flow_pauses
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Rebalances now (normally every `rebalance_interval` and when members change).
    pub async fn rebalance(&self) {
        rebalance::rebalance(&self.core).await;
    }

    /// Stops: no new pulls, waits for running listener calls, persists offsets, releases
    /// queue locks, leaves the group and closes the connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.core.stop();
        match &self.service {
            Service::Concurrent(c) => c.slots.wait_idle(SHUTDOWN_WAIT).await,
            Service::Orderly(o) => o.slots.wait_idle(SHUTDOWN_WAIT).await,
        }
        if let Err(e) = self.core.offsets.persist(None).await {
            tracing::warn!(error = %e, "could not persist offsets at shutdown");
        }
        rebalance::leave(&self.core).await;
    }
}

impl PushConsumerBuilder {
    crate::config::builder_settings!(ConsumerOptions, consumer);

    /// Subscribes to `topic` with a tag expression (`*`, `A`, `A || B`).
    pub fn subscribe(mut self, topic: &str, expr: &str) -> Self {
        self.subs.push((topic.to_owned(), expr.to_owned()));
        self
    }

    /// Clustering (default) or broadcasting.
    pub fn model(mut self, model: MessageModel) -> Self {
        self.opts.model = model;
        self
    }

    /// The rebalance strategy.
    pub fn allocate(mut self, strategy: Arc<dyn AllocateStrategy>) -> Self {
        self.opts.allocate = strategy;
        self
    }

    /// Broadcasting: where the offset file lives.
    pub fn offset_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.offset_store_dir = Some(dir.into());
        self
    }

    /// Consume concurrently with `listener`.
    pub fn concurrent(mut self, listener: impl ConcurrentListener) -> Self {
        self.listener = Listener::Concurrent(Arc::new(listener));
        self
    }

    /// Consume each queue in order with `listener`.
    pub fn orderly(mut self, listener: impl OrderlyListener) -> Self {
        self.listener = Listener::Orderly(Arc::new(listener));
        self
    }

    /// Adds a consume hook.
    pub fn hook(mut self, hook: Arc<dyn ConsumeHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Starts consuming.
    pub async fn start(self) -> Result<PushConsumer> {
        if self.group.is_empty() {
            return Err(ClientError::Invalid("consumer group is empty".into()));
        }
        if self.subs.is_empty() {
            return Err(ClientError::Invalid(
                "subscribe to at least one topic".into(),
            ));
        }
        for (t, _) in &self.subs {
            check_topic(t)?;
        }
        let (orderly, service) = match self.listener {
            Listener::None => {
                return Err(ClientError::Invalid(
                    "set a concurrent or orderly listener".into(),
                ))
            }
            Listener::Concurrent(l) => (
                false,
                Service::Concurrent(Arc::new(Concurrent::new(l, self.opts.consume_tasks))),
            ),
            Listener::Orderly(l) => (
                true,
                Service::Orderly(Arc::new(Orderly::new(l, self.opts.consume_tasks))),
            ),
        };
        let instance = Instance::start(self.config).await?;
        let core = new_core(self.group, instance, self.opts, orderly, true, self.hooks);
        {
            let mut subs = lock(&core.subs);
            for (t, e) in &self.subs {
                subs.insert(t.clone(), Subscription::new(t, e));
            }
            if core.clustering() {
                let retry = format!("{RETRY_PREFIX}{}", core.group);
                subs.insert(retry.clone(), Subscription::new(&retry, "*"));
            }
        }
        let svc = service.clone();
        let _ = core
            .starter
            .set(Box::new(move |core, mq, pq| svc.start_queue(core, mq, pq)));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        start_group(&core, stop_rx).await;
        Ok(PushConsumer {
            core,
            service,
            stop,
        })
    }
}

/// The consumer state, with its offset store, registered with the instance.
pub(crate) fn new_core(
    group: String,
    instance: Instance,
    opts: ConsumerOptions,
    orderly: bool,
    passive: bool,
    hooks: Vec<Arc<dyn ConsumeHook>>,
) -> Arc<Core> {
    let backing = match opts.model {
        MessageModel::Clustering => Backing::Broker,
        MessageModel::Broadcasting => {
            let dir = opts
                .offset_store_dir
                .clone()
                .unwrap_or_else(default_offset_dir);
            let name = instance
                .cfg
                .instance_name
                .clone()
                .unwrap_or_else(|| "DEFAULT".into());
            Backing::File(dir.join(name).join(&group).join("offsets.json"))
        }
    };
    let offsets = OffsetStore::new(instance.clone(), group.clone(), backing);
    let mut core = Core::new(group, instance, opts, orderly, passive, offsets);
    core.hooks = hooks;
    let core = Arc::new(core);
    let member: Arc<dyn ConsumerMember> = core.clone();
    core.instance
        .add_consumer(&core.group, Arc::downgrade(&member));
    core
}

fn default_offset_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".catmq_offsets")
}

/// Fetches routes, announces the group, rebalances once, and starts the maintenance task.
pub(crate) async fn start_group(core: &Arc<Core>, stop: tokio::sync::watch::Receiver<bool>) {
    for sub in core.subscriptions() {
        if let Err(e) = core.instance.refresh_route(&sub.topic).await {
            tracing::debug!(topic = %sub.topic, error = %e, "no route yet");
        }
    }
    core.instance.heartbeat().await;
    let pending = rebalance::rebalance(core).await;
    tokio::spawn(maintain(core.clone(), stop, pending));
}

/// Rebalances (periodically, when told, and soon after a queue could not be taken),
/// persists offsets and renews orderly locks.
async fn maintain(
    core: Arc<Core>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut pending: bool,
) {
    let every = |d: Duration| {
        let mut i = tokio::time::interval_at(
            tokio::time::Instant::now() + d,
            d.max(Duration::from_millis(10)),
        );
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    };
    let mut persist = every(core.opts.persist_interval);
    let mut locks = every(core.opts.lock_interval);
    let mut periodic = every(core.opts.rebalance_interval);
    loop {
        let retake = tokio::time::sleep(RETAKE_DELAY);
        tokio::select! {
            _ = stop.changed() => return,
            _ = periodic.tick() => pending = rebalance::rebalance(&core).await,
            _ = retake, if pending => pending = rebalance::rebalance(&core).await,
            _ = core.rebalance_now.notified() => pending = rebalance::rebalance(&core).await,
            _ = persist.tick() => {
                if let Err(e) = core.offsets.persist(None).await {
                    tracing::debug!(error = %e, "offset persist failed");
                }
            }
            _ = locks.tick(), if core.orderly && core.clustering() => rebalance::renew_locks(&core).await,
        }
    }
}
