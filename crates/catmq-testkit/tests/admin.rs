//! Admin codes, message queries, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use catmq_common::msgid::parse_offset_msg_id;
use catmq_protocol::body::{
    self, fastjson, ConsumeStats, ConsumerConnection, KvTable, SubscriptionGroupConfig,
    SubscriptionGroupWrapper, TopicConfig, TopicConfigSerializeWrapper, TopicStatsTable,
};
use catmq_protocol::headers::{
    ConsumerGroupRequestHeader, CreateTopicRequestHeader, DeleteSubscriptionGroupRequestHeader,
    GetConsumeStatsRequestHeader, GetSubscriptionGroupConfigRequestHeader,
    QueryMessageRequestHeader, SendMessageResponseHeader, TopicRequestHeader,
    ViewMessageRequestHeader, PULL_SUBSCRIPTION,
};
use catmq_protocol::{ExtFields, RequestCode, ResponseCode};
use catmq_testkit::client::split_records;
use catmq_testkit::{Cluster, TestClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn topic_ext(t: &str) -> ExtFields {
    TopicRequestHeader { topic: t.into() }.to_ext()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_listed_and_deleted_and_survive_restart() {
    let mut c = Cluster::start().await;
    let a = c.client().await;
    let create = CreateTopicRequestHeader {
        topic: "Orders".into(),
        read_queue_nums: 3,
        write_queue_nums: 3,
        perm: 6,
        order: Some(true),
        ..Default::default()
    };
    let r = a
        .call(
            RequestCode::UpdateAndCreateTopic,
            create.to_ext(),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let mut bad = create.clone();
    bad.topic = "TBW102".into();
    let r = a
        .call(
            RequestCode::UpdateAndCreateTopic,
            bad.to_ext(),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());

    c.restart_broker().await;
    let a = c.client().await;
    let r = a
        .call(
            RequestCode::GetTopicConfig,
            topic_ext("Orders"),
            Bytes::new(),
        )
        .await;
    let t: TopicConfig = body::decode("topic", &r.body).unwrap();
    assert_eq!((t.read_queue_nums, t.order), (3, true));
    let r = a
        .call(
            RequestCode::GetAllTopicConfig,
            ExtFields::new(),
            Bytes::new(),
        )
        .await;
    let all: TopicConfigSerializeWrapper = body::decode("all", &r.body).unwrap();
    assert!(all.topic_config_table.contains_key("Orders"));
    assert!(all.topic_config_table.contains_key("TBW102"));

    a.send("Orders", 2, &[], "x").await;
    let r = a
        .call(
            RequestCode::DeleteTopicInBroker,
            topic_ext("Orders"),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, 0);
    let r = a
        .call(
            RequestCode::GetTopicConfig,
            topic_ext("Orders"),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, ResponseCode::TopicNotExist.as_i32());
    let p = a
        .pull("G", "Orders", 2, 0, PULL_SUBSCRIPTION, Some("*"), 0)
        .await;
    assert_eq!(p.status(), ResponseCode::TopicNotExist);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_created_listed_and_deleted_and_survive_restart() {
    let mut c = Cluster::start().await;
    let a = c.client().await;
    let g = SubscriptionGroupConfig {
        group_name: "GX".into(),
        retry_max_times: 5,
        consume_broadcast_enable: false,
        ..Default::default()
    };
    let r = a
        .call(
            RequestCode::UpdateAndCreateSubscriptionGroup,
            ExtFields::new(),
            body::encode(&g),
        )
        .await;
    assert_eq!(r.code, 0);

    c.restart_broker().await;
    let a = c.client().await;
    let gh = GetSubscriptionGroupConfigRequestHeader { group: "GX".into() };
    let r = a
        .call(
            RequestCode::GetSubscriptionGroupConfig,
            gh.to_ext(),
            Bytes::new(),
        )
        .await;
    let got: SubscriptionGroupConfig = body::decode("group", &r.body).unwrap();
    assert_eq!(got.retry_max_times, 5);
    let r = a
        .call(
            RequestCode::GetAllSubscriptionGroupConfig,
            ExtFields::new(),
            Bytes::new(),
        )
        .await;
    let all: SubscriptionGroupWrapper = body::decode("groups", &r.body).unwrap();
    assert!(all.subscription_group_table.contains_key("GX"));

    let del = DeleteSubscriptionGroupRequestHeader {
        group_name: "GX".into(),
        clean_offset: Some(true),
    };
    let r = a
        .call(
            RequestCode::DeleteSubscriptionGroup,
            del.to_ext(),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, 0);
    let r = a
        .call(
            RequestCode::GetSubscriptionGroupConfig,
            gh.to_ext(),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, ResponseCode::SubscriptionGroupNotExist.as_i32());
}

async fn connections(a: &TestClient, group: &str) -> catmq_protocol::RemotingCommand {
    let h = ConsumerGroupRequestHeader {
        consumer_group: group.into(),
    };
    a.call(
        RequestCode::GetConsumerConnectionList,
        h.to_ext(),
        Bytes::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_connections_and_runtime_info() {
    let c = Cluster::start().await;
    let a = c.client().await;
    for i in 0..4 {
        a.send("S", i % 2, &[], "m").await;
    }
    a.heartbeat("client-a", "G", &[("S", "*")]).await;
    a.commit_offset("G", "S", 0, 1).await;

    let r = a
        .call(RequestCode::GetTopicStatsInfo, topic_ext("S"), Bytes::new())
        .await;
    let stats: TopicStatsTable = fastjson::decode("stats", &r.body).unwrap();
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains(r#"{{"brokerName":"broker-a","queueId":0,"topic":"S"}:"#),
        "{text}"
    );
    let q0 = stats
        .offset_table
        .0
        .iter()
        .find(|(k, _)| k.queue_id == 0)
        .unwrap()
        .1;
    assert_eq!((q0.min_offset, q0.max_offset), (0, 2));
    assert!(q0.last_update_timestamp > 0);
    assert_eq!(stats.offset_table.0.len(), 4);

    let h = GetConsumeStatsRequestHeader {
        consumer_group: "G".into(),
        topic: None,
    };
    let stats = catmq_testkit::eventually(Duration::from_secs(10), "the commit", || async {
        let r = a
            .call(RequestCode::GetConsumeStats, h.to_ext(), Bytes::new())
            .await;
        let s: ConsumeStats = fastjson::decode("consume stats", &r.body).unwrap();
        s.offset_table
            .0
            .values()
            .any(|w| w.consumer_offset == 1)
            .then_some(s)
    })
    .await;
    // 2 + 2 on topic S, committed 1 on queue 0: lag 3. The retry topic is empty.
    assert_eq!(stats.lag(), 3);
    assert!(stats.offset_table.0.keys().any(|k| k.topic == "%RETRY%G"));

    let r = connections(&a, "G").await;
    let cc: ConsumerConnection = body::decode("cc", &r.body).unwrap();
    assert_eq!(cc.connection_set[0].client_id, "client-a");
    assert!(cc.subscription_table.contains_key("S"));
    let r = connections(&a, "Nobody").await;
    assert_eq!(r.code, ResponseCode::ConsumerNotOnline.as_i32());

    let r = a
        .call(
            RequestCode::GetBrokerRuntimeInfo,
            ExtFields::new(),
            Bytes::new(),
        )
        .await;
    let kv: KvTable = body::decode("kv", &r.body).unwrap();
    assert_eq!(kv.table["msgPutTotalSinceBoot"], "4");
    assert!(kv.table["brokerVersionDesc"].starts_with("CatMQ"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_its_header_or_with_an_unknown_code_is_answered_with_an_error() {
    let c = Cluster::start().await;
    let a = c.client().await;
    let r = a
        .call(RequestCode::EndTransaction, ExtFields::new(), Bytes::new())
        .await;
    assert_eq!(r.code, ResponseCode::SystemError.as_i32(), "no header");
    let mut unknown =
        catmq_protocol::RemotingCommand::request(54321, ExtFields::new(), Bytes::new());
    unknown.serialize = a.serialize;
    let r = a
        .conn
        .request(unknown, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::RequestCodeNotSupported.as_i32());
    assert!(r.remark.unwrap().contains("54321"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_found_by_id_and_by_key() {
    let c = Cluster::start().await;
    let a = c.client().await;
    let r = a
        .send("Q", 0, &[("KEYS", "order-1 order-2")], "first")
        .await;
    a.send("Q", 1, &[("KEYS", "order-2")], "second").await;
    let id = SendMessageResponseHeader::from_ext(&r.ext).unwrap().msg_id;
    let (_, phys) = parse_offset_msg_id(&id).unwrap();
    let r = a
        .call(
            RequestCode::ViewMessageById,
            ViewMessageRequestHeader {
                offset: phys,
                topic: None,
            }
            .to_ext(),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, 0);
    let v = catmq_common::RecordView::parse(&r.body).unwrap();
    assert_eq!(v.body(), b"first");
    let r = a
        .call(
            RequestCode::ViewMessageById,
            ViewMessageRequestHeader {
                offset: 1 << 40,
                topic: None,
            }
            .to_ext(),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());

    let q = |key: &str| QueryMessageRequestHeader {
        topic: "Q".into(),
        key: key.into(),
        max_num: 32,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
    };
    let r = a
        .call(
            RequestCode::QueryMessage,
            q("order-2").to_ext(),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code, 0);
    assert_eq!(split_records(r.body).len(), 2);
    let r = a
        .call(
            RequestCode::QueryMessage,
            q("order-1").to_ext(),
            Bytes::new(),
        )
        .await;
    assert_eq!(split_records(r.body).len(), 1);
    let r = a
        .call(RequestCode::QueryMessage, q("none").to_ext(), Bytes::new())
        .await;
    assert_eq!(r.code, ResponseCode::QueryNotFound.as_i32());
}

async fn raw(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    // The broker answers what it can and closes: read to EOF.
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the broker closes a connection that sent garbage")
        .ok();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_one_connection_and_the_broker_serves_on() {
    let c = Cluster::start().await;
    let addr = c.broker_addr();
    let keep = c.client().await;
    let cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff; 64],
        // oversized length
        [&0x7fff_ffffu32.to_be_bytes()[..], &[0u8; 8]].concat(),
        // header length beyond the frame
        [&16u32.to_be_bytes()[..], &[0, 0, 0, 200], &[0u8; 12]].concat(),
        // invalid JSON header with a readable opaque
        {
            let h = br#"{"code":10,"opaque":7,"extFields":{"#;
            let mut f = ((4 + h.len()) as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&(h.len() as u32).to_be_bytes());
            f.extend_from_slice(h);
            f
        },
    ];
    for case in &cases {
        raw(&addr, case).await;
    }
    // The frame with a readable opaque got an error response before the close.
    let answer = raw(&addr, cases.last().unwrap()).await;
    assert!(answer.len() > 8, "no error response");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains(r#""opaque":7"#) && text.contains(r#""code":1"#),
        "{text}"
    );
    // Wrong field types get an error response on a connection that stays usable.
    let mut ext = ExtFields::new();
    ext.insert("consumerGroup", "G");
    ext.insert("topic", "T");
    ext.insert("queueId", "zero");
    let r = keep
        .call(RequestCode::QueryConsumerOffset, ext, Bytes::new())
        .await;
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());
    let r = keep
        .call(
            RequestCode::HeartBeat,
            ExtFields::new(),
            Bytes::from_static(b"{nope"),
        )
        .await;
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());
    keep.send("Alive", 0, &[], "still serving").await;
    let fresh = TestClient::connect(&addr).await;
    let p = fresh
        .pull("G", "Alive", 0, 0, PULL_SUBSCRIPTION, Some("*"), 0)
        .await;
    assert_eq!(p.bodies(), vec!["still serving"]);
}
