//! A raw remoting client for tests: one helper per request code, no retries, no routing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use catmq_common::{properties, RecordView};
use catmq_protocol::body::{
    self, ConsumerData, HeartbeatData, ProducerData, SubscriptionData, TopicRouteData,
};
use catmq_protocol::headers::{
    GetRouteInfoRequestHeader, OffsetResponseHeader, PullMessageRequestHeader,
    PullMessageResponseHeader, QueryConsumerOffsetRequestHeader, SendMessageRequestHeader,
    UpdateConsumerOffsetRequestHeader,
};
use catmq_protocol::{ExtFields, RemotingCommand, RequestCode, ResponseCode, SerializeType};
use catmq_remoting::{Connection, ConnectionOptions, Handled, Handler};
use tokio::sync::Notify;

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Inbox {
    requests: Mutex<Vec<RemotingCommand>>,
    arrived: Notify,
}

struct Recorder(Arc<Inbox>);

impl Handler for Recorder {
    fn handle(&self, _: &Arc<Connection>, req: RemotingCommand) -> Handled {
        let reply = (!req.is_oneway()).then(|| {
            RemotingCommand::error_to(&req, ResponseCode::RequestCodeNotSupported, "test client")
        });
        self.0.requests.lock().unwrap().push(req);
        self.0.arrived.notify_waiters();
        reply.map_or(Handled::NoReply, Handled::from)
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A pull response, split into records.
#[derive(Debug)]
pub struct Pulled {
    pub code: i32,
    pub remark: Option<String>,
    pub header: PullMessageResponseHeader,
    pub records: Vec<Bytes>,
}

impl Pulled {
    /// The response code.
    pub fn status(&self) -> ResponseCode {
        ResponseCode::from_i32(self.code).unwrap()
    }

    /// The bodies of the records, as strings.
    pub fn bodies(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| String::from_utf8_lossy(RecordView::parse(r).unwrap().body()).into_owned())
            .collect()
    }

    /// A property of the n-th record.
    pub fn property(&self, n: usize, key: &str) -> Option<String> {
        let v = RecordView::parse(&self.records[n]).unwrap();
        properties::get(v.properties().unwrap_or(""), key).map(str::to_owned)
    }
}

/// Splits concatenated stored records.
pub fn split_records(mut body: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let size = RecordView::parse(&body).unwrap().total_size();
        out.push(body.split_to(size));
    }
    out
}

/// A client connection to a broker or name server.
pub struct TestClient {
    pub conn: Arc<Connection>,
    inbox: Arc<Inbox>,
    /// Header encoding of requests.
    pub serialize: SerializeType,
}

impl TestClient {
    /// Connects to `addr`.
    pub async fn connect(addr: &str) -> Self {
        let inbox = Arc::new(Inbox::default());
        let conn = Connection::connect(
            addr,
            Arc::new(Recorder(inbox.clone())),
            ConnectionOptions::default(),
        )
        .await
        .unwrap();
        Self {
            conn,
            inbox,
            serialize: SerializeType::Json,
        }
    }

    /// Sends a request and waits for its response.
    pub async fn call(&self, code: RequestCode, ext: ExtFields, body: Bytes) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(code.as_i32(), ext, body);
        cmd.serialize = self.serialize;
        self.conn.request(cmd, TIMEOUT).await.unwrap()
    }

    /// Sends a oneway request.
    pub async fn oneway(&self, code: RequestCode, ext: ExtFields, body: Bytes) {
        let mut cmd = RemotingCommand::request(code.as_i32(), ext, body);
        cmd.serialize = self.serialize;
        self.conn.oneway(cmd).await.unwrap();
    }

    /// Waits for the peer to send a request with `code`, and takes it.
    pub async fn wait_request(&self, code: RequestCode, within: Duration) -> RemotingCommand {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.inbox.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut reqs = self.inbox.requests.lock().unwrap();
                if let Some(i) = reqs.iter().position(|r| r.code == code.as_i32()) {
                    return reqs.remove(i);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("no {code:?} request within {within:?}");
            }
        }
    }

    /// A V2 send header for `topic`/`queue` with default-topic auto-creation.
    pub fn send_header(
        topic: &str,
        queue: i32,
        props: &[(&str, &str)],
    ) -> SendMessageRequestHeader {
        let uniq = format!("{:032X}", rand_id());
        let mut pairs: Vec<(&str, &str)> = vec![(properties::UNIQ_KEY, &uniq)];
        pairs.extend_from_slice(props);
        SendMessageRequestHeader {
            producer_group: "PG".into(),
            topic: topic.into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: queue,
            born_timestamp: now_ms(),
            properties: Some(properties::encode(pairs)),
            ..Default::default()
        }
    }

    /// SEND_MESSAGE_V2 with `header`.
    pub async fn send_with(
        &self,
        header: &SendMessageRequestHeader,
        body: &[u8],
    ) -> RemotingCommand {
        self.call(
            RequestCode::SendMessageV2,
            header.to_ext(true),
            Bytes::copy_from_slice(body),
        )
        .await
    }

    /// Sends one message (V2) and asserts it was stored; returns the response.
    pub async fn send(
        &self,
        topic: &str,
        queue: i32,
        props: &[(&str, &str)],
        body: &str,
    ) -> RemotingCommand {
        let r = self
            .send_with(&Self::send_header(topic, queue, props), body.as_bytes())
            .await;
        assert_eq!(r.code, 0, "send failed: {:?}", r.remark);
        r
    }

    /// PULL_MESSAGE.
    #[allow(clippy::too_many_arguments)]
    pub async fn pull(
        &self,
        group: &str,
        topic: &str,
        queue: i32,
        offset: i64,
        sys_flag: i32,
        subscription: Option<&str>,
        suspend_ms: i64,
    ) -> Pulled {
        let h = PullMessageRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id: queue,
            queue_offset: offset,
            max_msg_nums: 32,
            sys_flag,
            commit_offset: Some(0),
            suspend_timeout_millis: Some(suspend_ms),
            subscription: subscription.map(str::to_owned),
            sub_version: Some(0),
            expression_type: Some("TAG".into()),
            max_msg_bytes: None,
        };
        let r = self
            .call(RequestCode::PullMessage, h.to_ext(), Bytes::new())
            .await;
        let header = if r.code == 0 || (19..=21).contains(&r.code) {
            PullMessageResponseHeader::from_ext(&r.ext).unwrap()
        } else {
            PullMessageResponseHeader::default()
        };
        Pulled {
            code: r.code,
            remark: r.remark,
            header,
            records: split_records(r.body),
        }
    }

    /// GET_CONSUME_STATS of `group` on `topic`.
    pub async fn consume_stats(
        &self,
        group: &str,
        topic: &str,
    ) -> catmq_protocol::body::ConsumeStats {
        let h = catmq_protocol::headers::GetConsumeStatsRequestHeader {
            consumer_group: group.into(),
            topic: Some(topic.into()),
        };
        let r = self
            .call(RequestCode::GetConsumeStats, h.to_ext(), Bytes::new())
            .await;
        assert_eq!(r.code, 0, "consume stats: {:?}", r.remark);
        catmq_protocol::body::fastjson::decode("consume stats", &r.body).unwrap()
    }

    /// GET_ROUTEINFO_BY_TOPIC (to a name server): the route, or `None` on TOPIC_NOT_EXIST.
    pub async fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let h = GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: Some(true),
        };
        let r = self
            .call(RequestCode::GetRouteinfoByTopic, h.to_ext(), Bytes::new())
            .await;
        (r.code == 0).then(|| body::decode("route", &r.body).unwrap())
    }

    /// HEART_BEAT for a consumer group subscribed to `subs` (topic, expression) and its retry
    /// topic, plus producer group `PG`.
    pub async fn heartbeat(
        &self,
        client_id: &str,
        group: &str,
        subs: &[(&str, &str)],
    ) -> RemotingCommand {
        let mut set: Vec<SubscriptionData> = subs
            .iter()
            .map(|(t, e)| SubscriptionData {
                topic: (*t).into(),
                sub_string: (*e).into(),
                expression_type: "TAG".into(),
                ..Default::default()
            })
            .collect();
        set.push(SubscriptionData {
            topic: format!("%RETRY%{group}"),
            sub_string: "*".into(),
            expression_type: "TAG".into(),
            ..Default::default()
        });
        let hb = HeartbeatData {
            client_id: client_id.into(),
            consumer_data_set: vec![ConsumerData {
                group_name: group.into(),
                subscription_data_set: set,
                ..Default::default()
            }],
            producer_data_set: vec![ProducerData {
                group_name: "PG".into(),
            }],
            ..Default::default()
        };
        self.call(RequestCode::HeartBeat, ExtFields::new(), body::encode(&hb))
            .await
    }

    /// QUERY_CONSUMER_OFFSET: the offset, or the response code on failure.
    pub async fn query_offset(
        &self,
        group: &str,
        topic: &str,
        queue: i32,
        zero_if_not_found: Option<bool>,
    ) -> Result<i64, i32> {
        let h = QueryConsumerOffsetRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id: queue,
            set_zero_if_not_found: zero_if_not_found,
        };
        let r = self
            .call(RequestCode::QueryConsumerOffset, h.to_ext(), Bytes::new())
            .await;
        if r.code != 0 {
            return Err(r.code);
        }
        Ok(OffsetResponseHeader::from_ext(&r.ext).unwrap().offset)
    }

    /// UPDATE_CONSUMER_OFFSET, oneway as the Java client sends it.
    pub async fn commit_offset(&self, group: &str, topic: &str, queue: i32, offset: i64) {
        let h = UpdateConsumerOffsetRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id: queue,
            commit_offset: offset,
        };
        self.oneway(RequestCode::UpdateConsumerOffset, h.to_ext(), Bytes::new())
            .await;
    }
}

fn rand_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    (u128::from(std::process::id()) << 96)
        | ((now_ms() as u128) << 32)
        | u128::from(N.fetch_add(1, Ordering::Relaxed))
}
