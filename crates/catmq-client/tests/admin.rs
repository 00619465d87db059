//! The admin client against an in-process name server + broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use catmq_client::{Admin, ClientConfig, ClientError, ConsumeResult, Message, PushConsumer};
use catmq_protocol::body::{perm, SubscriptionGroupConfig, TopicConfig};
use catmq_testkit::{eventually, Cluster};
use common::{fast_options, producer, send_n, Seen, WITHIN};

async fn admin(c: &Cluster) -> Admin {
    Admin::connect(ClientConfig::new(&c.namesrv_addr()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_groups_and_cluster() {
    let c = Cluster::start().await;
    let a = admin(&c).await;
    let brokers = a.brokers(None).await.unwrap();
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0].cluster, "DefaultCluster");
    let cfg = TopicConfig {
        topic_name: "AdmT".into(),
        read_queue_nums: 3,
        write_queue_nums: 3,
        perm: perm::READ_WRITE,
        ..Default::default()
    };
    a.create_topic(Some("DefaultCluster"), &cfg).await.unwrap();
    eventually(WITHIN, "topic listed", || async {
        a.topics()
            .await
            .unwrap()
            .contains(&"AdmT".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(a.route("AdmT").await.unwrap().write_queues.len(), 3);
    let status = a.topic_status("AdmT").await.unwrap();
    assert_eq!(status.len(), 3);
    let g = SubscriptionGroupConfig {
        group_name: "AdmG".into(),
        consume_enable: true,
        retry_max_times: 5,
        ..Default::default()
    };
    a.create_group(None, &g).await.unwrap();
    assert_eq!(a.groups().await.unwrap()["AdmG"].retry_max_times, 5);
    a.delete_group("AdmG").await.unwrap();
    assert!(!a.groups().await.unwrap().contains_key("AdmG"));
    a.delete_topic("AdmT").await.unwrap();
    let e = a.route("AdmT").await.unwrap_err();
    assert!(matches!(e, ClientError::NoRoute { .. }), "{e}");
    let rt = a.broker_runtime(&brokers[0].addr).await.unwrap();
    assert!(rt.contains_key("msgPutTotalSinceBoot"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_lookups() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    let before = catmq_testkit::client::now_ms() - 1;
    let r = p
        .send(Message::new("LookT", "findme").with_keys(["order-7"]))
        .await
        .unwrap();
    send_n(&p, "LookT", "x", 9).await;
    let after = catmq_testkit::client::now_ms() + 1;
    let a = admin(&c).await;
    // A topic created by a send is registered with the name server in the background.
    eventually(WITHIN, "the topic's route", || async {
        a.route("LookT").await.ok()
    })
    .await;
    let m = a.view_message(&r.offset_msg_id).await.unwrap();
    assert_eq!(m.body().as_ref(), b"findme");
    assert_eq!(m.msg_id, r.msg_id);
    let by_key = a
        .query_by_key("LookT", "order-7", 0, after, 32)
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    let by_id = a
        .query_by_key("LookT", &r.msg_id, 0, after, 32)
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    let all = a
        .messages_between("LookT", before, after, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 10);
    assert!(a.view_message("nonsense").await.is_err());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_connections_and_offset_reset_with_a_live_consumer() {
    let c = Cluster::start().await;
    let p = producer(&c, "PG").await;
    send_n(&p, "ResetT", "r", 20).await;
    let seen = Seen::default();
    let s = seen.clone();
    let cons = PushConsumer::builder("G-reset")
        .namesrv(&c.namesrv_addr())
        .options(fast_options())
        .subscribe("ResetT", "*")
        .concurrent(move |msgs: Vec<catmq_client::MessageExt>, _| {
            s.push(&msgs);
            std::future::ready(ConsumeResult::Success)
        })
        .start()
        .await
        .unwrap();
    seen.wait_for(20, "first pass").await;
    let a = admin(&c).await;
    eventually(WITHIN, "lag 0", || async {
        let lag = a.lag("G-reset", Some("ResetT")).await.unwrap();
        (lag.iter().map(|q| q.lag).sum::<i64>() == 0 && !lag.is_empty()).then_some(())
    })
    .await;
    let conns = a.consumer_connections("G-reset").await.unwrap();
    assert_eq!(conns.connection_set.len(), 1);
    assert_eq!(conns.connection_set[0].client_id, cons.client_id());
    // Back to the beginning: the live consumer gets all 20 again.
    let offsets = a.reset_offsets("G-reset", "ResetT", 0, true).await.unwrap();
    assert!(offsets.iter().all(|(_, o)| *o == 0));
    seen.wait_for(40, "second pass after the reset").await;
    cons.shutdown().await;
    c.shutdown().await;
}
