//! The producer: sync, async, oneway and batch sends, with retries on another broker and
//! avoidance of brokers that were slow or failing recently.

mod fault;
mod select;
mod send;
mod txn;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use select::{QueueSelector, SelectByHash, SelectRoundRobin};
pub(crate) use send::check_topic;
pub(crate) use txn::answer_check;
pub use txn::{TransactionListener, TransactionSendResult, TransactionState};

use crate::compress::Compression;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::Instance;
use crate::message::{Message, MessageQueue, SendResult};
use fault::LatencyFaults;

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// How long one send attempt waits for the broker.
    pub send_timeout: Duration,
    /// Extra attempts after a failed send (each on another broker when there is one).
    pub retries: u32,
    /// Also retry elsewhere when the broker stored the message but reports a flush or
    /// replication timeout.
    pub retry_when_not_stored_ok: bool,
    /// Bodies larger than this are compressed.
    pub compress_threshold: usize,
    /// The compression algorithm.
    pub compression: Compression,
    /// The compression level.
    pub compress_level: u32,
    /// Largest body (or batch) accepted, in bytes.
    pub max_message_size: usize,
    /// The topic whose route is used for a topic the broker will create on first send.
    pub default_topic: String,
    /// Queues of a topic created on first send.
    pub default_topic_queue_nums: i32,
    /// Skip brokers that were slow or failing recently.
    pub avoid_faulty_brokers: bool,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            send_timeout: Duration::from_secs(3),
            retries: 2,
            retry_when_not_stored_ok: false,
            compress_threshold: 4 * 1024,
            compression: Compression::Zlib,
            compress_level: 5,
            max_message_size: 4 * 1024 * 1024,
            default_topic: "TBW102".to_owned(),
            default_topic_queue_nums: 4,
            avoid_faulty_brokers: true,
        }
    }
}

/// Where one send attempt goes.
#[derive(Debug)]
pub struct SendContext<'a> {
    /// The message as given to the producer.
    pub message: &'a Message,
    /// The chosen queue.
    pub queue: &'a MessageQueue,
    /// The broker's address.
    pub broker_addr: &'a str,
}

/// Called around every send attempt (tracing, metrics, auditing).
pub trait SendHook: Send + Sync {
    /// Before the request goes out.
    fn before(&self, _ctx: &SendContext<'_>) {}
    /// After the broker answered, or the attempt failed. Oneway sends report `None`.
    fn after(
        &self,
        _ctx: &SendContext<'_>,
        _outcome: std::result::Result<Option<&SendResult>, &ClientError>,
    ) {
    }
}

pub(crate) struct Inner {
    group: String,
    instance: Instance,
    opts: ProducerOptions,
    hooks: Vec<Arc<dyn SendHook>>,
    faults: LatencyFaults,
    next_queue: AtomicUsize,
    listener: Option<Arc<dyn TransactionListener>>,
}

/// A producer; clones share it.
#[derive(Clone)]
pub struct Producer(Arc<Inner>);

/// Builds a [`Producer`].
pub struct ProducerBuilder {
    group: String,
    config: ClientConfig,
    opts: ProducerOptions,
    hooks: Vec<Arc<dyn SendHook>>,
    listener: Option<Arc<dyn TransactionListener>>,
}

impl ProducerBuilder {
    /// Makes this a transaction producer: `listener` runs local transactions
    /// ([`Producer::send_in_transaction`]) and answers the broker's check-backs.
    pub fn transaction_listener(mut self, listener: Arc<dyn TransactionListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    crate::config::builder_settings!(ProducerOptions);

    /// How long one attempt waits.
    pub fn send_timeout(mut self, t: Duration) -> Self {
        self.opts.send_timeout = t;
        self
    }

    /// Extra attempts after a failure.
    pub fn retries(mut self, n: u32) -> Self {
        self.opts.retries = n;
        self
    }

    /// Adds a send hook.
    pub fn hook(mut self, hook: Arc<dyn SendHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Starts the producer (connects lazily; registers its group with heartbeats).
    pub async fn start(self) -> Result<Producer> {
        if self.group.is_empty() {
            return Err(ClientError::Invalid("producer group is empty".into()));
        }
        let instance = Instance::start(self.config).await?;
        instance.add_producer(&self.group, self.listener.clone());
        Ok(Producer(Arc::new(Inner {
            group: self.group,
            instance,
            opts: self.opts,
            hooks: self.hooks,
            faults: LatencyFaults::default(),
            next_queue: AtomicUsize::new(0),
            listener: self.listener,
        })))
    }
}

impl Producer {
    /// A builder for a producer of `group`.
    pub fn builder(group: impl Into<String>) -> ProducerBuilder {
        ProducerBuilder {
            group: group.into(),
            config: ClientConfig::default(),
            opts: ProducerOptions::default(),
            hooks: Vec::new(),
            listener: None,
        }
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.0.group
    }

    /// This client's id (`ip@instance`).
    pub fn client_id(&self) -> &str {
        &self.0.instance.client_id
    }

    /// Sends and waits for the broker to store the message; retries on another broker.
    pub async fn send(&self, msg: Message) -> Result<SendResult> {
        send::send(&self.0, msg, send::Target::Any).await
    }

    /// Sends to a given queue (no retry elsewhere).
    pub async fn send_to_queue(&self, msg: Message, queue: MessageQueue) -> Result<SendResult> {
        send::send(&self.0, msg, send::Target::Queue(queue)).await
    }

    /// Sends to the queue `selector` picks for `arg`.
    pub async fn send_with_selector(
        &self,
        msg: Message,
        selector: &dyn QueueSelector,
        arg: &str,
    ) -> Result<SendResult> {
        let queue = send::select_queue(&self.0, &msg, selector, arg).await?;
        self.send_to_queue(msg, queue).await
    }

    /// Sends so that every message with the same `key` goes to the same queue, in order.
    pub async fn send_ordered(&self, msg: Message, key: &str) -> Result<SendResult> {
        self.send_with_selector(msg, &SelectByHash, key).await
    }

    /// Starts sending in the background; await the returned future for the result.
    pub fn send_async(&self, msg: Message) -> SendFuture {
        let p = self.0.clone();
        SendFuture(tokio::spawn(async move {
            send::send(&p, msg, send::Target::Any).await
        }))
    }

    /// Sends without waiting for the broker (no result, no retry).
    pub async fn send_oneway(&self, msg: Message) -> Result<()> {
        send::send_oneway(&self.0, msg).await
    }

    /// Sends messages of one topic as one request, stored together in one queue.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<SendResult> {
        send::send_batch(&self.0, msgs).await
    }

    /// The writable queues of `topic`.
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let p = &self.0;
        let route = p
            .instance
            .send_route(
                topic,
                &p.opts.default_topic,
                p.opts.default_topic_queue_nums,
            )
            .await?;
        Ok(route.write_queues.clone())
    }

    /// Leaves the group on every broker and closes the connections.
    pub async fn shutdown(&self) {
        self.0.instance.unregister(Some(&self.0.group), None).await;
        self.0.instance.close();
    }
}

/// The result of [`Producer::send_async`].
pub struct SendFuture(tokio::task::JoinHandle<Result<SendResult>>);

impl Future for SendFuture {
    type Output = Result<SendResult>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(r) => r,
            Err(e) => Err(ClientError::Invalid(format!("send task ended: {e}"))),
        })
    }
}
