//! Random sequences of appends, reads, reopens, crashes, checkpoints, retention and key lookups,
//! checked against a simple in-memory model.

use std::collections::BTreeMap;
use std::time::Duration;

use catmq_common::tags;
use catmq_store::{FileStore, MessageStore, ReadRequest, ReadStatus, RetentionConfig};
use proptest::prelude::*;

use crate::support::*;

const QUEUES: i32 = 3;
const TAGS: [&str; 3] = ["A", "B", "C"];

#[derive(Debug, Clone)]
enum Op {
    Append {
        queue: i32,
        batch: usize,
        len: usize,
        tag: usize,
    },
    Read {
        queue: i32,
        at: u8,
        max: u32,
        filter: Option<usize>,
    },
    Lookup {
        pick: u16,
    },
    Reopen,
    Crash,
    Checkpoint,
    Retention,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..QUEUES, 1usize..4, 0usize..600, 0usize..3).prop_map(|(queue, batch, len, tag)| Op::Append { queue, batch, len, tag }),
        4 => (0..QUEUES, any::<u8>(), 1u32..8, proptest::option::of(0usize..3)).prop_map(|(queue, at, max, filter)| Op::Read { queue, at, max, filter }),
        2 => any::<u16>().prop_map(|pick| Op::Lookup { pick }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Retention),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    phys: u64,
    body: String,
    tag: usize,
    uniq: String,
}

#[derive(Default)]
struct Model {
    queues: BTreeMap<i32, Vec<Entry>>,
    log_min: u64,
    counter: usize,
}

impl Model {
    fn min(&self, q: i32) -> u64 {
        let e = self.queues.get(&q).map(Vec::as_slice).unwrap_or_default();
        e.iter()
            .position(|e| e.phys >= self.log_min)
            .unwrap_or(e.len()) as u64
    }
}

fn check_queue(s: &FileStore, m: &Model, q: i32) {
    let entries = m.queues.get(&q).cloned().unwrap_or_default();
    let min = m.min(q) as usize;
    let got: Vec<String> = read_all(s, "T", q).into_iter().map(|(_, b)| b).collect();
    let want: Vec<String> = entries[min..].iter().map(|e| e.body.clone()).collect();
    assert_eq!(got, want, "queue {q}");
}

fn do_read(s: &FileStore, m: &Model, queue: i32, at: u8, max: u32, filter: Option<usize>) {
    let entries = m.queues.get(&queue).cloned().unwrap_or_default();
    let len = entries.len() as u64;
    let offset = u64::from(at) % (len + 2);
    let codes = filter.map(|t| [tags::tag_code(Some(TAGS[t]))]);
    let req = ReadRequest {
        topic: "T",
        queue_id: queue,
        offset,
        max_messages: max,
        max_bytes: usize::MAX,
        tag_codes: codes.as_ref().map(|c| &c[..]),
    };
    let r = s.read(&req).unwrap();
    let min = m.min(queue);
    if entries.is_empty() {
        assert!(
            matches!(
                r.status,
                ReadStatus::NoMatchedQueue | ReadStatus::NoMessageInQueue
            ),
            "{r:?}"
        );
        return;
    }
    assert_eq!((r.min_offset, r.max_offset), (min, len));
    if offset < min {
        assert_eq!((r.status, r.next_offset), (ReadStatus::OffsetTooSmall, min));
    } else if offset >= len {
        assert!(matches!(
            r.status,
            ReadStatus::OffsetOverflowOne | ReadStatus::OffsetOverflowBadly
        ));
    } else {
        let want: Vec<String> = entries[offset as usize..]
            .iter()
            .filter(|e| filter.is_none_or(|t| t == e.tag))
            .take(max as usize)
            .map(|e| e.body.clone())
            .collect();
        let got: Vec<String> = r.messages.iter().map(body).collect();
        assert_eq!(got, want);
        assert!(r.next_offset > offset && r.next_offset <= len);
    }
}

fn append(s: &FileStore, m: &mut Model, queue: i32, batch: usize, len: usize, tag: usize) {
    let msgs: Vec<_> = (0..batch)
        .map(|_| {
            m.counter += 1;
            let b = format!("{queue}-{}-{}", m.counter, "x".repeat(len));
            msg(
                "T",
                queue,
                &b,
                Some(TAGS[tag]),
                "",
                &format!("U{}", m.counter),
            )
        })
        .collect();
    let r = s.append_batch(&msgs).unwrap();
    let q = m.queues.entry(queue).or_default();
    for (a, msg) in r.messages.iter().zip(&msgs) {
        assert_eq!(a.queue_offset, q.len() as u64);
        let uniq = catmq_common::properties::get(&msg.properties, "UNIQ_KEY")
            .unwrap()
            .to_owned();
        let body = String::from_utf8(msg.body.to_vec()).unwrap();
        q.push(Entry {
            phys: a.physical_offset,
            body,
            tag,
            uniq,
        });
    }
}

fn lookup(s: &FileStore, m: &Model, pick: u16) {
    let all: Vec<Entry> = m.queues.values().flatten().cloned().collect();
    if let Some(e) = all.get(usize::from(pick) % all.len().max(1)) {
        let found: Vec<String> = s
            .query_by_key("T", &e.uniq, 0, i64::MAX, 5)
            .unwrap()
            .iter()
            .map(body)
            .collect();
        let want = if e.phys >= m.log_min {
            vec![e.body.clone()]
        } else {
            vec![]
        };
        assert_eq!(found, want);
    }
}

fn check_all(s: &FileStore, m: &Model) {
    for q in 0..QUEUES {
        check_queue(s, m, q);
    }
}

fn step(s: FileStore, m: &mut Model, op: Op) -> FileStore {
    match op {
        Op::Append {
            queue,
            batch,
            len,
            tag,
        } => append(&s, m, queue, batch, len, tag),
        Op::Read {
            queue,
            at,
            max,
            filter,
        } => do_read(&s, m, queue, at, max, filter),
        Op::Lookup { pick } => lookup(&s, m, pick),
        Op::Reopen => {
            let s = reopen(s);
            check_all(&s, m);
            return s;
        }
        Op::Crash => {
            let s = crash_reopen(s);
            check_all(&s, m);
            return s;
        }
        Op::Checkpoint => s.checkpoint().unwrap(),
        Op::Retention => {
            m.log_min = s.run_retention().unwrap().log_min;
            check_all(&s, m);
        }
    }
    s
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segment_size = 8 * 1024;
    c.max_message_size = 4096;
    c.cq_entries_per_file = 7;
    c.index_entries_per_file = 16;
    c.index_slots = 8;
    c.retention = RetentionConfig {
        max_age: Some(Duration::ZERO),
        max_disk_ratio: None,
        check_interval: Duration::from_secs(3600),
    };
    let mut s = FileStore::open(c).unwrap();
    let mut m = Model::default();
    for op in ops {
        s = step(s, &mut m, op);
    }
    check_all(&s, &m);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
