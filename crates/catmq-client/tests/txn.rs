//! Transactions against a real broker: commit, rollback, check-backs (commit, rollback,
//! exhausted), a duplicate or late END_TRANSACTION, and a restart between the half message and
//! its outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use catmq_client::{
    ClientConfig, Message, MessageExt, Producer, PushConsumer, SendResult, TransactionListener,
    TransactionState as S,
};
use catmq_common::msgid::parse_offset_msg_id;
use catmq_protocol::headers::{EndTransactionRequestHeader, PULL_SUBSCRIPTION};
use catmq_protocol::RequestCode;
use catmq_testkit::{eventually, Cluster};
use common::{collecting_consumer, Seen, WITHIN};

/// Answers by body prefix: `commit…`, `rollback…`, `unknown…` when executing; a check-back of
/// `unknown-commit…` commits, of `unknown-rollback…` rolls back, anything else stays unknown.
#[derive(Default)]
struct Bank {
    checks: Mutex<HashMap<String, u32>>,
}

fn body(m: &Message) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

impl TransactionListener for Bank {
    fn execute(&self, msg: &Message, _sent: &SendResult) -> S {
        let b = body(msg);
        if b.starts_with("commit") {
            S::Commit
        } else if b.starts_with("rollback") {
            S::Rollback
        } else {
            S::Unknown
        }
    }

    fn check(&self, msg: &MessageExt) -> S {
        let b = body(&msg.message);
        *self.checks.lock().unwrap().entry(b.clone()).or_default() += 1;
        if b.starts_with("unknown-commit") {
            S::Commit
        } else if b.starts_with("unknown-rollback") {
            S::Rollback
        } else {
            S::Unknown
        }
    }
}

impl Bank {
    fn checks(&self, body: &str) -> u32 {
        self.checks.lock().unwrap().get(body).copied().unwrap_or(0)
    }
}

async fn fast_cluster() -> Cluster {
    Cluster::start_with(|cfg| {
        cfg.transaction.check_delay = Duration::from_millis(300);
        cfg.transaction.check_interval = Duration::from_millis(300);
        cfg.transaction.check_max = 3;
    })
    .await
}

async fn tx_producer(c: &Cluster, bank: Arc<Bank>) -> Producer {
    Producer::builder("TxGroup")
        .namesrv(&c.namesrv_addr())
        .transaction_listener(bank)
        .start()
        .await
        .unwrap()
}

async fn consumer(c: &Cluster, topic: &str) -> (PushConsumer, Seen) {
    collecting_consumer(c, "TxConsumers", topic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_and_every_check_back_outcome() {
    let c = fast_cluster().await;
    let bank = Arc::new(Bank::default());
    let p = tx_producer(&c, bank.clone()).await;
    let mut sent = Vec::new();
    for b in [
        "commit-1",
        "rollback-1",
        "unknown-commit-1",
        "unknown-rollback-1",
        "unknown-forever-1",
    ] {
        let r = p.send_in_transaction(Message::new("TxT", b)).await.unwrap();
        sent.push((b, r));
    }
    assert_eq!(sent[0].1.state, S::Commit);
    assert_eq!(sent[1].1.state, S::Rollback);
    assert_eq!(sent[2].1.state, S::Unknown);
    let (consumer, seen) = consumer(&c, "TxT").await;
    seen.wait_for(2, "the committed and the checked-back commit")
        .await;
    // The exhausted one is checked check_max (3) times, then discarded.
    eventually(WITHIN, "discard after the last check-back", || async {
        let rt = c.runtime_info().await;
        (rt["transactionDiscarded"] == "1").then_some(())
    })
    .await;
    assert_eq!(bank.checks("unknown-forever-1"), 3);
    assert_eq!(bank.checks("unknown-commit-1"), 1);
    assert_eq!(bank.checks("unknown-rollback-1"), 1);
    assert_eq!(
        bank.checks("commit-1"),
        0,
        "resolved ones are never checked"
    );
    let rt = c.runtime_info().await;
    assert_eq!(rt["transactionHalfPending"], "0");
    assert_eq!(rt["transactionCommitted"], "2");
    assert_eq!(rt["transactionRolledBack"], "2");
    assert_eq!(seen.bodies(), vec!["commit-1", "unknown-commit-1"]);
    let m = seen.0.lock().unwrap()[0].clone();
    assert_eq!(m.topic(), "TxT");
    assert_eq!(
        m.msg_id, sent[0].1.send.msg_id,
        "the consumer sees the producer's id"
    );
    assert_eq!(m.property("TRAN_MSG"), None);
    // The discarded half message waits in TRANS_CHECK_MAX_TIME_TOPIC for an operator.
    let b = c.client().await;
    let kept = b
        .pull(
            "Ops",
            "TRANS_CHECK_MAX_TIME_TOPIC",
            0,
            0,
            PULL_SUBSCRIPTION,
            Some("*"),
            0,
        )
        .await;
    assert_eq!(
        kept.bodies(),
        vec!["unknown-forever-1"],
        "{:?}",
        kept.status()
    );
    consumer.shutdown().await;
    p.shutdown().await;
}

/// END_TRANSACTION as a producer would send it for `r`'s half message.
async fn end(c: &Cluster, r: &SendResult, outcome: i32) -> i32 {
    let (_, offset) = parse_offset_msg_id(&r.offset_msg_id).unwrap();
    let h = EndTransactionRequestHeader {
        producer_group: Some("TxGroup".into()),
        tran_state_table_offset: Some(r.queue_offset),
        commit_log_offset: offset,
        commit_or_rollback: outcome,
        from_transaction_check: Some(true),
        msg_id: Some(r.msg_id.clone()),
        transaction_id: Some(r.msg_id.clone()),
        topic: Some(r.queue.topic.clone()),
    };
    c.client()
        .await
        .call(RequestCode::EndTransaction, h.to_ext(), Bytes::new())
        .await
        .code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_or_duplicate_end_transaction_changes_nothing() {
    let c = fast_cluster().await;
    let p = tx_producer(&c, Arc::new(Bank::default())).await;
    let committed = p
        .send_in_transaction(Message::new("TxDup", "commit-once"))
        .await
        .unwrap();
    let rolled = p
        .send_in_transaction(Message::new("TxDup", "rollback-stays"))
        .await
        .unwrap();
    // Again, and the opposite: the first outcome stands.
    assert_eq!(end(&c, &committed.send, 8).await, 0);
    assert_eq!(end(&c, &committed.send, 12).await, 0);
    assert_eq!(end(&c, &rolled.send, 8).await, 0);
    // A wrong table offset is refused.
    let mut wrong = committed.send.clone();
    wrong.queue_offset += 100;
    assert_ne!(end(&c, &wrong, 8).await, 0);
    let (consumer, seen) = consumer(&c, "TxDup").await;
    seen.wait_for(1, "the commit").await;
    // Anything published would be behind the first message: a marker proves the queue drained.
    let plain = Producer::builder("Plain")
        .namesrv(&c.namesrv_addr())
        .start()
        .await
        .unwrap();
    plain
        .send_to_queue(
            Message::new("TxDup", "marker"),
            committed.send.queue.clone(),
        )
        .await
        .unwrap();
    seen.wait_for(2, "the marker").await;
    assert_eq!(seen.bodies(), vec!["commit-once", "marker"]);
    assert_eq!(c.runtime_info().await["transactionCommitted"], "1");
    consumer.shutdown().await;
    plain.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_messages_survive_a_restart_and_are_checked_back() {
    let mut c = Cluster::start_with(|cfg| {
        cfg.transaction.check_delay = Duration::from_secs(3);
        cfg.transaction.check_interval = Duration::from_millis(300);
    })
    .await;
    let calls = Arc::new(AtomicU32::new(0));
    struct Later(Arc<AtomicU32>);
    impl TransactionListener for Later {
        fn execute(&self, _: &Message, _: &SendResult) -> S {
            S::Unknown
        }
        fn check(&self, _: &MessageExt) -> S {
            self.0.fetch_add(1, Ordering::SeqCst);
            S::Commit
        }
    }
    let p = Producer::builder("TxGroup")
        .config(ClientConfig {
            namesrv_addrs: vec![c.namesrv_addr()],
            heartbeat_interval: Duration::from_millis(300),
            ..ClientConfig::default()
        })
        .transaction_listener(Arc::new(Later(calls.clone())))
        .start()
        .await
        .unwrap();
    let r = p
        .send_in_transaction(Message::new("TxR", "after-restart"))
        .await
        .unwrap();
    assert_eq!(r.state, S::Unknown);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "not checked before the restart"
    );
    c.restart_broker().await;
    let (consumer, seen) = consumer(&c, "TxR").await;
    seen.wait_for(1, "the commit by check-back after the restart")
        .await;
    assert_eq!(seen.bodies(), vec!["after-restart"]);
    assert!(calls.load(Ordering::SeqCst) >= 1);
    assert_eq!(c.runtime_info().await["transactionHalfPending"], "0");
    consumer.shutdown().await;
    p.shutdown().await;
}
