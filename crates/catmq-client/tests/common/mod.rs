//! Helpers shared by the client's cluster tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catmq_client::consumer::ConsumerOptions;
use catmq_client::{ConsumeFrom, ConsumeResult, Message, MessageExt, Producer, PushConsumer};
use catmq_testkit::Cluster;

/// How long a test waits for an observable state.
pub const WITHIN: Duration = Duration::from_secs(30);

/// Consumer options for tests: start at the first message, react quickly.
pub fn fast_options() -> ConsumerOptions {
    ConsumerOptions {
        consume_from: ConsumeFrom::First,
        rebalance_interval: Duration::from_secs(2),
        persist_interval: Duration::from_millis(200),
        lock_interval: Duration::from_secs(2),
        pull_error_delay: Duration::from_millis(200),
        long_poll: Duration::from_secs(2),
        orderly_suspend: Duration::from_millis(100),
        ..Default::default()
    }
}

pub async fn producer(c: &Cluster, group: &str) -> Producer {
    Producer::builder(group)
        .namesrv(&c.namesrv_addr())
        .start()
        .await
        .unwrap()
}

/// Sends `n` messages with bodies `"{prefix}{i}"`.
pub async fn send_n(p: &Producer, topic: &str, prefix: &str, n: usize) {
    for i in 0..n {
        p.send(Message::new(topic, format!("{prefix}{i}")))
            .await
            .unwrap();
    }
}

/// Collected message bodies.
#[derive(Clone, Default)]
pub struct Seen(pub Arc<Mutex<Vec<MessageExt>>>);

impl Seen {
    pub fn push(&self, msgs: &[MessageExt]) {
        self.0.lock().unwrap().extend_from_slice(msgs);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn bodies(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|m| String::from_utf8_lossy(m.body()).into_owned())
            .collect();
        v.sort();
        v
    }

    pub async fn wait_for(&self, n: usize, what: &str) {
        catmq_testkit::eventually(WITHIN, what, || async { (self.len() >= n).then_some(()) }).await;
    }
}

/// A concurrent listener that collects what it gets into `seen`.
pub fn collecting(
    seen: &Seen,
) -> impl Fn(
    Vec<catmq_client::MessageExt>,
    catmq_client::ConsumeContext,
) -> std::future::Ready<ConsumeResult>
       + Send
       + Sync
       + 'static {
    let seen = seen.clone();
    move |msgs, _ctx| {
        seen.push(&msgs);
        std::future::ready(ConsumeResult::Success)
    }
}

/// A concurrent push consumer of `group` on all of `topic`, from the first message, that
/// collects what it gets.
pub async fn collecting_consumer(c: &Cluster, group: &str, topic: &str) -> (PushConsumer, Seen) {
    let seen = Seen::default();
    let pc = PushConsumer::builder(group)
        .namesrv(&c.namesrv_addr())
        .options(fast_options())
        .subscribe(topic, "*")
        .concurrent(collecting(&seen))
        .start()
        .await
        .unwrap();
    (pc, seen)
}

/// Sorted bodies `"{prefix}{i}"` for `i` in `0..n`.
pub fn expected(prefix: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    v.sort();
    v
}
