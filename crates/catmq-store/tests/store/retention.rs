//! Retention deletes whole segments by age or disk use, never the active one, and queue min
//! offsets move with it.

use std::time::Duration;

use catmq_store::{FileStore, MessageStore, ReadStatus, RetentionConfig};

use crate::support::*;

fn fill_segments(s: &FileStore) -> Vec<catmq_store::Appended> {
    let pad = "p".repeat(2000);
    (0..100)
        .map(|i| {
            s.append(&msg(
                "T",
                i % 2,
                &format!("{i}:{pad}"),
                None,
                &format!("k{i}"),
                "",
            ))
            .unwrap()
            .messages[0]
        })
        .collect()
}

#[test]
fn expired_segments_are_deleted_and_min_offsets_move() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.retention = RetentionConfig {
        max_age: Some(Duration::ZERO),
        max_disk_ratio: None,
        check_interval: Duration::from_secs(3600),
    };
    let s = FileStore::open(c).unwrap();
    let placed = fill_segments(&s);
    let segments = s.stats().segments;
    assert!(segments >= 3);
    let report = s.run_retention().unwrap();
    assert_eq!(report.segments_removed, segments - 1);
    assert_eq!(s.stats().segments, 1, "the active segment stays");
    let log_min = report.log_min;
    for q in 0..2 {
        let expect_min = placed
            .iter()
            .filter(|a| a.queue_id == q && a.physical_offset >= log_min)
            .map(|a| a.queue_offset)
            .min()
            .unwrap();
        let info = s.queue_info("T", q).unwrap();
        assert_eq!((info.min_offset, info.max_offset), (expect_min, 50));
        let r = read(&s, "T", q, 0, 1);
        assert_eq!(
            (r.status, r.next_offset),
            (ReadStatus::OffsetTooSmall, expect_min)
        );
        assert_eq!(read_all(&s, "T", q).first().map(|m| m.0), Some(expect_min));
    }
    // Deleted messages are gone from key lookups too; kept ones are found.
    assert!(s
        .query_by_key("T", "k0", 0, i64::MAX, 5)
        .unwrap()
        .is_empty());
    assert_eq!(s.query_by_key("T", "k99", 0, i64::MAX, 5).unwrap().len(), 1);
    // Min offsets are the same after a restart.
    let mins: Vec<u64> = (0..2)
        .map(|q| s.queue_info("T", q).unwrap().min_offset)
        .collect();
    let s = reopen(s);
    assert_eq!(
        (0..2)
            .map(|q| s.queue_info("T", q).unwrap().min_offset)
            .collect::<Vec<_>>(),
        mins
    );
    assert_eq!(s.stats().log_min, log_min);
}

#[test]
fn full_disk_deletes_oldest_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    // Any disk is "fuller" than 0 %, so every segment but the active one must go.
    c.retention = RetentionConfig {
        max_age: None,
        max_disk_ratio: Some(0.0),
        check_interval: Duration::from_secs(3600),
    };
    let s = FileStore::open(c).unwrap();
    fill_segments(&s);
    s.run_retention().unwrap();
    assert_eq!(s.stats().segments, 1);
    s.append(&simple("T", 0, 1)).unwrap();
    assert_eq!(s.run_retention().unwrap().segments_removed, 0);
    assert_eq!(
        read_all(&s, "T", 0).last().map(|m| m.1.clone()),
        Some("body-1".to_owned())
    );
}

#[test]
fn young_segments_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.retention = RetentionConfig {
        max_age: Some(Duration::from_secs(3600)),
        max_disk_ratio: Some(1.0),
        check_interval: Duration::from_secs(3600),
    };
    let s = FileStore::open(c).unwrap();
    fill_segments(&s);
    assert_eq!(s.run_retention().unwrap().segments_removed, 0);
    assert_eq!(read_all(&s, "T", 0).len(), 50);
}
