//! Push consumers against an in-process name server + broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use catmq_client::consumer::ConsumerOptions;
use catmq_client::{ConsumeResult, Message, MessageModel, PushConsumer};
use catmq_protocol::headers::PULL_SUBSCRIPTION;
use catmq_testkit::{eventually, Cluster};
use common::{collecting, expected, fast_options, producer, send_n, Seen, WITHIN};

async fn consumer(
    c: &Cluster,
    group: &str,
    topic: &str,
    expr: &str,
    seen: &Seen,
    opts: ConsumerOptions,
) -> PushConsumer {
    PushConsumer::builder(group)
        .namesrv(&c.namesrv_addr())
        .options(opts)
        .subscribe(topic, expr)
        .concurrent(collecting(seen))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumer_gets_every_message_once_and_filters_tags() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    send_n(&p, "PushT", "m", 100).await;
    for tag in ["A", "B", "C"] {
        p.send(Message::new("PushT", format!("tag-{tag}")).with_tags(tag))
            .await
            .unwrap();
    }
    let all = Seen::default();
    let ab = Seen::default();
    let c1 = consumer(&c, "G-all", "PushT", "*", &all, fast_options()).await;
    let c2 = consumer(&c, "G-ab", "PushT", "A || B", &ab, fast_options()).await;
    all.wait_for(103, "every message").await;
    ab.wait_for(2, "tagged messages").await;
    let mut want = expected("m", 100);
    want.extend(["tag-A", "tag-B", "tag-C"].map(String::from));
    want.sort();
    assert_eq!(all.bodies(), want);
    assert_eq!(ab.bodies(), vec!["tag-A", "tag-B"]);
    // Offsets reach the broker: the group's lag drops to zero.
    let tc = c.client().await;
    eventually(WITHIN, "lag 0", || async {
        let stats = tc.consume_stats("G-all", "PushT").await;
        (stats.lag() == 0).then_some(())
    })
    .await;
    c1.shutdown().await;
    c2.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_messages_retry_then_go_to_the_dead_letter_topic() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    p.send(Message::new("RetryT", "poison")).await.unwrap();
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = attempts.clone();
    let cons = PushConsumer::builder("G-retry")
        .namesrv(&c.namesrv_addr())
        .options(ConsumerOptions {
            max_reconsume_times: 2,
            ..fast_options()
        })
        .subscribe("RetryT", "*")
        .concurrent(move |msgs: Vec<catmq_client::MessageExt>, _| {
            let a = a.clone();
            async move {
                for m in msgs {
                    a.lock()
                        .unwrap()
                        .push((m.topic().to_owned(), m.reconsume_times));
                }
                ConsumeResult::ReconsumeLater
            }
        })
        .start()
        .await
        .unwrap();
    // First delivery + 2 retries (through %RETRY%G-retry, topic restored), then the DLQ.
    let tc = c.client().await;
    eventually(WITHIN, "message in the DLQ", || async {
        let pulled = tc
            .pull(
                "G-dlq-reader",
                "%DLQ%G-retry",
                0,
                0,
                PULL_SUBSCRIPTION,
                Some("*"),
                0,
            )
            .await;
        (pulled.records.len() == 1).then_some(())
    })
    .await;
    let seen = attempts.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("RetryT".to_owned(), 0),
            ("RetryT".to_owned(), 1),
            ("RetryT".to_owned(), 2)
        ]
    );
    cons.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_delivers_every_message_to_every_member() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    send_n(&p, "BcastT", "b", 30).await;
    let dir = tempfile::tempdir().unwrap();
    let (s1, s2) = (Seen::default(), Seen::default());
    let mut members = Vec::new();
    for (i, seen) in [&s1, &s2].into_iter().enumerate() {
        let opts = ConsumerOptions {
            model: MessageModel::Broadcasting,
            offset_store_dir: Some(dir.path().join(format!("m{i}"))),
            ..fast_options()
        };
        members.push(consumer(&c, "G-bcast", "BcastT", "*", seen, opts).await);
    }
    s1.wait_for(30, "member 1").await;
    s2.wait_for(30, "member 2").await;
    assert_eq!(s1.bodies(), expected("b", 30));
    assert_eq!(s2.bodies(), expected("b", 30));
    // The offsets are in the local files.
    for m in members {
        m.shutdown().await;
    }
    let file = std::fs::read_to_string(dir.path().join("m0/DEFAULT/G-bcast/offsets.json")).unwrap();
    assert!(file.contains("BcastT"), "{file}");
    // A restarted member resumes from its file: only new messages arrive.
    send_n(&p, "BcastT", "new", 5).await;
    let s3 = Seen::default();
    let opts = ConsumerOptions {
        model: MessageModel::Broadcasting,
        offset_store_dir: Some(dir.path().join("m0")),
        ..fast_options()
    };
    let again = consumer(&c, "G-bcast", "BcastT", "*", &s3, opts).await;
    s3.wait_for(5, "new messages after restart").await;
    assert_eq!(s3.bodies(), expected("new", 5));
    again.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_pauses_a_full_queue() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    let q = p.queues("FlowT").await.unwrap()[0].clone();
    for i in 0..200 {
        p.send_to_queue(Message::new("FlowT", format!("f{i}")), q.clone())
            .await
            .unwrap();
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (g, d) = (gate.clone(), done.clone());
    let cons = PushConsumer::builder("G-flow")
        .namesrv(&c.namesrv_addr())
        .options(ConsumerOptions {
            max_cached_messages_per_queue: 10,
            pull_batch_size: 5,
            consume_tasks: 1,
            ..fast_options()
        })
        .subscribe("FlowT", "*")
        .concurrent(move |msgs: Vec<catmq_client::MessageExt>, _| {
            let (g, d) = (g.clone(), d.clone());
            async move {
                g.acquire().await.unwrap().forget();
                d.fetch_add(msgs.len(), Ordering::Relaxed);
                ConsumeResult::Success
            }
        })
        .start()
        .await
        .unwrap();
    eventually(WITHIN, "a flow-control pause", || async {
        (cons.flow_control_pauses() > 0).then_some(())
    })
    .await;
    let stats = cons.cache_stats();
    let s = stats.iter().find(|s| s.queue == q).unwrap();
    assert!((10..=14).contains(&s.cached_messages), "{s:?}");
    assert!(s.next_offset <= 14, "pulled past the limit: {s:?}");
    gate.add_permits(1000);
    eventually(
        WITHIN,
        "all consumed after the listener unblocks",
        || async { (done.load(Ordering::Relaxed) == 200).then_some(()) },
    )
    .await;
    cons.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_survive_consumer_and_broker_restarts() {
    let mut c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    send_n(&p, "ResumeT", "a", 20).await;
    let s1 = Seen::default();
    let first = consumer(&c, "G-resume", "ResumeT", "*", &s1, fast_options()).await;
    s1.wait_for(20, "first batch").await;
    first.shutdown().await;
    // Consumer restart: only the new messages.
    send_n(&p, "ResumeT", "b", 10).await;
    let s2 = Seen::default();
    let second = consumer(&c, "G-resume", "ResumeT", "*", &s2, fast_options()).await;
    s2.wait_for(10, "second batch").await;
    assert_eq!(s2.bodies(), expected("b", 10));
    // Broker restart under a running consumer: it reconnects and goes on where it was.
    let tc = c.client().await;
    eventually(WITHIN, "offsets committed", || async {
        (tc.consume_stats("G-resume", "ResumeT").await.lag() == 0).then_some(())
    })
    .await;
    c.restart_broker().await;
    send_n(&p, "ResumeT", "c", 10).await;
    eventually(WITHIN, "messages after the broker restart", || async {
        (s2.len() >= 20).then_some(())
    })
    .await;
    let mut want = expected("b", 10);
    want.extend(expected("c", 10));
    want.sort();
    assert_eq!(s2.bodies(), want);
    second.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_round_trip() {
    use catmq_client::producer::ProducerOptions;
    use catmq_client::{Compression, Producer};
    let c = Cluster::start().await;
    let body: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for (i, kind) in [Compression::Zlib, Compression::Lz4, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let p = Producer::builder(format!("PGZ{i}"))
            .namesrv(&c.namesrv_addr())
            .options(ProducerOptions {
                compression: kind,
                ..Default::default()
            })
            .start()
            .await
            .unwrap();
        p.send(Message::new("ZipT", body.clone())).await.unwrap();
    }
    // Stored compressed (sysFlag bit 0), delivered decompressed.
    let tc = c.client().await;
    let mut stored = 0;
    for q in 0..4 {
        let pulled = tc
            .pull("G-raw", "ZipT", q, 0, PULL_SUBSCRIPTION, Some("*"), 0)
            .await;
        for r in &pulled.records {
            let v = catmq_common::RecordView::parse(r).unwrap();
            assert_eq!(v.sys_flag() & 1, 1);
            assert!(v.body().len() < 2_000);
            stored += 1;
        }
    }
    assert_eq!(stored, 3);
    let seen = Seen::default();
    let cons = consumer(&c, "G-zip", "ZipT", "*", &seen, fast_options()).await;
    seen.wait_for(3, "compressed messages").await;
    assert!(seen.bodies().iter().all(|b| *b == body));
    cons.shutdown().await;
    c.shutdown().await;
}
