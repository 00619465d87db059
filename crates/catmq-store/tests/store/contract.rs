//! Every operation of the store, each also checked after a close and reopen.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use catmq_common::msgid::{offset_msg_id, parse_offset_msg_id};
use catmq_common::{properties, tags, RecordView};
use catmq_store::{Boundary, FileStore, MessageStore, ReadRequest, ReadStatus, StoreError};

use crate::support::*;

#[test]
fn append_assigns_consecutive_queue_and_physical_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    let mut last_end = 0;
    for i in 0..10 {
        let r = s.append(&simple("T", (i % 2) as i32, i)).unwrap();
        let a = r.messages[0];
        assert_eq!(a.queue_offset, (i / 2) as u64);
        assert_eq!(a.physical_offset, last_end, "records are contiguous");
        last_end = r.end;
        assert_eq!(r.end, a.physical_offset + u64::from(a.size));
    }
    let check = |s: &FileStore| {
        assert_eq!(s.queue_info("T", 0).unwrap().max_offset, 5);
        assert_eq!(s.queue_info("T", 1).unwrap().max_offset, 5);
        assert_eq!(s.queues().len(), 2);
    };
    check(&s);
    let s = reopen(s);
    check(&s);
    // Offsets continue after a restart.
    let r = s.append(&simple("T", 0, 10)).unwrap();
    assert_eq!(r.messages[0].queue_offset, 5);
    assert_eq!(r.messages[0].physical_offset, last_end);
}

#[test]
fn read_returns_the_stored_records_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    let m = msg("T", 3, "hello", Some("TagA"), "k1 k2", "U1");
    let a = s.append(&m).unwrap().messages[0];
    let check = |s: &FileStore| {
        let r = read(s, "T", 3, 0, 32);
        assert_eq!(r.status, ReadStatus::Found);
        assert_eq!(r.messages.len(), 1);
        assert_eq!((r.next_offset, r.min_offset, r.max_offset), (1, 0, 1));
        let v = RecordView::parse(&r.messages[0]).unwrap();
        assert!(v.crc_ok());
        assert_eq!(v.body(), b"hello");
        assert_eq!(v.topic(), Some("T"));
        assert_eq!(v.queue_id(), 3);
        assert_eq!(v.queue_offset(), 0);
        assert_eq!(v.physical_offset(), a.physical_offset as i64);
        assert_eq!(v.properties(), Some(m.properties.as_str()));
        assert_eq!(v.store_host(), s.config().store_host);
        assert_eq!(r.messages[0].len(), a.size as usize);
    };
    check(&s);
    check(&reopen(s));
}

#[test]
fn read_statuses_follow_rocketmq() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    assert_eq!(
        read(&s, "none", 0, 0, 32).status,
        ReadStatus::NoMatchedQueue
    );
    for i in 0..3 {
        s.append(&simple("T", 0, i)).unwrap();
    }
    let check = |s: &FileStore| {
        let r = read(s, "T", 0, 3, 32);
        assert_eq!(
            (r.status, r.next_offset),
            (ReadStatus::OffsetOverflowOne, 3)
        );
        let r = read(s, "T", 0, 9, 32);
        assert_eq!(
            (r.status, r.next_offset),
            (ReadStatus::OffsetOverflowBadly, 3)
        );
        let r = read(s, "T", 0, 1, 32);
        assert_eq!(
            (r.status, r.messages.len(), r.next_offset),
            (ReadStatus::Found, 2, 3)
        );
    };
    check(&s);
    check(&reopen(s));
}

#[test]
fn read_respects_max_messages_and_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    let mut size = 0;
    for i in 0..20 {
        size = s.append(&simple("T", 0, i + 10)).unwrap().messages[0].size as usize;
    }
    let r = read(&s, "T", 0, 0, 5);
    assert_eq!((r.messages.len(), r.next_offset), (5, 5));
    let req = ReadRequest {
        topic: "T",
        queue_id: 0,
        offset: 5,
        max_messages: 32,
        max_bytes: size * 3,
        tag_codes: None,
    };
    let r = s.read(&req).unwrap();
    assert_eq!((r.messages.len(), r.next_offset), (3, 8));
    // At least one message even when it is larger than max_bytes.
    let r = s
        .read(&ReadRequest {
            max_bytes: 1,
            ..req
        })
        .unwrap();
    assert_eq!(r.messages.len(), 1);
}

#[test]
fn tag_filter_returns_only_matching_tags() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    for i in 0..30 {
        let tag = if i % 3 == 0 { "A" } else { "B" };
        s.append(&msg("T", 0, &format!("{i}"), Some(tag), "", ""))
            .unwrap();
    }
    s.append(&msg("T", 0, "untagged", None, "", "")).unwrap();
    let check = |s: &FileStore| {
        let codes = [tags::tag_code(Some("A"))];
        let req = ReadRequest {
            topic: "T",
            queue_id: 0,
            offset: 0,
            max_messages: 100,
            max_bytes: usize::MAX,
            tag_codes: Some(&codes),
        };
        let r = s.read(&req).unwrap();
        let bodies: Vec<String> = r.messages.iter().map(body).collect();
        assert_eq!(
            bodies,
            (0..30)
                .step_by(3)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(r.next_offset, 31);
        // Only non-matching entries in range: no message, but the offset moves on.
        let codes = [tags::tag_code(Some("nope"))];
        let r = s
            .read(&ReadRequest {
                tag_codes: Some(&codes),
                ..req
            })
            .unwrap();
        assert_eq!(
            (r.status, r.next_offset),
            (ReadStatus::NoMatchedMessage, 31)
        );
    };
    check(&s);
    check(&reopen(s));
}

#[test]
fn batch_is_stored_as_consecutive_records_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    s.append(&simple("T", 0, 0)).unwrap();
    let batch: Vec<_> = (1..5).map(|i| simple("T", 0, i)).collect();
    let r = s.append_batch(&batch).unwrap();
    assert_eq!(
        r.messages
            .iter()
            .map(|a| a.queue_offset)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    for w in r.messages.windows(2) {
        assert_eq!(
            w[1].physical_offset,
            w[0].physical_offset + u64::from(w[0].size)
        );
    }
    // A batch with one invalid message stores nothing.
    let mut bad = vec![simple("T", 0, 5), simple("T", 0, 6)];
    bad[1].properties = "p".repeat(40_000);
    assert!(matches!(
        s.append_batch(&bad),
        Err(StoreError::InvalidMessage(_))
    ));
    bad[1] = simple("T", 0, 6);
    bad[1].body = bytes::Bytes::from(vec![0u8; 5 << 20]);
    assert!(matches!(
        s.append_batch(&bad),
        Err(StoreError::MessageTooLarge { .. })
    ));
    assert!(matches!(s.append_batch(&[]), Err(StoreError::EmptyBatch)));
    // A topic whose directory name would pass the file system's limit: 100 `%` escape to 300
    // bytes. The error is about the message, and says so without a path.
    bad[1] = simple(&"%".repeat(100), 0, 6);
    let e = s.append_batch(&bad).unwrap_err();
    assert!(
        matches!(e, StoreError::TopicNameTooLong { escaped: 300, .. }),
        "{e}"
    );
    assert!(e.is_message_error() && !e.to_string().contains('/'), "{e}");
    let long = "t".repeat(255);
    s.append_batch(&[simple(&long, 0, 1)]).unwrap();
    assert_eq!(s.queue_info(&long, 0).unwrap().max_offset, 1);
    assert_eq!(s.queue_info("T", 0).unwrap().max_offset, 5);
    // A batch may span queues.
    let mixed = vec![simple("T", 1, 7), simple("T", 0, 8), simple("T", 1, 9)];
    let r = s.append_batch(&mixed).unwrap();
    assert_eq!(
        r.messages
            .iter()
            .map(|a| a.queue_offset)
            .collect::<Vec<_>>(),
        vec![0, 5, 1]
    );
    let s = reopen(s);
    let bodies: Vec<String> = read_all(&s, "T", 0).into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        bodies,
        ["body-0", "body-1", "body-2", "body-3", "body-4", "body-8"]
    );
}

#[test]
fn segments_roll_and_reads_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    let big = "x".repeat(3000);
    for i in 0..100 {
        s.append(&msg("T", 0, &format!("{i}{big}"), None, "", ""))
            .unwrap();
    }
    assert!(s.stats().segments >= 4, "{:?}", s.stats());
    let check = |s: &FileStore| {
        let all = read_all(s, "T", 0);
        assert_eq!(all.len(), 100);
        for (i, (off, b)) in all.iter().enumerate() {
            assert_eq!(*off, i as u64);
            assert!(b.starts_with(&i.to_string()));
        }
    };
    check(&s);
    check(&reopen(s));
}

#[test]
fn offset_for_timestamp_uses_store_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    let clock = manual_clock(&mut c);
    let t0 = clock.load(Ordering::Acquire);
    let s = FileStore::open(c).unwrap();
    // Offsets 0,1 at t0; 2,3 at t0+10; 4 at t0+20.
    for (i, dt) in [0, 0, 10, 10, 20].iter().enumerate() {
        clock.store(t0 + dt, Ordering::Release);
        s.append(&simple("T", 0, i)).unwrap();
    }
    let check = |s: &FileStore| {
        let at = |ts, b| s.offset_for_timestamp("T", 0, ts, b).unwrap();
        assert_eq!(at(t0 + 10, Boundary::Lower), 2);
        assert_eq!(at(t0 + 10, Boundary::Upper), 3);
        assert_eq!(at(t0 + 5, Boundary::Lower), 2);
        assert_eq!(at(t0 + 5, Boundary::Upper), 1);
        assert_eq!(at(t0 - 100, Boundary::Lower), 0);
        assert_eq!(at(t0 + 999, Boundary::Lower), 5);
        assert_eq!(at(t0 + 999, Boundary::Upper), 4);
        assert_eq!(s.queue_info("T", 0).unwrap().last_store_timestamp, t0 + 20);
    };
    check(&s);
    check(&reopen(s));
}

#[test]
fn query_by_key_matches_keys_and_unique_ids_within_range_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    let clock = manual_clock(&mut c);
    let t0 = clock.load(Ordering::Acquire);
    let s = FileStore::open(c).unwrap();
    // 600 messages: index files roll every 200 entries (each message has 2 keys + a unique id).
    for i in 0..600 {
        advance(&clock, 1);
        let keys = format!("order-{} common", i % 7);
        s.append(&msg(
            "T",
            i % 4,
            &format!("{i}"),
            None,
            &keys,
            &format!("U{i}"),
        ))
        .unwrap();
    }
    s.append(&msg("Other", 0, "other", None, "order-1", ""))
        .unwrap();
    let check = |s: &FileStore| {
        let q = |key: &str, b: i64, e: i64, n| -> Vec<String> {
            s.query_by_key("T", key, b, e, n)
                .unwrap()
                .iter()
                .map(body)
                .collect()
        };
        let mut got: Vec<usize> = q("order-3", 0, i64::MAX, 1000)
            .iter()
            .map(|b| b.parse().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..600).filter(|i| i % 7 == 3).collect::<Vec<_>>());
        assert_eq!(q("U417", 0, i64::MAX, 10), vec!["417"]);
        assert_eq!(q("common", 0, i64::MAX, 5).len(), 5);
        // Newest first.
        assert_eq!(q("common", 0, i64::MAX, 2), vec!["599", "598"]);
        // Time range: messages i stored at t0 + i + 1.
        let mut got: Vec<usize> = q("common", t0 + 101, t0 + 110, 100)
            .iter()
            .map(|b| b.parse().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (100..110).collect::<Vec<_>>());
        assert!(q("missing", 0, i64::MAX, 10).is_empty());
        // Another topic's message with the same key is not returned.
        assert!(!q("order-1", 0, i64::MAX, 1000).contains(&"other".to_owned()));
    };
    check(&s);
    check(&reopen(s));
}

#[test]
fn read_at_finds_a_message_by_its_offset_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    s.append(&simple("T", 0, 0)).unwrap();
    let a = s.append(&simple("T", 0, 1)).unwrap().messages[0];
    let id = offset_msg_id(s.config().store_host, a.physical_offset as i64);
    let check = |s: &FileStore| {
        let (_, phys) = parse_offset_msg_id(&id).unwrap();
        let rec = s.read_at(phys as u64).unwrap().unwrap();
        assert_eq!(body(&rec), "body-1");
        // Not a record boundary, or past the end: nothing.
        assert!(s.read_at(phys as u64 + 1).unwrap().is_none());
        assert!(s.read_at(1 << 40).unwrap().is_none());
    };
    check(&s);
    check(&reopen(s));
}

#[test]
fn arrival_listener_sees_each_new_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    s.set_arrival_listener(Arc::new(move |t: &str, q, max| {
        sink.lock().unwrap().push((t.to_owned(), q, max))
    }));
    s.append(&simple("T", 0, 0)).unwrap();
    s.append_batch(&[simple("T", 1, 1), simple("T", 1, 2)])
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("T".to_owned(), 0, 1), ("T".to_owned(), 1, 2)]
    );
}

#[test]
fn delete_topic_forgets_its_queues() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    s.append(&simple("Gone", 0, 0)).unwrap();
    s.append(&simple("Kept", 0, 0)).unwrap();
    assert!(s.delete_topic("Gone").unwrap());
    assert!(!s.delete_topic("Gone").unwrap());
    assert_eq!(read(&s, "Gone", 0, 0, 1).status, ReadStatus::NoMatchedQueue);
    let s = reopen(s);
    assert!(s.queue_info("Gone", 0).is_none());
    assert_eq!(read_all(&s, "Kept", 0).len(), 1);
    // A re-created topic starts again at offset 0.
    assert_eq!(
        s.append(&simple("Gone", 0, 1)).unwrap().messages[0].queue_offset,
        0
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    let err = FileStore::open(cfg(dir.path())).unwrap_err();
    assert!(err.to_string().contains("another process"), "{err}");
    drop(s);
    FileStore::open(cfg(dir.path())).unwrap();
}

#[test]
fn invalid_configuration_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segment_size = 100;
    assert!(matches!(FileStore::open(c), Err(StoreError::Config(_))));
}

#[test]
fn queue_ids_outside_the_wire_range_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    assert!(matches!(
        s.append(&simple("T", -1, 0)),
        Err(StoreError::BadQueueId { .. })
    ));
    assert!(s.queues().is_empty());
}

#[test]
fn topics_with_unusual_names_round_trip_through_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    for t in ["%RETRY%group-1", "../escape", "ünï/code"] {
        s.append(&simple(t, 0, 0)).unwrap();
    }
    let s = reopen(s);
    let mut topics: Vec<String> = s.queues().into_iter().map(|q| q.topic).collect();
    topics.sort();
    assert_eq!(topics, ["%RETRY%group-1", "../escape", "ünï/code"]);
    assert!(!dir.path().parent().unwrap().join("escape").exists());
}

#[test]
fn properties_survive_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    let mut m = simple("T", 0, 0);
    m.properties = properties::encode([("a", "1"), ("DELAY", "3"), ("x", "ü")]);
    s.append(&m).unwrap();
    let r = read(&s, "T", 0, 0, 1);
    let v = RecordView::parse(&r.messages[0]).unwrap();
    assert_eq!(properties::get(v.properties().unwrap(), "x"), Some("ü"));
    assert_eq!(properties::get(v.properties().unwrap(), "DELAY"), Some("3"));
}

#[test]
fn a_reader_following_next_offset_during_appends_sees_each_message_once() {
    const N: u64 = 30_000;
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(FileStore::open(cfg(dir.path())).unwrap());
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..N as usize {
                s.append(&simple("T", 0, i)).unwrap();
            }
        })
    };
    let mut next = 0u64;
    while next < N {
        let r = read(&s, "T", 0, next, 32);
        let mut expect = next;
        for m in &r.messages {
            let v = RecordView::parse(m).unwrap();
            assert_eq!(v.queue_offset(), expect as i64, "pulled from {next}");
            expect += 1;
        }
        assert!(
            r.next_offset >= expect,
            "next offset {} would read again what offsets {next}..{expect} returned",
            r.next_offset
        );
        next = r.next_offset;
    }
    writer.join().unwrap();
}
