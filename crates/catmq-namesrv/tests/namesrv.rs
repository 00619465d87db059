//! The name server over real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use catmq_namesrv::{NameServer, NamesrvConfig};
use catmq_protocol::body::{
    self, ClusterInfo, RegisterBrokerBody, TopicConfig, TopicList, TopicRouteData,
};
use catmq_protocol::headers::{
    GetRouteInfoRequestHeader, RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader,
};
use catmq_protocol::{ExtFields, RemotingCommand, RequestCode, ResponseCode, SerializeType};
use catmq_remoting::{Connection, ConnectionOptions, Handled, Handler};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(5);

struct NoRequests;
impl Handler for NoRequests {
    fn handle(&self, _: &Arc<Connection>, req: RemotingCommand) -> Handled {
        RemotingCommand::error_to(&req, ResponseCode::RequestCodeNotSupported, "client").into()
    }
}

async fn start() -> (NameServer, Arc<Connection>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ns = NameServer::start(listener, NamesrvConfig::default()).unwrap();
    let c = Connection::connect(
        &ns.addr().to_string(),
        Arc::new(NoRequests),
        ConnectionOptions::default(),
    )
    .await
    .unwrap();
    (ns, c)
}

/// Sends a request with no header fields and no body.
async fn ask(c: &Connection, code: RequestCode) -> RemotingCommand {
    let cmd = RemotingCommand::request(code.as_i32(), ExtFields::new(), Bytes::new());
    c.request(cmd, T).await.unwrap()
}

fn register_cmd(name: &str, addr: &str, topics: &[(&str, i32)]) -> RemotingCommand {
    let h = RegisterBrokerRequestHeader {
        broker_name: name.into(),
        broker_addr: addr.into(),
        cluster_name: "DefaultCluster".into(),
        broker_id: 0,
        ..Default::default()
    };
    let mut b = RegisterBrokerBody::default();
    for (t, q) in topics {
        b.topic_config_serialize_wrapper.topic_config_table.insert(
            (*t).into(),
            TopicConfig {
                topic_name: (*t).into(),
                read_queue_nums: *q,
                write_queue_nums: *q,
                perm: 6,
                ..Default::default()
            },
        );
    }
    RemotingCommand::request(
        RequestCode::RegisterBroker.as_i32(),
        h.to_ext(),
        body::encode(&b),
    )
}

fn route_cmd(topic: &str, ser: SerializeType) -> RemotingCommand {
    let h = GetRouteInfoRequestHeader {
        topic: topic.into(),
        accept_standard_json_only: None,
    };
    let mut c = RemotingCommand::request(
        RequestCode::GetRouteinfoByTopic.as_i32(),
        h.to_ext(),
        Bytes::new(),
    );
    c.serialize = ser;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_register_and_clients_get_routes() {
    let (ns, c) = start().await;
    let r = c
        .request(route_cmd("TopicTest", SerializeType::Json), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::TopicNotExist.as_i32());
    assert!(r.remark.unwrap().contains("TopicTest"));

    let r = c
        .request(
            register_cmd(
                "broker-a",
                "127.0.0.1:10911",
                &[("TopicTest", 4), ("TBW102", 8)],
            ),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    assert_eq!(r.ext.get("masterAddr"), Some("127.0.0.1:10911"));

    for ser in [SerializeType::Json, SerializeType::RocketMq] {
        let r = c.request(route_cmd("TopicTest", ser), T).await.unwrap();
        assert_eq!((r.code, r.serialize), (0, ser));
        let text = std::str::from_utf8(&r.body).unwrap();
        assert!(
            text.contains(r#""brokerAddrs":{"0":"127.0.0.1:10911"}"#),
            "{text}"
        );
        let route: TopicRouteData = body::decode("route", &r.body).unwrap();
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    }
    let r = ask(&c, RequestCode::GetBrokerClusterInfo).await;
    let ci: ClusterInfo = body::decode("cluster", &r.body).unwrap();
    assert!(ci.cluster_addr_table["DefaultCluster"].contains("broker-a"));
    let r = ask(&c, RequestCode::GetAllTopicListFromNameserver).await;
    let tl: TopicList = body::decode("topics", &r.body).unwrap();
    assert_eq!(tl.topic_list.len(), 2);

    let h = UnregisterBrokerRequestHeader {
        broker_name: "broker-a".into(),
        broker_addr: "127.0.0.1:10911".into(),
        cluster_name: "DefaultCluster".into(),
        broker_id: 0,
    };
    let r = c
        .request(
            RemotingCommand::request(
                RequestCode::UnregisterBroker.as_i32(),
                h.to_ext(),
                Bytes::new(),
            ),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    let r = c
        .request(route_cmd("TopicTest", SerializeType::Json), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::TopicNotExist.as_i32());
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_responses_and_unknown_codes_are_not_supported() {
    let (ns, c) = start().await;
    // Missing required header field.
    let r = ask(&c, RequestCode::GetRouteinfoByTopic).await;
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());
    assert!(r.remark.unwrap().contains("topic"));
    // Invalid registration body.
    let mut bad = register_cmd("b", "h:1", &[]);
    bad.body = Bytes::from_static(b"{not json");
    let r = c.request(bad, T).await.unwrap();
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());
    // Wrong field type.
    let mut ext = ExtFields::new();
    ext.insert("brokerName", "b");
    ext.insert("brokerAddr", "h:1");
    ext.insert("clusterName", "c");
    ext.insert("brokerId", "zero");
    let r = c
        .request(
            RemotingCommand::request(RequestCode::RegisterBroker.as_i32(), ext, Bytes::new()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::SystemError.as_i32());
    let r = c
        .request(
            RemotingCommand::request(12345, ExtFields::new(), Bytes::new()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::RequestCodeNotSupported.as_i32());
    assert!(r.remark.is_some());
    // Still serving.
    let r = c
        .request(route_cmd("X", SerializeType::Json), T)
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::TopicNotExist.as_i32());
    assert_eq!(ns.inspect(|t| t.live_brokers().len()), Some(0));
    ns.shutdown().await;
}
