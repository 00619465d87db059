//! The lite pull consumer: assign, subscribe, poll, commit, seek, pause and resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use catmq_client::{ConsumeFrom, LitePullConsumer, Message, MessageExt};
use catmq_testkit::{eventually, Cluster};
use common::{fast_options, producer, WITHIN};

async fn lite(c: &Cluster, group: &str, auto: Option<Duration>) -> LitePullConsumer {
    LitePullConsumer::builder(group)
        .namesrv(&c.namesrv_addr())
        .options(fast_options())
        .consume_from(ConsumeFrom::First)
        .auto_commit(auto)
        .start()
        .await
        .unwrap()
}

async fn poll_n(l: &LitePullConsumer, n: usize) -> Vec<MessageExt> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while out.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "polled {} of {n}",
            out.len()
        );
        out.extend(l.poll(Duration::from_millis(500)).await.unwrap());
    }
    out
}

fn bodies(msgs: &[MessageExt]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_poll_seek_pause_and_manual_commit() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    let q = p.queues("LiteT").await.unwrap()[1].clone();
    for i in 0..10 {
        p.send_to_queue(Message::new("LiteT", format!("l{i}")), q.clone())
            .await
            .unwrap();
    }
    let l = lite(&c, "G-lite", None).await;
    l.assign(vec![q.clone()], "*").await.unwrap();
    assert_eq!(l.assignment(), vec![q.clone()]);
    let got = poll_n(&l, 10).await;
    assert_eq!(
        bodies(&got),
        (0..10).map(|i| format!("l{i}")).collect::<Vec<_>>()
    );
    // Nothing committed yet (manual commit).
    assert_eq!(l.committed(&q).await.unwrap(), None);
    l.commit().await.unwrap();
    assert_eq!(l.committed(&q).await.unwrap(), Some(10));
    // Seek back: the same messages again.
    l.seek(&q, 7).await.unwrap();
    assert_eq!(bodies(&poll_n(&l, 3).await), vec!["l7", "l8", "l9"]);
    l.seek_to_begin(&q).await.unwrap();
    assert_eq!(poll_n(&l, 10).await[0].queue_offset, 0);
    assert!(l.seek(&q, 99).await.is_err());
    // Paused: nothing arrives; resumed: it does.
    l.pause(std::slice::from_ref(&q));
    p.send_to_queue(Message::new("LiteT", "late"), q.clone())
        .await
        .unwrap();
    assert!(l.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    l.resume(std::slice::from_ref(&q));
    assert_eq!(bodies(&poll_n(&l, 1).await), vec!["late"]);
    l.seek_to_end(&q).await.unwrap();
    let ts = l.offset_for_timestamp(&q, 0).await.unwrap();
    assert_eq!(ts, 0);
    l.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_shares_queues_and_auto_commits() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    for i in 0..40 {
        p.send(Message::new("LiteSubT", format!("s{i}")))
            .await
            .unwrap();
    }
    let l = lite(&c, "G-lite-sub", Some(Duration::from_millis(1))).await;
    l.subscribe("LiteSubT", "*").await.unwrap();
    let got = poll_n(&l, 40).await;
    let mut b = bodies(&got);
    b.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
    want.sort();
    assert_eq!(b, want);
    // Auto commit reached the broker.
    let tc = c.client().await;
    let _ = l.poll(Duration::from_millis(10)).await.unwrap();
    l.commit().await.unwrap();
    eventually(WITHIN, "lag 0", || async {
        (tc.consume_stats("G-lite-sub", "LiteSubT").await.lag() == 0).then_some(())
    })
    .await;
    l.shutdown().await;
    c.shutdown().await;
}
