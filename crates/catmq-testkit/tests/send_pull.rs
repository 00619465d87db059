//! Sending and pulling through a real name server and broker on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use catmq_common::msgid::parse_offset_msg_id;
use catmq_protocol::batch::{encode_batch, BatchEntry};
use catmq_protocol::headers::{SendMessageResponseHeader, PULL_SUBSCRIPTION, PULL_SUSPEND};
use catmq_protocol::{RequestCode, ResponseCode, SerializeType};
use catmq_testkit::{eventually, Cluster, Pulled, TestClient};

const W: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_topic_flow_creates_a_topic_and_its_route() {
    let c = Cluster::start().await;
    let ns = c.namesrv_client().await;
    // A Java producer asks for the topic, gets TOPIC_NOT_EXIST, then asks for TBW102.
    assert!(ns.route("Fresh").await.is_none());
    let tbw = eventually(W, "TBW102 route", || ns.route("TBW102")).await;
    assert_eq!(
        tbw.broker_datas[0].master_addr(),
        Some(c.broker_addr().as_str())
    );
    assert_eq!(tbw.queue_datas[0].perm & 1, 1, "TBW102 must carry INHERIT");

    let b = c.client().await;
    let r = b.send("Fresh", 1, &[("TAGS", "A")], "hello").await;
    let h = SendMessageResponseHeader::from_ext(&r.ext).unwrap();
    assert_eq!((h.queue_id, h.queue_offset), (1, 0));
    assert_eq!(h.msg_region.as_deref(), Some("DefaultRegion"));
    let (host, phys) = parse_offset_msg_id(&h.msg_id).unwrap();
    assert_eq!(host, c.broker().addr());
    assert!(phys >= 0);
    assert!(h.transaction_id.is_some());

    let fresh = eventually(W, "route of the new topic", || ns.route("Fresh")).await;
    assert_eq!(fresh.queue_datas[0].write_queue_nums, 4);
    assert_eq!(fresh.queue_datas[0].perm, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_v2_and_batch_sends_are_pulled_back_in_order_in_both_encodings() {
    let c = Cluster::start().await;
    for ser in [SerializeType::Json, SerializeType::RocketMq] {
        let topic = format!("T{}", ser.byte());
        let mut b = c.client().await;
        b.serialize = ser;
        b.send(&topic, 0, &[("TAGS", "A")], "m0").await;
        // SEND_MESSAGE (V1 field names)
        let h = TestClient::send_header(&topic, 0, &[("TAGS", "B")]);
        let r = b
            .call(
                RequestCode::SendMessage,
                h.to_ext(false),
                Bytes::from_static(b"m1"),
            )
            .await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
        // SEND_BATCH_MESSAGE
        let entries: Vec<BatchEntry> = (2..5)
            .map(|i| BatchEntry {
                flag: 0,
                body: Bytes::from(format!("m{i}")),
                properties: catmq_common::properties::encode([("TAGS", "A"), ("KEYS", "k")]),
            })
            .collect();
        let mut h = TestClient::send_header(&topic, 0, &[]);
        h.batch = Some(true);
        let r = b
            .call(
                RequestCode::SendBatchMessage,
                h.to_ext(true),
                encode_batch(&entries).unwrap(),
            )
            .await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
        let sh = SendMessageResponseHeader::from_ext(&r.ext).unwrap();
        assert_eq!(sh.msg_id.split(',').count(), 3);
        assert_eq!(sh.queue_offset, 2);

        let p = b
            .pull("G", &topic, 0, 0, PULL_SUBSCRIPTION, Some("*"), 0)
            .await;
        assert_eq!(p.status(), ResponseCode::Success);
        assert_eq!(p.bodies(), vec!["m0", "m1", "m2", "m3", "m4"]);
        assert_eq!(p.header.next_begin_offset, 5);
        assert_eq!((p.header.min_offset, p.header.max_offset), (0, 5));
        assert_eq!(p.property(1, "TAGS").as_deref(), Some("B"));

        // Server-side tag filtering.
        let p = b
            .pull("G", &topic, 0, 0, PULL_SUBSCRIPTION, Some("B"), 0)
            .await;
        assert_eq!(p.bodies(), vec!["m1"]);
        let p = b
            .pull("G", &topic, 0, 2, PULL_SUBSCRIPTION, Some("B"), 0)
            .await;
        assert_eq!(p.status(), ResponseCode::PullRetryImmediately);
        assert_eq!(p.header.next_begin_offset, 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_statuses_follow_rocketmq() {
    let c = Cluster::start().await;
    let b = c.client().await;
    b.send("S", 0, &[], "x").await;
    let sub = Some("*");
    let f = PULL_SUBSCRIPTION;
    // Caught up: PULL_NOT_FOUND, same offset.
    let p = b.pull("G", "S", 0, 1, f, sub, 0).await;
    assert_eq!(
        (p.status(), p.header.next_begin_offset),
        (ResponseCode::PullNotFound, 1)
    );
    // Beyond the end: OFFSET_MOVED to max.
    let p = b.pull("G", "S", 0, 9, f, sub, 0).await;
    assert_eq!(
        (p.status(), p.header.next_begin_offset),
        (ResponseCode::PullOffsetMoved, 1)
    );
    // Empty queue at 0: NOT_FOUND; elsewhere: OFFSET_MOVED to 0.
    let p = b.pull("G", "S", 1, 0, f, sub, 0).await;
    assert_eq!(p.status(), ResponseCode::PullNotFound);
    let p = b.pull("G", "S", 1, 3, f, sub, 0).await;
    assert_eq!(
        (p.status(), p.header.next_begin_offset),
        (ResponseCode::PullOffsetMoved, 0)
    );
    // Negative offset: moved to min.
    let p = b.pull("G", "S", 0, -5, f, sub, 0).await;
    assert_eq!(
        (p.status(), p.header.next_begin_offset),
        (ResponseCode::PullOffsetMoved, 0)
    );
    // Unknown topic, bad queue, no subscription registered.
    assert_eq!(
        b.pull("G", "Nope", 0, 0, f, sub, 0).await.status(),
        ResponseCode::TopicNotExist
    );
    assert_eq!(
        b.pull("G", "S", 99, 0, f, sub, 0).await.status(),
        ResponseCode::SystemError
    );
    assert_eq!(
        b.pull("G", "S", 0, 0, 0, None, 0).await.status(),
        ResponseCode::SubscriptionNotExist
    );
}

/// Starts a pull of `LP`/`queue` at `offset` with a 25 s suspension and returns once the broker
/// holds it: only a wake-up answers it with a message before the test's end.
async fn suspended_pull(c: &Cluster, queue: i32, offset: i64) -> tokio::task::JoinHandle<Pulled> {
    let puller = c.client().await;
    let flags = PULL_SUBSCRIPTION | PULL_SUSPEND;
    let pending = tokio::spawn(async move {
        puller
            .pull("G", "LP", queue, offset, flags, Some("*"), 25_000)
            .await
    });
    eventually(W, "the pull to be suspended", || async {
        (c.broker().suspended_pulls() == 1).then_some(())
    })
    .await;
    pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_pull_is_answered_when_a_message_arrives() {
    let c = Cluster::start().await;
    let b = c.client().await;
    b.send("LP", 0, &[], "first").await;
    let pending = suspended_pull(&c, 0, 1).await;
    b.send("LP", 0, &[], "second").await;
    let p = pending.await.unwrap();
    assert_eq!(p.status(), ResponseCode::Success);
    assert_eq!(p.bodies(), vec!["second"]);
    assert_eq!(c.broker().suspended_pulls(), 0);

    // An empty queue at offset 0 long-polls too.
    let pending = suspended_pull(&c, 2, 0).await;
    b.send("LP", 2, &[], "third").await;
    assert_eq!(pending.await.unwrap().bodies(), vec!["third"]);

    // A short suspension that sees nothing answers PULL_NOT_FOUND.
    let p = b
        .pull(
            "G",
            "LP",
            1,
            0,
            PULL_SUBSCRIPTION | PULL_SUSPEND,
            Some("*"),
            50,
        )
        .await;
    assert_eq!(p.status(), ResponseCode::PullNotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sends_get_clear_errors() {
    let c = Cluster::start_with(|cfg| cfg.auto_create_topic = false).await;
    let b = c.client().await;
    let r = b
        .send_with(&TestClient::send_header("NoSuch", 0, &[]), b"x")
        .await;
    assert_eq!(r.code, ResponseCode::TopicNotExist.as_i32());
    let r = b
        .send_with(&TestClient::send_header("bad topic", 0, &[]), b"x")
        .await;
    assert_eq!(r.code, ResponseCode::MessageIllegal.as_i32());
    let r = b
        .send_with(&TestClient::send_header("TBW102", 0, &[]), b"x")
        .await;
    assert_eq!(r.code, ResponseCode::MessageIllegal.as_i32());
    // Timers: beyond the longest delay, or not a number.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let far = (now.as_millis() as i64 + 5 * 366 * 86_400_000).to_string();
    for bad in [
        ("TIMER_DELIVER_MS", far.as_str()),
        ("TIMER_DELAY_SEC", "soon"),
    ] {
        let r = b
            .send_with(&TestClient::send_header("%RETRY%G", 0, &[bad]), b"x")
            .await;
        let remark = r.remark.unwrap_or_default();
        assert_eq!(r.code, ResponseCode::MessageIllegal.as_i32(), "{remark}");
        assert!(remark.contains("timer message illegal"), "{remark}");
    }
    let r = b
        .send_with(&TestClient::send_header("%RETRY%G", 7, &[]), b"x")
        .await;
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());
    // A batch body that does not parse.
    let mut body = BytesMut::new();
    body.put_i32(1000);
    body.put_i32(0);
    let mut h = TestClient::send_header("%RETRY%G", 0, &[]);
    h.batch = Some(true);
    let r = b
        .call(RequestCode::SendBatchMessage, h.to_ext(true), body.freeze())
        .await;
    assert_eq!(r.code, ResponseCode::MessageIllegal.as_i32());
    // A header without the required fields.
    let r = b
        .call(RequestCode::SendMessageV2, Default::default(), Bytes::new())
        .await;
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());
    assert!(r.remark.unwrap().contains("bad request"));
}
