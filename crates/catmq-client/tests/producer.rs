//! Producer against an in-process name server + broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use catmq_client::producer::{SendContext, SendHook};
use catmq_client::{ClientConfig, ClientError, Message, Producer, SendResult, SerializeType};
use catmq_protocol::headers::PULL_SUBSCRIPTION;
use catmq_testkit::Cluster;

async fn producer(c: &Cluster, group: &str) -> Producer {
    Producer::builder(group)
        .namesrv(&c.namesrv_addr())
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn sync_async_oneway_and_batch_sends_are_stored() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    let r = p
        .send(
            Message::new("ProdT", "one")
                .with_tags("A")
                .with_keys(["k1"]),
        )
        .await
        .unwrap();
    assert_eq!(r.msg_id.len(), 32);
    assert_eq!(r.queue.topic, "ProdT");
    let futs: Vec<_> = (0..20)
        .map(|i| p.send_async(Message::new("ProdT", format!("async {i}"))))
        .collect();
    for f in futs {
        f.await.unwrap();
    }
    p.send_oneway(Message::new("ProdT", "oneway"))
        .await
        .unwrap();
    let batch: Vec<Message> = (0..5)
        .map(|i| Message::new("ProdT", format!("b{i}")))
        .collect();
    let b = p.send_batch(batch).await.unwrap();
    assert_eq!(b.msg_id.split(',').count(), 5);
    assert_eq!(b.offset_msg_id.split(',').count(), 5);
    // Everything is in the broker: 1 + 20 + 1 + 5 messages over the topic's queues.
    let tc = c.client().await;
    catmq_testkit::eventually(Duration::from_secs(10), "27 messages stored", || async {
        let mut n = 0;
        for q in 0..4 {
            let pulled = tc
                .pull("G", "ProdT", q, 0, PULL_SUBSCRIPTION, Some("*"), 0)
                .await;
            n += pulled.records.len();
        }
        (n == 27).then_some(())
    })
    .await;
    p.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn json_headers_work_too() {
    let c = Cluster::start().await;
    let cfg = ClientConfig {
        serialize: SerializeType::Json,
        ..ClientConfig::new(&c.namesrv_addr())
    };
    let p = Producer::builder("PGJ").config(cfg).start().await.unwrap();
    p.send(Message::new("JsonT", "x")).await.unwrap();
    let info = c.runtime_info().await;
    assert!(info["requestsJsonHeader"].parse::<u64>().unwrap() >= 1);
    c.shutdown().await;
}

#[tokio::test]
async fn ordered_sends_keep_a_key_on_one_queue() {
    let c = Cluster::start().await;
    let p = producer(&c, "PGO").await;
    let mut queues = std::collections::HashMap::new();
    for i in 0..40 {
        let key = format!("order-{}", i % 4);
        let r = p
            .send_ordered(Message::new("OrdT", format!("{i}")), &key)
            .await
            .unwrap();
        let prev = queues.insert(key.clone(), r.queue.queue_id);
        assert!(prev.is_none_or(|q| q == r.queue.queue_id), "{key} moved");
    }
    c.shutdown().await;
}

#[tokio::test]
async fn invalid_messages_are_refused_locally() {
    let c = Cluster::start().await;
    let p = Producer::builder("PGL")
        .namesrv(&c.namesrv_addr())
        .options(catmq_client::producer::ProducerOptions {
            max_message_size: 1024,
            ..Default::default()
        })
        .start()
        .await
        .unwrap();
    let e = p
        .send(Message::new("T", vec![0u8; 2048]))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Invalid(_)), "{e}");
    assert!(e.to_string().contains("2048 bytes"), "{e}");
    assert!(!e.is_retryable());
    let e = p.send(Message::new("bad topic!", "x")).await.unwrap_err();
    assert!(e.to_string().contains("not valid"), "{e}");
    c.shutdown().await;
}

#[derive(Default)]
struct Counting {
    before: AtomicUsize,
    after_ok: AtomicUsize,
}

impl SendHook for Counting {
    fn before(&self, _ctx: &SendContext<'_>) {
        self.before.fetch_add(1, Ordering::Relaxed);
    }
    fn after(&self, _ctx: &SendContext<'_>, outcome: Result<Option<&SendResult>, &ClientError>) {
        if outcome.is_ok() {
            self.after_ok.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test]
async fn hooks_see_every_attempt() {
    let c = Cluster::start().await;
    let hook = Arc::new(Counting::default());
    let p = Producer::builder("PGH")
        .namesrv(&c.namesrv_addr())
        .hook(hook.clone())
        .start()
        .await
        .unwrap();
    for i in 0..3 {
        p.send(Message::new("HookT", format!("{i}"))).await.unwrap();
    }
    assert_eq!(hook.before.load(Ordering::Relaxed), 3);
    assert_eq!(hook.after_ok.load(Ordering::Relaxed), 3);
    c.shutdown().await;
}
