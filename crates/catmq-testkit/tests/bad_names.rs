//! Names the broker cannot store, and input that must not grow or block it: topics with too many
//! `%` for a directory name, unusable group names, offsets for queues that do not exist, a
//! heartbeat naming many new groups, and a scheduled message the store refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use catmq_broker::timer::TIMER_OUT_MS;
use catmq_broker::topics::TIMER_TOPIC;
use catmq_common::{properties, NewMessage};
use catmq_protocol::body::{self, ConsumerData, HeartbeatData};
use catmq_protocol::headers::{UpdateConsumerOffsetRequestHeader, PULL_SUBSCRIPTION};
use catmq_protocol::{ExtFields, RemotingCommand, RequestCode, ResponseCode};
use catmq_store::MessageStore;
use catmq_testkit::client::now_ms;
use catmq_testkit::{eventually, Cluster, TestClient};

const W: Duration = Duration::from_secs(10);

async fn commit(b: &TestClient, group: &str, topic: &str, queue: i32) -> RemotingCommand {
    let h = UpdateConsumerOffsetRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: queue,
        commit_offset: 1,
    };
    b.call(RequestCode::UpdateConsumerOffset, h.to_ext(), Bytes::new())
        .await
}

fn heartbeat_of(groups: impl IntoIterator<Item = String>) -> Bytes {
    body::encode(&HeartbeatData {
        client_id: "c1".into(),
        consumer_data_set: groups
            .into_iter()
            .map(|g| ConsumerData {
                group_name: g,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_cannot_be_stored_are_refused() {
    let c = Cluster::start().await;
    let b = c.client().await;
    // 100 `%` are within 127 characters, but escaped (`%25`) not within a directory name.
    let pct = "%".repeat(100);
    for props in [vec![], vec![("DELAY", "1")]] {
        let r = b
            .send_with(&TestClient::send_header(&pct, 0, &props), b"x")
            .await;
        assert_ne!(r.code, 0);
        let remark = r.remark.unwrap_or_default();
        assert!(remark.contains("too many '%'"), "{remark}");
    }
    for bad in ["g/x".to_owned(), "g".repeat(245), "%".repeat(90)] {
        let r = b
            .call(
                RequestCode::HeartBeat,
                ExtFields::new(),
                heartbeat_of([bad]),
            )
            .await;
        assert_eq!(r.code, ResponseCode::SystemError as i32);
        assert!(r.remark.unwrap_or_default().contains("group name"));
    }
    // Offsets only for queues that exist.
    b.send("T", 0, &[], "m").await;
    let r = commit(&b, "G", "NoSuchTopic", 0).await;
    assert_eq!(r.code, ResponseCode::TopicNotExist as i32);
    let r = commit(&b, "G", "T", 99).await;
    assert_eq!(r.code, ResponseCode::SystemError as i32);
    assert_ne!(commit(&b, "G/x", "T", 0).await.code, 0);
    assert_eq!(commit(&b, "G", "T", 0).await.code, 0);
    assert_eq!(b.query_offset("G", "T", 0, None).await, Ok(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_naming_many_new_groups_creates_them_all() {
    let c = Cluster::start().await;
    let b = c.client().await;
    let groups: Vec<String> = (0..500).map(|i| format!("HG{i}")).collect();
    let r = b
        .call(
            RequestCode::HeartBeat,
            ExtFields::new(),
            heartbeat_of(groups.clone()),
        )
        .await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    // Each group's retry topic exists (a pull of it finds nothing, rather than no topic).
    for g in [&groups[0], &groups[499]] {
        let p = b
            .pull(
                g,
                &format!("%RETRY%{g}"),
                0,
                0,
                PULL_SUBSCRIPTION,
                Some("*"),
                0,
            )
            .await;
        assert_eq!(p.status(), ResponseCode::PullNotFound, "retry topic of {g}");
    }
    let p = b
        .pull(
            "HG9999",
            "%RETRY%HG9999",
            0,
            0,
            PULL_SUBSCRIPTION,
            Some("*"),
            0,
        )
        .await;
    assert_eq!(p.status(), ResponseCode::TopicNotExist);
}

/// A scheduled record whose destination the store cannot hold (written straight into the
/// store, as data from an older version could be) is dropped with an error; the message due
/// with it is still delivered, and so are later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_message_the_store_refuses_does_not_hold_back_the_others() {
    let c = Cluster::start().await;
    let b = c.client().await;
    b.send("D", 0, &[], "first").await;
    let due = now_ms().to_string();
    let parked = |real: &str, body: &'static str| NewMessage {
        topic: TIMER_TOPIC.into(),
        queue_id: 0,
        flag: 0,
        body: Bytes::from_static(body.as_bytes()),
        properties: properties::encode([
            (properties::REAL_TOPIC, real),
            (properties::REAL_QID, "0"),
            (TIMER_OUT_MS, due.as_str()),
        ]),
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: "127.0.0.1:1".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    };
    let bad = "%".repeat(100);
    c.broker()
        .store()
        .append_batch(&[parked(&bad, "lost"), parked("D", "due")])
        .unwrap();
    b.send("D", 0, &[("DELAY", "1")], "later").await;
    let p = eventually(W, "scheduled delivery", || async {
        let p = b
            .pull("G", "D", 0, 0, PULL_SUBSCRIPTION, Some("*"), 0)
            .await;
        (p.records.len() == 3).then_some(p)
    })
    .await;
    assert_eq!(p.bodies(), vec!["first", "due", "later"]);
}
