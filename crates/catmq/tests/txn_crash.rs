//! A `catmq server` is SIGKILLed between a half message and its outcome; after the restart
//! the broker checks the transaction back, the producer commits, and the message is delivered
//! exactly once (as are one committed before the kill and a scheduled message pending at it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catmq_client::consumer::ConsumerOptions;
use catmq_client::{
    ClientConfig, ConsumeFrom, ConsumeResult, Message, MessageExt, Producer, PushConsumer,
    SendResult, TransactionListener, TransactionState,
};
use common::Proc;

const ENV: &[(&str, &str)] = &[
    ("CATMQ_BROKER_TRANSACTION_CHECK_DELAY_MS", "3000"),
    ("CATMQ_BROKER_TRANSACTION_CHECK_INTERVAL_MS", "500"),
];

struct Decide(Arc<AtomicU32>);

impl TransactionListener for Decide {
    fn execute(&self, msg: &Message, _: &SendResult) -> TransactionState {
        if msg.body.starts_with(b"commit") {
            TransactionState::Commit
        } else {
            TransactionState::Unknown
        }
    }

    fn check(&self, _: &MessageExt) -> TransactionState {
        self.0.fetch_add(1, Ordering::SeqCst);
        TransactionState::Commit
    }
}

fn config(ns: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addrs: vec![ns.to_owned()],
        heartbeat_interval: Duration::from_millis(300),
        ..ClientConfig::default()
    }
}

async fn wait_bodies(seen: &Mutex<Vec<String>>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut v = seen.lock().unwrap().clone();
        if v.len() >= n {
            v.sort();
            return v;
        }
        assert!(Instant::now() < deadline, "only {v:?} arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A push consumer of `CrashT` from the first message that collects bodies into `seen`.
async fn collecting_consumer(ns: &str, seen: Arc<Mutex<Vec<String>>>) -> PushConsumer {
    PushConsumer::builder("CrashTxConsumers")
        .config(config(ns))
        .options(ConsumerOptions {
            consume_from: ConsumeFrom::First,
            ..Default::default()
        })
        .subscribe("CrashT", "*")
        .concurrent(move |msgs: Vec<MessageExt>, _| {
            let bodies = msgs
                .iter()
                .map(|m| String::from_utf8_lossy(m.body()).into_owned());
            seen.lock().unwrap().extend(bodies);
            std::future::ready(ConsumeResult::Success)
        })
        .start()
        .await
        .unwrap()
}

#[test]
fn a_half_message_outlives_a_sigkill_and_is_committed_by_check_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::server(dir.path(), ENV);
    let ns = server.namesrv.clone().unwrap();
    let broker = server.broker.clone().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let checks = Arc::new(AtomicU32::new(0));
    let p = rt.block_on(async {
        let p = Producer::builder("CrashTx")
            .config(config(&ns))
            .transaction_listener(Arc::new(Decide(checks.clone())))
            .start()
            .await
            .unwrap();
        for body in ["commit-before", "unknown-at-kill"] {
            p.send_in_transaction(Message::new("CrashT", body))
                .await
                .unwrap();
        }
        // A scheduled message pending at the kill is delivered after the restart.
        let later = Message::new("CrashT", "scheduled-at-kill").with_delay(Duration::from_secs(4));
        p.send(later).await.unwrap();
        p
    });
    server.kill();
    let d = dir.path().to_str().unwrap();
    let args = [
        "server",
        "--data-dir",
        d,
        "--namesrv-listen",
        &ns,
        "--broker-listen",
        &broker,
    ];
    let server = Proc::start(&args, ENV);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    rt.block_on(async {
        let c = collecting_consumer(&ns, seen.clone()).await;
        let got = wait_bodies(&seen, 3).await;
        assert_eq!(
            got,
            vec!["commit-before", "scheduled-at-kill", "unknown-at-kill"]
        );
        // Nothing else follows: a marker sent now is the only further delivery.
        let plain = Producer::builder("CrashPlain")
            .config(config(&ns))
            .start()
            .await
            .unwrap();
        plain.send(Message::new("CrashT", "marker")).await.unwrap();
        let got = wait_bodies(&seen, 4).await;
        assert_eq!(
            got,
            vec![
                "commit-before",
                "marker",
                "scheduled-at-kill",
                "unknown-at-kill"
            ]
        );
        c.shutdown().await;
        plain.shutdown().await;
        p.shutdown().await;
    });
    assert!(
        checks.load(Ordering::SeqCst) >= 1,
        "committed by a check-back"
    );
    let (exited, stopped) = server.terminate();
    assert!(exited && stopped);
}
