//! End-to-end: the real `catmq` binary, driven over its sockets, stopped with SIGTERM and
//! killed with SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use catmq_protocol::headers::PULL_SUBSCRIPTION;
use catmq_protocol::ResponseCode;
use catmq_testkit::{eventually, TestClient};

mod common;

use common::{Proc, W};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_serves_then_stops_cleanly_on_sigterm_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::server(dir.path(), &[]);
    let ns = TestClient::connect(p.namesrv.as_deref().unwrap()).await;
    let tbw = eventually(W, "TBW102 route", || ns.route("TBW102")).await;
    let addr = tbw.broker_datas[0].master_addr().unwrap().to_owned();
    assert_eq!(Some(addr.as_str()), p.broker.as_deref());
    let b = TestClient::connect(&addr).await;
    for i in 0..10 {
        b.send("E2E", 0, &[], &format!("m{i}")).await;
    }
    b.commit_offset("G", "E2E", 0, 7).await;
    eventually(W, "commit", || async {
        (b.query_offset("G", "E2E", 0, None).await == Ok(7)).then_some(())
    })
    .await;
    drop(b);
    assert_eq!(p.terminate(), (true, true));

    let p = Proc::server(dir.path(), &[]);
    let b = TestClient::connect(p.broker.as_deref().unwrap()).await;
    assert_eq!(b.query_offset("G", "E2E", 0, None).await, Ok(7));
    let got = b
        .pull("G", "E2E", 0, 7, PULL_SUBSCRIPTION, Some("*"), 0)
        .await;
    assert_eq!(got.bodies(), vec!["m7", "m8", "m9"]);
    assert_eq!(p.terminate(), (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_delayed_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CATMQ_BROKER_DELAY_LEVELS", "1s 2s")];
    let p = Proc::server(dir.path(), &env);
    let b = TestClient::connect(p.broker.as_deref().unwrap()).await;
    for q in 0..4 {
        b.send("K", q, &[], "x").await;
        b.commit_offset("G", "K", q, 1).await;
    }
    b.send("K", 0, &[("DELAY", "2")], "delayed").await;
    // Offsets committed over a second before the kill are on disk.
    let committed = Instant::now();
    let file = dir.path().join("config/consumerOffset.json");
    eventually(W, "offsets on disk", || async {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        (text.matches(": 1").count() >= 4).then_some(())
    })
    .await;
    let left = Duration::from_millis(1100).saturating_sub(committed.elapsed());
    tokio::time::sleep(left).await;
    drop(b);
    p.kill();

    let p = Proc::server(dir.path(), &env);
    let b = TestClient::connect(p.broker.as_deref().unwrap()).await;
    for q in 0..4 {
        assert_eq!(
            b.query_offset("G", "K", q, Some(false)).await,
            Ok(1),
            "queue {q}"
        );
    }
    let got = eventually(W, "the delayed message", || async {
        let p = b
            .pull("G", "K", 0, 1, PULL_SUBSCRIPTION, Some("*"), 0)
            .await;
        (p.status() == ResponseCode::Success).then_some(p)
    })
    .await;
    assert_eq!(got.bodies(), vec!["delayed"]);
    p.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namesrv_and_broker_run_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let ns = Proc::start(&["namesrv", "--namesrv-listen", "127.0.0.1:0"], &[]);
    let ns_addr = ns.namesrv.clone().unwrap();
    assert!(ns.broker.is_none());
    let d = dir.path().to_str().unwrap();
    let br = Proc::start(
        &[
            "broker",
            "--data-dir",
            d,
            "--broker-listen",
            "127.0.0.1:0",
            "--namesrv",
            &ns_addr,
            "--broker-name",
            "b-solo",
        ],
        &[("CATMQ_STORE_FLUSH", "sync")],
    );
    assert!(br.namesrv.is_none());
    let c = TestClient::connect(&ns_addr).await;
    let r = eventually(W, "registration", || c.route("TBW102")).await;
    assert_eq!(r.broker_datas[0].broker_name, "b-solo");
    let b = TestClient::connect(br.broker.as_deref().unwrap()).await;
    b.send("Solo", 0, &[], "synced").await;
    assert_eq!(br.terminate(), (true, true));
    // The broker unregistered on the way out.
    eventually(W, "unregistration", || async {
        c.route("TBW102").await.is_none().then_some(())
    })
    .await;
    assert_eq!(ns.terminate(), (true, true));
}

#[test]
fn a_bad_config_is_refused_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_catmq"))
        .args([
            "server",
            "--namesrv-listen",
            "127.0.0.1:0",
            "--broker-listen",
            "127.0.0.1:0",
        ])
        .env("CATMQ_STORE_FLUSH", "sometimes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store.flush"), "{err}");
}
