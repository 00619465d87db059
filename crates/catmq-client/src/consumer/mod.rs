//! Consumers: the push consumer (listeners called with messages), the lite pull consumer
//! (`poll`), and what they share: subscriptions, rebalancing, offsets, process queues.

mod allocate;
mod concurrent;
pub(crate) mod core;
mod lite;
mod offsets;
mod orderly;
mod pq;
mod pull_loop;
mod push;
mod rebalance;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use catmq_common::tags::java_string_hash;
use catmq_protocol::body::SubscriptionData;

pub use allocate::{AllocateStrategy, Average, AverageByCircle, ByConfig, ConsistentHash};
pub use lite::{LitePullConsumer, LitePullConsumerBuilder};
pub use push::{PushConsumer, PushConsumerBuilder, QueueStats};

use crate::message::{MessageExt, MessageQueue};

/// Each message to one member of the group, or to every member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageModel {
    /// Members share the queues; offsets live on the brokers.
    #[default]
    Clustering,
    /// Every member reads every queue; offsets live in a local file.
    Broadcasting,
}

/// Where a group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumeFrom {
    /// The oldest message still stored.
    First,
    /// Only messages sent from now on.
    #[default]
    Last,
    /// The first message stored at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// What a concurrent listener did with its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Done; the offset may move past them.
    Success,
    /// Failed; deliver again later (through the group's retry topic).
    ReconsumeLater,
}

/// What an orderly listener did with its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderlyResult {
    /// Done; the next messages of the queue follow.
    Success,
    /// Failed; hold the queue a moment and deliver the same messages again.
    SuspendCurrentQueueAMoment,
}

/// Which group and queue a batch comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeContext {
    /// The consumer group.
    pub group: String,
    /// The queue the messages were read from.
    pub queue: MessageQueue,
}

/// A boxed future, as listeners return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Consumes messages of any queue, many batches at once.
pub trait ConcurrentListener: Send + Sync + 'static {
    /// Handles one batch.
    fn consume(&self, msgs: Vec<MessageExt>, ctx: ConsumeContext) -> BoxFuture<ConsumeResult>;
}

impl<F, Fut> ConcurrentListener for F
where
    F: Fn(Vec<MessageExt>, ConsumeContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeResult> + Send + 'static,
{
    fn consume(&self, msgs: Vec<MessageExt>, ctx: ConsumeContext) -> BoxFuture<ConsumeResult> {
        Box::pin(self(msgs, ctx))
    }
}

/// Consumes each queue in order, one batch of a queue at a time.
pub trait OrderlyListener: Send + Sync + 'static {
    /// Handles one batch.
    fn consume(&self, msgs: Vec<MessageExt>, ctx: ConsumeContext) -> BoxFuture<OrderlyResult>;
}

impl<F, Fut> OrderlyListener for F
where
    F: Fn(Vec<MessageExt>, ConsumeContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = OrderlyResult> + Send + 'static,
{
    fn consume(&self, msgs: Vec<MessageExt>, ctx: ConsumeContext) -> BoxFuture<OrderlyResult> {
        Box::pin(self(msgs, ctx))
    }
}

/// Called around every batch handed to a listener.
pub trait ConsumeHook: Send + Sync {
    /// Before the listener runs.
    fn before(&self, _ctx: &ConsumeContext, _msgs: &[MessageExt]) {}
    /// After it returned (`ok` false: failed, timed out or panicked).
    fn after(&self, _ctx: &ConsumeContext, _msgs: &[MessageExt], _ok: bool) {}
}

/// Consumer settings (push and lite pull).
#[derive(Clone)]
pub struct ConsumerOptions {
    /// Clustering or broadcasting.
    pub model: MessageModel,
    /// Where a group with no committed offset starts.
    pub consume_from: ConsumeFrom,
    /// How a clustering group divides the queues.
    pub allocate: Arc<dyn AllocateStrategy>,
    /// Messages asked for per pull.
    pub pull_batch_size: i32,
    /// Messages per listener call.
    pub consume_batch_size: usize,
    /// Listener calls running at once.
    pub consume_tasks: usize,
    /// Stop pulling a queue while this many of its messages wait.
    pub max_cached_messages_per_queue: usize,
    /// Stop pulling a queue while this many body bytes of it wait.
    pub max_cached_bytes_per_queue: usize,
    /// Failures before a message goes to the dead-letter topic.
    pub max_reconsume_times: i32,
    /// A listener call running longer counts as failed.
    pub consume_timeout: Duration,
    /// Orderly: how long a queue waits after a failed batch.
    pub orderly_suspend: Duration,
    /// How often the group is rebalanced (also when the broker says members changed).
    pub rebalance_interval: Duration,
    /// How often offsets are persisted.
    pub persist_interval: Duration,
    /// Orderly: how often queue locks are renewed.
    pub lock_interval: Duration,
    /// Wait after a failed pull.
    pub pull_error_delay: Duration,
    /// How long the broker may hold a pull when there is nothing new.
    pub long_poll: Duration,
    /// Broadcasting: directory of the local offset file (default `~/.catmq_offsets`).
    pub offset_store_dir: Option<PathBuf>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            model: MessageModel::Clustering,
            consume_from: ConsumeFrom::Last,
            allocate: Arc::new(Average),
            pull_batch_size: 32,
            consume_batch_size: 1,
            consume_tasks: 20,
            max_cached_messages_per_queue: 1000,
            max_cached_bytes_per_queue: 100 << 20,
            max_reconsume_times: 16,
            consume_timeout: Duration::from_secs(15 * 60),
            orderly_suspend: Duration::from_secs(1),
            rebalance_interval: Duration::from_secs(20),
            persist_interval: Duration::from_secs(5),
            lock_interval: Duration::from_secs(20),
            pull_error_delay: Duration::from_secs(3),
            long_poll: Duration::from_secs(15),
            offset_store_dir: None,
        }
    }
}

/// A topic and its tag expression (`*`, `A`, `A || B`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) topic: String,
    pub(crate) expr: String,
    pub(crate) tags: Vec<String>,
    pub(crate) version: i64,
}

impl Subscription {
    pub(crate) fn new(topic: &str, expr: &str) -> Self {
        let expr = expr.trim();
        let tags: Vec<String> = if expr.is_empty() || expr == "*" {
            Vec::new()
        } else {
            expr.split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Self {
            topic: topic.to_owned(),
            expr: if tags.is_empty() {
                "*".to_owned()
            } else {
                expr.to_owned()
            },
            tags,
            version: crate::message::now_ms(),
        }
    }

    /// Whether a message with `tag` is wanted.
    pub(crate) fn matches(&self, tag: Option<&str>) -> bool {
        self.tags.is_empty() || tag.is_some_and(|t| self.tags.iter().any(|x| x == t))
    }

    pub(crate) fn data(&self) -> SubscriptionData {
        SubscriptionData {
            class_filter_mode: false,
            code_set: self.tags.iter().map(|t| java_string_hash(t)).collect(),
            expression_type: "TAG".into(),
            sub_string: self.expr.clone(),
            sub_version: self.version,
            tags_set: self.tags.clone(),
            topic: self.topic.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions() {
        let all = Subscription::new("T", " * ");
        assert!(all.matches(None) && all.matches(Some("X")));
        assert_eq!(all.data().sub_string, "*");
        let two = Subscription::new("T", "A || B");
        assert!(two.matches(Some("A")) && two.matches(Some("B")));
        assert!(!two.matches(Some("C")) && !two.matches(None));
        assert_eq!(two.data().code_set, vec![65, 66]);
    }
}
