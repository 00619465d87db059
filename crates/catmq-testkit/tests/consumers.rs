//! Consumer groups: heartbeats, rebalance notifications, offsets, locks, retries, dead letters,
//! delayed delivery, and what survives a broker restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use catmq_common::msgid::parse_offset_msg_id;
use catmq_protocol::body::{
    self, ConsumerListBody, LockBatchRequestBody, LockBatchResponseBody, MessageQueue,
};
use catmq_protocol::headers::{
    ConsumerGroupRequestHeader, ConsumerSendMsgBackRequestHeader, GetMaxOffsetRequestHeader,
    OffsetResponseHeader, QueueRequestHeader, SearchOffsetRequestHeader, SendMessageResponseHeader,
    TimestampResponseHeader, UnregisterClientRequestHeader, PULL_SUBSCRIPTION,
};
use catmq_protocol::{ExtFields, RequestCode, ResponseCode};
use catmq_testkit::{eventually, Cluster, Pulled, TestClient};

const W: Duration = Duration::from_secs(10);

async fn consumer_ids(c: &TestClient, group: &str) -> Option<Vec<String>> {
    let h = ConsumerGroupRequestHeader {
        consumer_group: group.into(),
    };
    let r = c
        .call(
            RequestCode::GetConsumerListByGroup,
            h.to_ext(),
            Bytes::new(),
        )
        .await;
    (r.code == 0).then(|| {
        body::decode::<ConsumerListBody>("list", &r.body)
            .unwrap()
            .consumer_id_list
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_make_groups_and_members_are_told_of_changes() {
    let c = Cluster::start().await;
    let a = c.client().await;
    assert_eq!(consumer_ids(&a, "G").await, None);
    assert_eq!(a.heartbeat("client-a", "G", &[("T", "TagA")]).await.code, 0);
    assert_eq!(consumer_ids(&a, "G").await.unwrap(), vec!["client-a"]);

    let b = c.client().await;
    b.heartbeat("client-b", "G", &[("T", "TagA")]).await;
    let n = a
        .wait_request(RequestCode::NotifyConsumerIdsChanged, W)
        .await;
    assert_eq!(n.ext.get("consumerGroup"), Some("G"));
    assert!(n.is_oneway());
    assert_eq!(
        consumer_ids(&a, "G").await.unwrap(),
        vec!["client-a", "client-b"]
    );

    // The registered subscription filters pulls that do not carry one.
    let p = c.client().await;
    p.send("T", 0, &[("TAGS", "TagB")], "b").await;
    p.send("T", 0, &[("TAGS", "TagA")], "a").await;
    let got = a.pull("G", "T", 0, 0, 0, None, 0).await;
    assert_eq!(got.bodies(), vec!["a"]);

    let h = UnregisterClientRequestHeader {
        client_id: "client-b".into(),
        producer_group: None,
        consumer_group: Some("G".into()),
    };
    assert_eq!(
        b.call(RequestCode::UnregisterClient, h.to_ext(), Bytes::new())
            .await
            .code,
        0
    );
    a.wait_request(RequestCode::NotifyConsumerIdsChanged, W)
        .await;
    assert_eq!(consumer_ids(&a, "G").await.unwrap(), vec!["client-a"]);
    // A closed connection leaves its group.
    a.conn.close();
    eventually(W, "the group to empty", || async {
        (consumer_ids(&p, "G").await.is_none()).then_some(())
    })
    .await;
}

async fn offset_call(c: &TestClient, code: RequestCode, ext: ExtFields) -> i64 {
    let r = c.call(code, ext, Bytes::new()).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    OffsetResponseHeader::from_ext(&r.ext).unwrap().offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_committed_queried_and_searched() {
    let c = Cluster::start().await;
    let b = c.client().await;
    // A new group on a queue that starts at 0 starts there, unless it asks not to.
    assert_eq!(b.query_offset("G", "O", 0, None).await, Ok(0));
    assert_eq!(
        b.query_offset("G", "O", 0, Some(false)).await,
        Err(ResponseCode::QueryNotFound.as_i32())
    );
    let before = catmq_testkit::client::now_ms();
    for i in 0..5 {
        b.send("O", 0, &[], &format!("m{i}")).await;
    }
    b.commit_offset("G", "O", 0, 3).await;
    eventually(W, "the oneway commit", || async {
        (b.query_offset("G", "O", 0, None).await == Ok(3)).then_some(())
    })
    .await;
    let max = GetMaxOffsetRequestHeader {
        topic: "O".into(),
        queue_id: 0,
        committed: None,
    };
    assert_eq!(
        offset_call(&b, RequestCode::GetMaxOffset, max.to_ext()).await,
        5
    );
    let q = QueueRequestHeader {
        topic: "O".into(),
        queue_id: 0,
    };
    assert_eq!(
        offset_call(&b, RequestCode::GetMinOffset, q.to_ext()).await,
        0
    );
    let r = b
        .call(
            RequestCode::GetEarliestMsgStoretime,
            q.to_ext(),
            Bytes::new(),
        )
        .await;
    let ts = TimestampResponseHeader::from_ext(&r.ext).unwrap().timestamp;
    assert!(ts >= before - 1000);
    let search = |ts: i64, b: &str| SearchOffsetRequestHeader {
        topic: "O".into(),
        queue_id: 0,
        timestamp: ts,
        boundary_type: Some(b.into()),
    };
    assert_eq!(
        offset_call(
            &b,
            RequestCode::SearchOffsetByTimestamp,
            search(0, "lower").to_ext()
        )
        .await,
        0
    );
    let far = catmq_testkit::client::now_ms() + 60_000;
    assert_eq!(
        offset_call(
            &b,
            RequestCode::SearchOffsetByTimestamp,
            search(far, "upper").to_ext()
        )
        .await,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_restart() {
    let mut c = Cluster::start().await;
    let b = c.client().await;
    b.send("O", 0, &[], "m").await;
    b.commit_offset("G", "O", 0, 1).await;
    // Committed with a pull's commitOffset field (the helper sends 0).
    b.pull("G", "O", 1, 0, PULL_SUBSCRIPTION | 1, Some("*"), 0)
        .await;
    eventually(W, "both commits", || async {
        let q0 = b.query_offset("G", "O", 0, Some(false)).await;
        let q1 = b.query_offset("G", "O", 1, Some(false)).await;
        (q0 == Ok(1) && q1 == Ok(0)).then_some(())
    })
    .await;
    c.restart_broker().await;
    let b = c.client().await;
    assert_eq!(b.query_offset("G", "O", 0, Some(false)).await, Ok(1));
    assert_eq!(b.query_offset("G", "O", 1, Some(false)).await, Ok(0));
}

fn mq(q: i32) -> MessageQueue {
    MessageQueue {
        broker_name: "broker-a".into(),
        queue_id: q,
        topic: "T".into(),
    }
}

async fn lock(c: &TestClient, code: RequestCode, client: &str, qs: &[i32]) -> Vec<MessageQueue> {
    let b = LockBatchRequestBody {
        client_id: client.into(),
        consumer_group: "G".into(),
        mq_set: qs.iter().map(|q| mq(*q)).collect(),
        only_this_broker: false,
    };
    let r = c.call(code, ExtFields::new(), body::encode(&b)).await;
    assert_eq!(r.code, 0);
    if code == RequestCode::UnlockBatchMq {
        return Vec::new();
    }
    let mut v = body::decode::<LockBatchResponseBody>("lock", &r.body)
        .unwrap()
        .lock_ok_mq_set;
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_locks_have_one_owner() {
    let c = Cluster::start().await;
    let x = c.client().await;
    assert_eq!(
        lock(&x, RequestCode::LockBatchMq, "a", &[0, 1]).await,
        vec![mq(0), mq(1)]
    );
    assert_eq!(
        lock(&x, RequestCode::LockBatchMq, "b", &[1, 2]).await,
        vec![mq(2)]
    );
    lock(&x, RequestCode::UnlockBatchMq, "a", &[1]).await;
    assert_eq!(
        lock(&x, RequestCode::LockBatchMq, "b", &[1]).await,
        vec![mq(1)]
    );
}

async fn send_back(c: &TestClient, offset_msg_id: &str, group: &str, level: i32, max: Option<i32>) {
    let (_, phys) = parse_offset_msg_id(offset_msg_id).unwrap();
    let h = ConsumerSendMsgBackRequestHeader {
        offset: phys,
        group: group.into(),
        delay_level: level,
        origin_msg_id: None,
        origin_topic: Some("T".into()),
        unit_mode: Some(false),
        max_reconsume_times: max,
    };
    let r = c
        .call(RequestCode::ConsumerSendMsgBack, h.to_ext(), Bytes::new())
        .await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
}

async fn wait_message(c: &TestClient, topic: &str, offset: i64) -> Pulled {
    eventually(W, topic, || async {
        let p = c
            .pull("G", topic, 0, offset, PULL_SUBSCRIPTION, Some("*"), 0)
            .await;
        (p.status() == ResponseCode::Success).then_some(p)
    })
    .await
}

fn offset_id(p: &Pulled) -> String {
    let v = catmq_common::RecordView::parse(&p.records[0]).unwrap();
    catmq_common::msgid::offset_msg_id(v.store_host(), v.physical_offset())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_messages_are_retried_with_delay_then_dead_lettered() {
    let c = Cluster::start().await;
    let b = c.client().await;
    b.heartbeat("client-a", "G", &[("T", "*")]).await;
    let r = b
        .send("T", 0, &[("TAGS", "A"), ("KEYS", "k1")], "payload")
        .await;
    let id = SendMessageResponseHeader::from_ext(&r.ext).unwrap().msg_id;
    let uniq = wait_message(&b, "T", 0)
        .await
        .property(0, "UNIQ_KEY")
        .unwrap();

    // Level 0 from the client: the broker uses 3 + reconsume times.
    send_back(&b, &id, "G", 0, Some(2)).await;
    let p = wait_message(&b, "%RETRY%G", 0).await;
    assert_eq!(p.bodies(), vec!["payload"]);
    assert_eq!(p.property(0, "RETRY_TOPIC").as_deref(), Some("T"));
    assert_eq!(
        p.property(0, "ORIGIN_MESSAGE_ID").as_deref(),
        Some(uniq.as_str())
    );
    assert_eq!(p.property(0, "DELAY"), None);
    let v = catmq_common::RecordView::parse(&p.records[0]).unwrap();
    assert_eq!(v.reconsume_times(), 1);

    send_back(&b, &offset_id(&p), "G", 1, Some(2)).await;
    let p = wait_message(&b, "%RETRY%G", 1).await;
    assert_eq!(
        catmq_common::RecordView::parse(&p.records[0])
            .unwrap()
            .reconsume_times(),
        2
    );
    // Reconsumed twice with max 2: the next failure goes to the dead-letter topic at once.
    send_back(&b, &offset_id(&p), "G", 1, Some(2)).await;
    let d = wait_message(&b, "%DLQ%G", 0).await;
    assert_eq!(d.bodies(), vec!["payload"]);
    assert_eq!(d.property(0, "RETRY_TOPIC").as_deref(), Some("T"));
    // A negative level is an explicit dead-lettering.
    let r = b.send("T", 0, &[], "second").await;
    let id = SendMessageResponseHeader::from_ext(&r.ext).unwrap().msg_id;
    send_back(&b, &id, "G", -1, None).await;
    assert_eq!(wait_message(&b, "%DLQ%G", 1).await.bodies(), vec!["second"]);
    // The retry and dead-letter topics are routed by the name server.
    let ns = c.namesrv_client().await;
    eventually(W, "DLQ route", || ns.route("%DLQ%G")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resend_beyond_max_reconsume_goes_to_the_dlq() {
    let c = Cluster::start().await;
    let b = c.client().await;
    let mut h = TestClient::send_header("%RETRY%G", 0, &[("RETRY_TOPIC", "T"), ("DELAY", "1")]);
    h.reconsume_times = Some(1);
    h.max_reconsume_times = Some(3);
    assert_eq!(b.send_with(&h, b"retry").await.code, 0);
    assert_eq!(
        wait_message(&b, "%RETRY%G", 0).await.bodies(),
        vec!["retry"]
    );
    h.reconsume_times = Some(4);
    assert_eq!(b.send_with(&h, b"dead").await.code, 0);
    assert_eq!(wait_message(&b, "%DLQ%G", 0).await.bodies(), vec!["dead"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_are_delivered_after_a_restart() {
    let mut c = Cluster::start_with(|cfg| {
        // level 3 = 3 s in this test
        cfg.delay_levels = catmq_broker::parse_delay_levels("1s 2s 3s").unwrap();
    })
    .await;
    let b = c.client().await;
    b.send("D", 0, &[("DELAY", "3")], "later").await;
    b.send("D", 0, &[("DELAY", "99")], "capped").await;
    let p = b
        .pull("G", "D", 0, 0, PULL_SUBSCRIPTION, Some("*"), 0)
        .await;
    assert_eq!(p.status(), ResponseCode::PullNotFound, "not delivered yet");
    c.restart_broker().await;
    let b = c.client().await;
    let p = eventually(W, "delayed delivery", || async {
        let p = b
            .pull("G", "D", 0, 0, PULL_SUBSCRIPTION, Some("*"), 0)
            .await;
        (p.records.len() == 2).then_some(p)
    })
    .await;
    assert_eq!(p.bodies(), vec!["later", "capped"]);
    assert_eq!(p.property(0, "REAL_TOPIC").as_deref(), Some("D"));
    assert_eq!(p.property(0, "DELAY"), None);
    let v = catmq_common::RecordView::parse(&p.records[0]).unwrap();
    assert!(
        v.store_timestamp() - v.born_timestamp() >= 2_900,
        "delivered early"
    );
}
