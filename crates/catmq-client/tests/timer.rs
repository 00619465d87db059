//! Scheduled delivery against a real broker whose clock the tests move forward: every delay
//! level, a message a year ahead (reported, kept across a restart, delivered), cancelling.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use catmq_client::{Admin, ClientConfig, Message, PushConsumer};
use catmq_testkit::{eventually, Cluster};
use common::{collecting_consumer, producer, Seen, WITHIN};

const DAY_MS: i64 = 86_400_000;

async fn admin(c: &Cluster) -> Admin {
    Admin::connect(ClientConfig {
        namesrv_addrs: vec![c.namesrv_addr()],
        ..ClientConfig::default()
    })
    .await
    .unwrap()
}

async fn consumer(c: &Cluster, topic: &str) -> (PushConsumer, Seen) {
    collecting_consumer(c, &format!("G-{topic}"), topic).await
}

/// Moves the broker's clock and wakes its timer.
fn advance(c: &Cluster, by: Duration) {
    c.broker().clock().advance(by);
    c.broker().wake_timers();
}

/// Waits until the name server routes `topic`: a topic created by a send is registered by the
/// broker in the background, as in RocketMQ, and admin lookups go through the route.
async fn routable(a: &Admin, topic: &str) {
    eventually(WITHIN, "the topic's route", || async {
        a.route(topic).await.ok()
    })
    .await;
}

async fn scheduled(a: &Admin, topic: &str) -> u64 {
    a.timer_stats()
        .await
        .unwrap()
        .iter()
        .filter_map(|s| s.scheduled.get(topic))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delay_level_waits_its_delay_on_the_broker_clock() {
    let c = Cluster::start().await;
    let p = producer(&c, "P").await;
    let a = admin(&c).await;
    let levels = c.config.delay_levels.clone();
    assert_eq!(levels.len(), 18);
    let mut ids = Vec::new();
    for level in 1..=18 {
        let r = p
            .send(Message::new("Levels", format!("level-{level}")).with_delay_level(level))
            .await
            .unwrap();
        ids.push(r.msg_id);
    }
    routable(&a, "Levels").await;
    for (i, id) in ids.iter().enumerate() {
        let s = a.scheduled_message("Levels", id).await.unwrap();
        let want = i64::try_from(levels[i].as_millis()).unwrap();
        let got = s.due_ms - s.store_timestamp;
        assert!(
            (got - want).abs() < 1_000,
            "level {}: {got} ms, not {want}",
            i + 1
        );
        assert_eq!(s.state, "PENDING");
    }
    assert_eq!(scheduled(&a, "Levels").await, 18);
    let (cons, seen) = consumer(&c, "Levels").await;
    seen.wait_for(1, "level 1 (1 s) in real time").await;
    advance(&c, Duration::from_secs(2 * 3600 + 60));
    seen.wait_for(18, "every level").await;
    let mut want: Vec<String> = (1..=18).map(|l| format!("level-{l}")).collect();
    want.sort();
    assert_eq!(seen.bodies(), want);
    assert_eq!(scheduled(&a, "Levels").await, 0);
    cons.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_a_year_ahead_is_kept_across_a_restart_and_delivered_on_time() {
    let mut c = Cluster::start().await;
    let p = producer(&c, "P").await;
    let a = admin(&c).await;
    let due = c.broker().clock().now_ms() + 365 * DAY_MS + 5_000;
    let r = p
        .send(Message::new("Year", "next-year").with_deliver_at(due))
        .await
        .unwrap();
    assert!(
        r.recall_handle.is_some(),
        "a scheduled send returns a recall handle"
    );
    routable(&a, "Year").await;
    let s = a.scheduled_message("Year", &r.msg_id).await.unwrap();
    assert_eq!((s.due_ms, s.state.as_str()), (due, "PENDING"));
    c.restart_broker().await;
    let s = a.scheduled_message("Year", &r.msg_id).await.unwrap();
    assert_eq!((s.due_ms, s.state.as_str()), (due, "PENDING"));
    assert_eq!(scheduled(&a, "Year").await, 1);
    let (cons, seen) = consumer(&c, "Year").await;
    // A year later, less a minute: not yet.
    let now = c.broker().clock().now_ms();
    advance(
        &c,
        Duration::from_millis(u64::try_from(due - now - 60_000).unwrap()),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(seen.len(), 0, "delivered early");
    advance(&c, Duration::from_secs(60));
    seen.wait_for(1, "the delivery a year later").await;
    let m = seen.0.lock().unwrap()[0].clone();
    assert_eq!(m.property("TIMER_OUT_MS"), Some(due.to_string().as_str()));
    let s = a.scheduled_message("Year", &r.msg_id).await.unwrap();
    assert_eq!(s.state, "DELIVERED");
    let stats = a.timer_stats().await.unwrap();
    assert!(stats[0].lateness.delivered >= 1);
    cons.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_messages_are_cancelled_by_handle_or_by_id_but_not_once_delivered() {
    let c = Cluster::start().await;
    let p = producer(&c, "P").await;
    let a = admin(&c).await;
    let hour = Duration::from_secs(3600);
    let by_handle = p
        .send(Message::new("Cancel", "by-handle").with_delay(hour))
        .await
        .unwrap();
    let by_id = p
        .send(Message::new("Cancel", "by-id").with_delay(hour * 24 * 40))
        .await
        .unwrap();
    let kept = p
        .send(Message::new("Cancel", "kept").with_delay(hour))
        .await
        .unwrap();
    p.recall("Cancel", by_handle.recall_handle.as_deref().unwrap())
        .await
        .unwrap();
    routable(&a, "Cancel").await;
    a.cancel_scheduled("Cancel", &by_id.msg_id).await.unwrap();
    // Cancelling again is harmless.
    p.recall("Cancel", by_handle.recall_handle.as_deref().unwrap())
        .await
        .unwrap();
    let s = a.scheduled_message("Cancel", &by_id.msg_id).await.unwrap();
    assert_eq!(s.state, "CANCELLED");
    assert_eq!(scheduled(&a, "Cancel").await, 1);
    let (cons, seen) = consumer(&c, "Cancel").await;
    advance(&c, hour * 24 * 41);
    seen.wait_for(1, "the message not cancelled").await;
    p.send(Message::new("Cancel", "marker")).await.unwrap();
    seen.wait_for(2, "the marker").await;
    eventually(WITHIN, "both deliveries counted", || async {
        (scheduled(&a, "Cancel").await == 0).then_some(())
    })
    .await;
    assert_eq!(seen.bodies(), vec!["kept", "marker"]);
    let late = p
        .recall("Cancel", kept.recall_handle.as_deref().unwrap())
        .await
        .unwrap_err();
    assert!(late.to_string().contains("delivered already"), "{late}");
    cons.shutdown().await;
    p.shutdown().await;
}
