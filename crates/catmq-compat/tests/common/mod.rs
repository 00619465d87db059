//! The compatibility scenario, run by the crates.io `rocketmq-client-rust` client (written by
//! others, for Apache RocketMQ) against a CatMQ name server and broker on 127.0.0.1.
//!
//! 1. a producer sends 1,000 messages synchronously to a topic it creates through TBW102;
//! 2. a concurrent push consumer receives every one;
//! 3. an orderly push consumer receives each queue in offset order;
//! 4. a listener that fails once gets the message again from the retry topic;
//! 5. its transaction producer commits, rolls back, and answers a check-back;
//! 6. after a broker restart, the group resumes at its committed offset.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catmq_testkit::Cluster;
use rocketmq_client_rust::{
    ClientResult, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext,
    ConsumeConcurrentlyStatus, ConsumeOrderlyContext, ConsumeOrderlyStatus, DefaultMQProducer,
    DefaultMQPushConsumer, LocalTransactionState, MQPushConsumer, MessageListenerConcurrently,
    MessageListenerOrderly, MessageQueueSelector, SelectMessageQueueByHash, SendStatus,
    TransactionListener, TransactionMQProducer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

const WAIT: Duration = Duration::from_secs(90);

/// The client library's runtime and telemetry, as its examples set them up.
pub struct ClientRt {
    owner: RuntimeOwner,
    client: Arc<ClientRuntime>,
    telemetry: rocketmq_observability::TelemetryRuntimeGuard,
}

impl ClientRt {
    pub fn new(scope: &str) -> Self {
        let owner = RuntimeOwner::plan(RuntimeConfig {
            thread_name: format!("compat-{scope}"),
            ..Default::default()
        })
        .unwrap()
        .build()
        .unwrap();
        let mut cfg = rocketmq_observability::TelemetryBootstrapConfig::default();
        cfg.logging.filter = "warn".into();
        let telemetry = rocketmq_observability::install_global(&cfg).unwrap();
        let client = ClientRuntime::try_new(
            owner.root_context().component("client"),
            ClientRuntimeConfig::default(),
            telemetry.handle(),
        )
        .unwrap();
        Self {
            owner,
            client,
            telemetry,
        }
    }

    pub async fn shutdown(self) {
        let _ = self.client.shutdown().await;
        let _ = self.owner.shutdown_tasks().await;
        let _ = self.owner.shutdown_background();
        let _ = self.telemetry.shutdown();
    }
}

/// What a listener saw: (topic, queue id, queue offset, reconsume times, body), in order.
type Seen = Arc<Mutex<Vec<(String, i32, i64, i32, String)>>>;

fn record(seen: &Seen, msgs: &[&MessageExt]) {
    let mut s = seen.lock().unwrap();
    for m in msgs {
        let body = m
            .body()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        s.push((
            m.topic().to_string(),
            m.queue_id(),
            m.queue_offset(),
            m.reconsume_times(),
            body,
        ));
    }
}

/// Succeeds, except the first delivery of a body starting with "poison".
struct Concurrent {
    seen: Seen,
    failed: Mutex<HashSet<String>>,
}

impl MessageListenerConcurrently for Concurrent {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _: &ConsumeConcurrentlyContext,
    ) -> ClientResult<ConsumeConcurrentlyStatus> {
        record(&self.seen, msgs);
        for m in msgs {
            let body = m
                .body()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if body.starts_with("poison") && self.failed.lock().unwrap().insert(body) {
                return Ok(ConsumeConcurrentlyStatus::ReconsumeLater);
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

struct Orderly(Seen);

impl MessageListenerOrderly for Orderly {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        ctx: &mut ConsumeOrderlyContext,
    ) -> ClientResult<ConsumeOrderlyStatus> {
        ctx.set_auto_commit(true);
        record(&self.0, msgs);
        Ok(ConsumeOrderlyStatus::Success)
    }
}

async fn wait_for(
    what: &str,
    seen: &Seen,
    done: impl Fn(&[(String, i32, i64, i32, String)]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        if done(&seen.lock().unwrap()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: saw {} deliveries",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn consumer(
    rt: &ClientRt,
    ns: &str,
    group: &str,
    topic: &str,
    orderly: bool,
) -> (DefaultMQPushConsumer, Seen) {
    let seen: Seen = Arc::default();
    let mut c = DefaultMQPushConsumer::builder(rt.client.clone())
        .consumer_group(group.to_string())
        .name_server_addr(ns.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    c.subscribe(topic, "*").await.unwrap();
    if orderly {
        c.register_message_listener_orderly(Orderly(seen.clone()));
    } else {
        c.register_message_listener_concurrently(Concurrent {
            seen: seen.clone(),
            failed: Mutex::default(),
        });
    }
    c.start().await.unwrap();
    (c, seen)
}

async fn send(p: &DefaultMQProducer, topic: &str, body: String) {
    let m = Message::builder()
        .topic(topic)
        .tags("TagA")
        .body(body.into_bytes())
        .build()
        .unwrap();
    let r = p.send(m).await.unwrap().expect("a sync send has a result");
    assert_eq!(r.send_status, SendStatus::SendOk);
}

/// Runs the whole scenario; `scope` names the client runtime. Returns how many requests the
/// broker received with JSON and with binary headers.
pub async fn scenario(scope: &str) -> (u64, u64) {
    let mut cluster = Cluster::start().await;
    let ns = cluster.namesrv_addr();
    let rt = ClientRt::new(scope);
    let mut producer = DefaultMQProducer::builder(rt.client.clone())
        .producer_group("compat_producer")
        .name_server_addr(ns.clone())
        .build();
    producer.start().await.unwrap();

    let (mut all, seen) = every_message_is_consumed(&rt, &ns, &producer).await;
    each_queue_is_consumed_in_order(&rt, &ns, &producer).await;
    a_failed_message_comes_back_from_the_retry_topic(&producer, &seen).await;
    transactions_commit_roll_back_and_check_back(&rt, &ns).await;
    all.shutdown().await;
    let before = header_counts(&cluster).await;
    cluster.restart_broker().await;
    the_group_resumes_at_its_committed_offset(&rt, &ns, &producer).await;

    producer.shutdown().await;
    rt.shutdown().await;
    let after = header_counts(&cluster).await;
    cluster.shutdown().await;
    (before.0 + after.0, before.1 + after.1)
}

/// Decides by body prefix; a check-back commits (and is recorded).
struct Tx {
    checked: Arc<Mutex<Vec<String>>>,
}

fn text(b: Option<&[u8]>) -> String {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

impl TransactionListener for Tx {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let b = text(msg.get_body().map(|b| b.as_ref()));
        if b.starts_with("commit") {
            LocalTransactionState::CommitMessage
        } else if b.starts_with("rollback") {
            LocalTransactionState::RollbackMessage
        } else {
            LocalTransactionState::Unknown
        }
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let b = text(msg.body().as_deref());
        self.checked.lock().unwrap().push(b);
        LocalTransactionState::CommitMessage
    }
}

/// The client's transaction producer: a commit is delivered, a rollback never is, and an
/// unknown outcome is settled by the broker's check-back (which the client answers).
async fn transactions_commit_roll_back_and_check_back(rt: &ClientRt, ns: &str) {
    let checked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut p = TransactionMQProducer::builder(rt.client.clone())
        .producer_group("compat_tx")
        .name_server_addr(ns.to_string())
        .transaction_listener(Tx {
            checked: checked.clone(),
        })
        .build();
    p.start().await.unwrap();
    for (body, want) in [
        ("commit-1", LocalTransactionState::CommitMessage),
        ("rollback-1", LocalTransactionState::RollbackMessage),
        ("unknown-1", LocalTransactionState::Unknown),
    ] {
        let m = Message::builder()
            .topic("CompatTx")
            .body(body.as_bytes().to_vec())
            .build()
            .unwrap();
        let r = p
            .send_message_in_transaction::<(), _>(m, None)
            .await
            .unwrap();
        assert_eq!(r.local_transaction_state, Some(want));
        assert_eq!(r.send_result.unwrap().send_status, SendStatus::SendOk);
    }
    let (mut c, seen) = consumer(rt, ns, "compat_tx_consumer", "CompatTx", false).await;
    wait_for("the commit and the checked-back unknown", &seen, |s| {
        s.iter().any(|x| x.4 == "commit-1") && s.iter().any(|x| x.4 == "unknown-1")
    })
    .await;
    assert!(checked.lock().unwrap().iter().any(|b| b == "unknown-1"));
    let bodies: Vec<String> = seen.lock().unwrap().iter().map(|x| x.4.clone()).collect();
    assert!(!bodies.contains(&"rollback-1".to_owned()), "{bodies:?}");
    assert_eq!(bodies.len(), 2, "each once: {bodies:?}");
    c.shutdown().await;
    p.shutdown().await;
}

/// 1,000 sync sends, then a concurrent push consumer receives every one (it keeps running).
async fn every_message_is_consumed(
    rt: &ClientRt,
    ns: &str,
    producer: &DefaultMQProducer,
) -> (DefaultMQPushConsumer, Seen) {
    for i in 0..1000 {
        send(producer, "CompatTopic", format!("m{i}")).await;
    }
    let (all, seen) = consumer(rt, ns, "compat_concurrent", "CompatTopic", false).await;
    wait_for("1,000 messages", &seen, |s| {
        s.iter().map(|x| &x.4).collect::<HashSet<_>>().len() == 1000
    })
    .await;
    (all, seen)
}

/// Messages sent by key hash; an orderly consumer sees each queue in offset order.
async fn each_queue_is_consumed_in_order(rt: &ClientRt, ns: &str, producer: &DefaultMQProducer) {
    for i in 0..200 {
        let key = i % 4;
        let m = Message::builder()
            .topic("CompatOrder")
            .body(format!("k{key}-{i}").into_bytes())
            .build()
            .unwrap();
        let r = producer
            .send_with_selector(
                m,
                |mqs, msg, arg| SelectMessageQueueByHash.select(mqs, msg, arg),
                &key,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.send_status, SendStatus::SendOk);
    }
    let (mut ordered, seen) = consumer(rt, ns, "compat_orderly", "CompatOrder", true).await;
    wait_for("200 ordered messages", &seen, |s| s.len() >= 200).await;
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, q, off, _, body) in seen.lock().unwrap().iter() {
        if let Some(prev) = last.insert(*q, *off) {
            assert!(*off > prev, "queue {q}: offset {off} after {prev} ({body})");
        }
    }
    ordered.shutdown().await;
}

/// The concurrent listener fails the first delivery of "poison-1"; it comes again.
async fn a_failed_message_comes_back_from_the_retry_topic(
    producer: &DefaultMQProducer,
    seen: &Seen,
) {
    send(producer, "CompatTopic", "poison-1".into()).await;
    wait_for("the retried message", seen, |s| {
        s.iter().filter(|x| x.4 == "poison-1").count() >= 2
    })
    .await;
    let redelivered: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.4 == "poison-1")
        .cloned()
        .collect();
    assert_eq!(redelivered[0].3, 0);
    assert_eq!(redelivered[1].3, 1, "the redelivery counts one reconsume");
    assert_eq!(
        redelivered[1].0, "CompatTopic",
        "the client renames the retry topic back"
    );
}

/// After the restart, a new member of the group gets only what was sent since.
async fn the_group_resumes_at_its_committed_offset(
    rt: &ClientRt,
    ns: &str,
    producer: &DefaultMQProducer,
) {
    for i in 0..10 {
        send(producer, "CompatTopic", format!("after-{i}")).await;
    }
    let (mut again, seen) = consumer(rt, ns, "compat_concurrent", "CompatTopic", false).await;
    wait_for("the 10 new messages", &seen, |s| {
        s.iter().filter(|x| x.4.starts_with("after-")).count() == 10
    })
    .await;
    let old: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|x| x.4.clone())
        .filter(|b| !b.starts_with("after-"))
        .collect();
    assert!(
        old.is_empty(),
        "messages consumed before the restart came again: {old:?}"
    );
    again.shutdown().await;
}

/// Requests the broker received since it started, with JSON and with binary headers.
async fn header_counts(cluster: &Cluster) -> (u64, u64) {
    let info = cluster.runtime_info().await;
    let count = |k: &str| info[k].parse::<u64>().unwrap();
    (count("requestsJsonHeader"), count("requestsBinaryHeader"))
}
