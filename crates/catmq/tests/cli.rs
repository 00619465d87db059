//! End-to-end: `catmq produce`, `catmq consume` and `catmq admin` against a real `catmq server`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::Proc;

fn catmq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catmq"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run catmq")
}

fn ok(args: &[&str]) -> String {
    let out = catmq(args);
    assert!(
        out.status.success(),
        "catmq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn produce_consume_and_admin_lag_reaches_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = Proc::server(dir.path(), &[]);
    let ns = server.namesrv.clone().unwrap();
    let n = ns.as_str();
    let out = ok(&[
        "produce",
        "-n",
        n,
        "-t",
        "CliT",
        "--tags",
        "TagA",
        "--keys",
        "k1",
        "-p",
        "color=red",
        "one",
        "two",
        "three",
    ]);
    let sent: Vec<&str> = out.lines().filter(|l| l.starts_with("msgId=")).collect();
    assert_eq!(sent.len(), 3, "{out}");
    assert!(out.contains("sent 3 messages"), "{out}");
    let offset_id = sent[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("offsetMsgId="))
        .unwrap()
        .to_owned();

    let out = ok(&[
        "consume", "-n", n, "-t", "CliT", "-g", "CliG", "--from", "first", "--count", "3",
        "--format", "json",
    ]);
    let mut bodies: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["body"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    bodies.sort();
    assert_eq!(bodies, vec!["one", "three", "two"]);
    assert!(out.contains("\"color\":\"red\""), "{out}");

    let out = ok(&[
        "admin", "-n", n, "group", "progress", "-g", "CliG", "-t", "CliT",
    ]);
    assert!(out.contains("total lag: 0"), "{out}");
    // A second consume of the same group has nothing left: offsets were committed.
    ok(&["produce", "-n", n, "-t", "CliT", "four"]);
    let out = ok(&[
        "consume", "-n", n, "-t", "CliT", "-g", "CliG", "--count", "1",
    ]);
    assert!(out.contains("body=four"), "{out}");

    admin_verbs(n, &offset_id);
    timer_verbs(n);
    let (exited, stopped) = server.terminate();
    assert!(exited && stopped);
}

/// The admin verbs against a cluster where CliT holds one, two, three, four and group CliG
/// consumed them all.
fn admin_verbs(n: &str, offset_id: &str) {
    assert!(ok(&["admin", "-n", n, "topic", "list"])
        .lines()
        .any(|l| l == "CliT"));
    assert!(ok(&["admin", "-n", n, "topic", "status", "-t", "CliT"]).contains("maxOffset"));
    assert!(ok(&["admin", "-n", n, "message", "id", "--id", offset_id]).contains("body=one"));
    assert!(
        ok(&["admin", "-n", n, "message", "key", "-t", "CliT", "--key", "k1"]).contains("keys=k1")
    );
    assert!(ok(&["admin", "-n", n, "cluster"]).contains("broker=broker-a"));
    ok(&[
        "admin", "-n", n, "topic", "create", "-t", "CliNew", "--queues", "2",
    ]);
    assert!(
        ok(&["admin", "-n", n, "topic", "route", "-t", "CliNew"]).contains("\"writeQueueNums\": 2")
    );
    let out = ok(&[
        "admin",
        "-n",
        n,
        "reset-offset",
        "-g",
        "CliG",
        "-t",
        "CliT",
        "--timestamp",
        "0",
    ]);
    assert!(out.contains("-> 0"), "{out}");
    assert!(
        ok(&["admin", "-n", n, "group", "progress", "-g", "CliG", "-t", "CliT"])
            .contains("total lag: 4")
    );
}

/// A scheduled message: produced with a delay, shown, counted, cancelled.
fn timer_verbs(n: &str) {
    let out = ok(&[
        "produce", "-n", n, "-t", "CliLater", "--delay", "2h", "later",
    ]);
    assert!(out.contains("recallHandle="), "{out}");
    let id = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("msgId="))
        .unwrap()
        .to_owned();
    let show = [
        "admin", "-n", n, "timer", "show", "-t", "CliLater", "--id", &id,
    ];
    assert!(ok(&show).contains("PENDING"));
    assert!(ok(&["admin", "-n", n, "timer", "status"]).contains("CliLater: 1"));
    ok(&[
        "admin", "-n", n, "timer", "cancel", "-t", "CliLater", "--id", &id,
    ]);
    assert!(ok(&show).contains("CANCELLED"));
    assert!(!ok(&["admin", "-n", n, "timer", "status"]).contains("CliLater"));
}

#[test]
fn errors_are_one_line_and_a_non_zero_exit() {
    let out = catmq(&[
        "admin",
        "-n",
        "127.0.0.1:1",
        "topic",
        "list",
        "--timeout-ms",
        "500",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("127.0.0.1:1"),
        "{err}"
    );
    let out = catmq(&["produce", "-n", "127.0.0.1:1", "-t", "bad topic!", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid"));
}

#[test]
fn bench_store_sync_ratio_runs_alternating_rounds_on_one_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let out = ok(&[
        "bench",
        "store",
        "--dir",
        dir.to_str().unwrap(),
        "--mode",
        "sync-ratio",
        "--flush",
        "sync",
        "--tasks",
        "--appenders",
        "8",
        "--rounds",
        "2",
        "--round-secs",
        "0.2",
        "--segment-size",
        "1m",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let phases = v["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "append, one appender",
            "append, appenders",
            "append, one appender",
            "append, appenders"
        ]
    );
    assert!(phases.iter().all(|p| p["messages"].as_u64().unwrap() > 0));
    let note = v["notes"][0].as_str().unwrap();
    assert!(
        note.starts_with("sync ratio over 2 rounds: median "),
        "{note}"
    );
    assert_eq!(v["errors"], 0);
    // Every message the rounds appended is in the store, intact.
    let appended: u64 = phases.iter().map(|p| p["messages"].as_u64().unwrap()).sum();
    let verify = ok(&[
        "store",
        "verify",
        "--dir",
        dir.to_str().unwrap(),
        "--segment-size",
        "1m",
    ]);
    let want = format!("{appended} message(s) read, 0 corrupt record(s) skipped, 0 problem(s)");
    assert!(verify.contains(&want), "{verify}");
    let out = catmq(&["bench", "store", "--mode", "sync-ratio"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--flush sync"));
}
