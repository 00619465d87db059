//! Orderly consumption across a rebalance, and producer failover between two brokers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use catmq_client::{ConsumeContext, Message, MessageExt, OrderlyResult, PushConsumer};
use catmq_testkit::{broker_config, eventually, start_broker, Cluster};
use common::{fast_options, producer, WITHIN};

/// Per queue: who is consuming it right now, and the last sequence number seen per key.
#[derive(Default)]
struct Ledger {
    active: HashMap<i32, String>,
    last: HashMap<String, i64>,
    consumed: usize,
    by: HashMap<String, usize>,
    violations: Vec<String>,
}

fn listener(
    ledger: Arc<Mutex<Ledger>>,
    me: &'static str,
) -> impl Fn(Vec<MessageExt>, ConsumeContext) -> futures_like::Boxed + Send + Sync + 'static {
    move |msgs, ctx| {
        let ledger = ledger.clone();
        Box::pin(async move {
            let q = ctx.queue.queue_id;
            {
                let mut l = ledger.lock().unwrap();
                if let Some(other) = l.active.insert(q, me.to_owned()) {
                    l.violations
                        .push(format!("queue {q} consumed by {other} and {me} at once"));
                }
            }
            // Give a concurrent consumer of the same queue a chance to show up.
            tokio::task::yield_now().await;
            let mut l = ledger.lock().unwrap();
            for m in &msgs {
                let body = String::from_utf8_lossy(m.body()).into_owned();
                let (key, seq) = body.split_once(':').unwrap();
                let seq: i64 = seq.parse().unwrap();
                let prev = l.last.insert(key.to_owned(), seq);
                if prev.is_some_and(|p| p >= seq) {
                    l.violations
                        .push(format!("{key}: {seq} after {prev:?} ({me})"));
                }
                l.consumed += 1;
                *l.by.entry(me.to_owned()).or_default() += 1;
            }
            l.active.remove(&q);
            OrderlyResult::Success
        })
    }
}

mod futures_like {
    pub type Boxed =
        std::pin::Pin<Box<dyn std::future::Future<Output = catmq_client::OrderlyResult> + Send>>;
}

async fn orderly(c: &Cluster, ledger: &Arc<Mutex<Ledger>>, me: &'static str) -> PushConsumer {
    PushConsumer::builder("G-order")
        .namesrv(&c.namesrv_addr())
        .options(fast_options())
        .subscribe("OrderT", "*")
        .orderly(listener(ledger.clone(), me))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_keeps_every_queue_in_order_and_single_consumer() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    let keys = 16;
    let send_round = |from: i64, to: i64| {
        let p = p.clone();
        async move {
            for seq in from..to {
                for k in 0..keys {
                    let key = format!("k{k}");
                    p.send_ordered(Message::new("OrderT", format!("{key}:{seq}")), &key)
                        .await
                        .unwrap();
                }
            }
        }
    };
    send_round(0, 10).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let a = orderly(&c, &ledger, "A").await;
    eventually(WITHIN, "A consuming", || async {
        (ledger.lock().unwrap().consumed >= 50).then_some(())
    })
    .await;
    // B joins mid-stream while messages keep coming.
    let sending = tokio::spawn(send_round(10, 40));
    let b = orderly(&c, &ledger, "B").await;
    sending.await.unwrap();
    let total = 40 * keys as usize;
    eventually(WITHIN, "everything consumed", || async {
        let l = ledger.lock().unwrap();
        let done = l.last.len() == keys as usize && l.last.values().all(|s| *s == 39);
        done.then_some(())
    })
    .await;
    eventually(WITHIN, "both members hold queues", || async {
        (!a.assignment().is_empty() && !b.assignment().is_empty()).then_some(())
    })
    .await;
    {
        let l = ledger.lock().unwrap();
        assert!(l.violations.is_empty(), "{:?}", l.violations);
        assert_eq!(l.consumed, total, "no message twice, none lost");
        let by_b = l.by.get("B").copied().unwrap_or(0);
        assert!(by_b > 0, "B consumed nothing: {:?}", l.by);
    }
    let (qa, qb) = (a.assignment(), b.assignment());
    assert!(qa.iter().all(|q| !qb.contains(q)), "{qa:?} / {qb:?}");
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_fails_over_to_the_second_broker() {
    let c = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = broker_config(dir.path(), Some(c.namesrv_addr()));
    cfg.broker_name = "broker-b".into();
    let b = start_broker(cfg).await;
    let admin = catmq_client::Admin::connect(catmq_client::ClientConfig::new(&c.namesrv_addr()))
        .await
        .unwrap();
    let cfg = catmq_protocol::body::TopicConfig {
        topic_name: "FailT".into(),
        read_queue_nums: 4,
        write_queue_nums: 4,
        perm: catmq_protocol::body::perm::READ_WRITE,
        ..Default::default()
    };
    assert_eq!(admin.create_topic(None, &cfg).await.unwrap().len(), 2);
    eventually(WITHIN, "the topic on both brokers", || async {
        let r = admin.route("FailT").await.ok()?;
        (r.brokers.len() == 2).then_some(())
    })
    .await;
    let p = producer(&c, "PG").await;
    // Sends spread over both brokers.
    let mut brokers = std::collections::HashSet::new();
    for i in 0..16 {
        let r = p
            .send(Message::new("FailT", format!("warm{i}")))
            .await
            .unwrap();
        brokers.insert(r.queue.broker_name);
    }
    assert_eq!(brokers.len(), 2, "{brokers:?}");
    let mut c = c;
    let a = c.broker.take().unwrap();
    a.shutdown().await.unwrap();
    // broker-a is gone: every send still succeeds, on broker-b.
    for i in 0..10 {
        let r = p
            .send(Message::new("FailT", format!("after{i}")))
            .await
            .unwrap();
        assert_eq!(r.queue.broker_name, "broker-b");
    }
    b.shutdown().await.unwrap();
    c.namesrv.shutdown().await;
}
