//! Crash test of the store: `catmq bench store --flush sync|async --print-acks` is killed with
//! SIGKILL after a random number of acknowledgements, and every acknowledged message must then
//! be readable at its queue offset with its exact bytes, after recovery, round after round on the
//! same directory. A process crash loses nothing acknowledged in async mode either: an append is
//! acknowledged once its bytes are in the page cache (written, or copied into the segment's
//! shared mapping), which outlives the process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use catmq_common::{properties, RecordView};
use catmq_store::{
    FileStore, FlushMode, MessageStore, ReadRequest, ReadStatus, RetentionConfig, StoreConfig,
};
use rand::Rng;

const ROUNDS: usize = 8;
const BODY_SIZE: usize = 200;
const SEGMENT_SIZE: u64 = 1 << 20;

/// How the benchmark runs: its flush mode, and whether it keeps deleting every sealed segment
/// (`--recycle`), so that with sync flush each new segment is a deleted one's file.
#[derive(Debug, Clone, Copy)]
struct Mode {
    flush: &'static str,
    recycle: bool,
}

/// One acknowledged message.
#[derive(Debug, Clone)]
struct Ack {
    topic: String,
    queue_id: i32,
    offset: u64,
    key: String,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut it = line.strip_prefix("ACK ")?.split(' ');
    let ack = Ack {
        topic: it.next()?.to_owned(),
        queue_id: it.next()?.parse().ok()?,
        offset: it.next()?.parse().ok()?,
        key: it.next()?.to_owned(),
    };
    it.next().is_none().then_some(ack)
}

/// The body the benchmark writes for a uniq key: the key's bytes repeated to the body size.
fn expected_body(key: &str) -> Vec<u8> {
    key.bytes().cycle().take(BODY_SIZE).collect()
}

/// Runs the benchmark until `target` acks were received, kills it, and returns every ack it
/// printed (the ones read after the kill included).
fn run_and_kill(dir: &Path, mode: Mode, batch: u32, target: usize, stderr_log: &Path) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catmq"))
        .args(["bench", "store", "--dir"])
        .arg(dir)
        .args([
            "--flush",
            mode.flush,
            "--appenders",
            "4",
            "--batch",
            &batch.to_string(),
            "--size",
        ])
        .args([
            &BODY_SIZE.to_string(),
            "--count",
            "100000000",
            "--duration",
            "60",
        ])
        .args(["--segment-size", &SEGMENT_SIZE.to_string(), "--print-acks"])
        .args(mode.recycle.then_some("--recycle"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(stderr_log).unwrap())
        .spawn()
        .expect("start catmq");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("ACK ") {
                let ack = parse_ack(&line).unwrap_or_else(|| panic!("malformed ack line {line:?}"));
                if tx.send(ack).is_err() {
                    break;
                }
            }
        }
    });
    let mut acks = Vec::with_capacity(target + 64);
    while acks.len() < target {
        match rx.recv() {
            Ok(a) => acks.push(a),
            Err(_) => {
                let status = child.wait().unwrap();
                let log = std::fs::read_to_string(stderr_log).unwrap_or_default();
                panic!(
                    "catmq ended ({status}) after {} of {target} acks; stderr:\n{log}",
                    acks.len()
                );
            }
        }
    }
    child.kill().expect("SIGKILL catmq");
    child.wait().unwrap();
    reader.join().unwrap();
    acks.extend(rx.try_iter());
    acks
}

fn open_store(dir: &Path, flush: FlushMode) -> FileStore {
    let mut cfg = StoreConfig::new(dir);
    cfg.segment_size = SEGMENT_SIZE;
    cfg.max_message_size = SEGMENT_SIZE as usize;
    cfg.flush = flush;
    cfg.retention = RetentionConfig {
        max_age: None,
        max_disk_ratio: None,
        check_interval: Duration::from_secs(3600),
    };
    FileStore::open(cfg).expect("open the store after the crash")
}

fn read_one(store: &FileStore, topic: &str, queue_id: i32, offset: u64) -> catmq_store::ReadResult {
    let req = ReadRequest {
        topic,
        queue_id,
        offset,
        max_messages: 1,
        max_bytes: 1 << 20,
        tag_codes: None,
    };
    store.read(&req).unwrap()
}

/// Every acknowledged message is at its offset with its uniq key and body, unless retention
/// deleted it (its offset is below its queue's min offset). Returns how many were checked.
fn check_acks(store: &FileStore, acks: &[Ack]) -> usize {
    let mins: HashMap<(String, i32), u64> = store
        .queues()
        .into_iter()
        .map(|q| ((q.topic, q.queue_id), q.min_offset))
        .collect();
    let mut checked = 0;
    for a in acks {
        if a.offset
            < mins
                .get(&(a.topic.clone(), a.queue_id))
                .copied()
                .unwrap_or(0)
        {
            continue;
        }
        checked += 1;
        let r = read_one(store, &a.topic, a.queue_id, a.offset);
        assert_eq!(
            r.status,
            ReadStatus::Found,
            "acknowledged {a:?} not found: {r:?}"
        );
        assert_eq!(r.messages.len(), 1, "{a:?}");
        let v = RecordView::parse(&r.messages[0]).unwrap();
        assert!(v.crc_ok(), "{a:?}");
        assert_eq!(v.topic(), Some(a.topic.as_str()), "{a:?}");
        assert_eq!(v.queue_id(), a.queue_id, "{a:?}");
        assert_eq!(v.queue_offset(), a.offset as i64, "{a:?}");
        let props = v.properties().unwrap();
        assert_eq!(
            properties::get(props, properties::UNIQ_KEY),
            Some(a.key.as_str()),
            "{a:?}"
        );
        assert_eq!(
            v.body(),
            &expected_body(&a.key)[..],
            "{a:?}: body bytes differ"
        );
    }
    checked
}

/// Every queue reads from min to max with contiguous offsets; returns the messages read.
fn check_queues_contiguous(store: &FileStore) -> u64 {
    let mut total = 0;
    for q in store.queues() {
        let mut offset = q.min_offset;
        while offset < q.max_offset {
            let req = ReadRequest {
                topic: &q.topic,
                queue_id: q.queue_id,
                offset,
                max_messages: 32,
                max_bytes: 1 << 20,
                tag_codes: None,
            };
            let r = store.read(&req).unwrap();
            assert_eq!(
                r.status,
                ReadStatus::Found,
                "{} {} at {offset}: {r:?}",
                q.topic,
                q.queue_id
            );
            for m in &r.messages {
                let v = RecordView::parse(m).unwrap();
                assert!(v.crc_ok());
                assert_eq!(
                    v.queue_offset(),
                    offset as i64,
                    "gap in {} {}",
                    q.topic,
                    q.queue_id
                );
                offset += 1;
                total += 1;
            }
            assert_eq!(r.next_offset, offset, "{} {}", q.topic, q.queue_id);
        }
    }
    total
}

/// Whether the active segment is a recycled file: bytes that are not zeros after the log's end.
fn recycled_tail(dir: &Path, log_end: u64) -> bool {
    let base = log_end - log_end % SEGMENT_SIZE;
    let path = dir.join("commitlog").join(format!("{base:020}"));
    let Ok(f) = File::open(path) else {
        return false;
    };
    let mut b = [0u8; 64];
    let n = f.read_at(&mut b, log_end - base).unwrap_or(0);
    b[..n].iter().any(|x| *x != 0)
}

/// Runs `ROUNDS` kill-and-recover rounds on one directory in `mode`; every other reopen uses the
/// other flush mode, so each recovers what the other left.
fn crash_rounds(mode: Mode, targets: std::ops::RangeInclusive<usize>) {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let stderr_log = tmp.path().join("catmq.stderr");
    let mut rng = rand::thread_rng();
    let mut all: Vec<Ack> = Vec::new();
    let mut recycled_rounds = 0;
    for round in 0..ROUNDS {
        let batch = if round % 2 == 0 { 1 } else { 3 };
        let target = rng.gen_range(targets.clone());
        let acks = run_and_kill(&dir, mode, batch, target, &stderr_log);
        let received = acks.len();
        all.extend(acks);

        let reopen = if round % 4 < 2 {
            FlushMode::Sync
        } else {
            FlushMode::Async {
                interval: Duration::from_millis(200),
            }
        };
        let store = open_store(&dir, reopen);
        let report = store.recovery_report().clone();
        assert!(
            report.corrupt_ranges.is_empty(),
            "round {round}: corrupt ranges after a crash: {report:?}"
        );
        assert_eq!(report.log_end, store.stats().log_end, "round {round}");
        let recycled = recycled_tail(&dir, report.log_end);
        recycled_rounds += usize::from(recycled);
        let checked = check_acks(&store, &all);
        let stored = check_queues_contiguous(&store);
        assert!(
            stored >= checked as u64,
            "round {round}: {stored} stored < {checked} acked and kept",
        );
        if !mode.recycle {
            assert_eq!(checked, all.len(), "round {round}: nothing is deleted");
        }
        store.close().unwrap();
        println!(
            "round {round}: {mode:?}, batch {batch}, killed after {target} acks, {received} acks printed, \
             {checked} of {} acks checked (the rest deleted by retention), {stored} messages stored, \
             {} records replayed, truncated at {:?}, recycled active segment: {recycled}",
            all.len(),
            report.records_replayed,
            report.truncated_at
        );
    }
    if mode.recycle {
        assert!(recycled_rounds > 0, "no round ended in a recycled segment");
    }
    println!("{ROUNDS} {mode:?} rounds in {:?}", started.elapsed());
}

#[test]
fn acknowledged_sync_appends_survive_sigkill() {
    crash_rounds(
        Mode {
            flush: "sync",
            recycle: false,
        },
        50..=3000,
    );
}

#[test]
fn acknowledged_sync_appends_survive_sigkill_in_recycled_segments() {
    // Retention deletes every sealed segment (1 MiB each) and new segments reuse their files,
    // so most kills land in a file that still holds older records after the new ones.
    crash_rounds(
        Mode {
            flush: "sync",
            recycle: true,
        },
        4000..=12_000,
    );
}

#[test]
fn acknowledged_async_appends_survive_sigkill() {
    // Async appends are fast: kill later, so segments roll (1 MiB each) and get mapped anew.
    crash_rounds(
        Mode {
            flush: "async",
            recycle: false,
        },
        1000..=60_000,
    );
}

#[test]
fn ack_lines_parse() {
    let a = parse_ack("ACK BenchTopic 3 17 00AB").unwrap();
    assert_eq!(
        (a.topic.as_str(), a.queue_id, a.offset, a.key.as_str()),
        ("BenchTopic", 3, 17, "00AB")
    );
    assert!(parse_ack("ACK BenchTopic 3 17").is_none());
    assert!(parse_ack("ACK BenchTopic 3 17 k extra").is_none());
    assert!(parse_ack("append: 3 msgs").is_none());
}
