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

/// Appends `n` records of one size (so a recycled file's old records line up with new ones).
fn same_size(s: &FileStore, label: &str, from: usize, n: usize) -> Vec<(i32, String)> {
    let pad = "p".repeat(2000);
    (from..from + n)
        .map(|i| {
            let (q, b) = ((i % 2) as i32, format!("{label}{i:04}:{pad}"));
            s.append(&msg("T", q, &b, None, &format!("k{i:04}"), ""))
                .unwrap();
            (q, b)
        })
        .collect()
}

#[test]
fn with_sync_flush_a_deleted_segment_is_reused_and_its_old_records_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = sync_cfg(dir.path());
    c.retention.max_age = Some(Duration::ZERO);
    let spare = dir.path().join("commitlog/spare");
    let s = FileStore::open(c).unwrap();
    same_size(&s, "old", 0, 100);
    assert!(s.run_retention().unwrap().segments_removed >= 2);
    assert!(spare.exists(), "a deleted segment is kept as the spare");
    let kept: Vec<(i32, String)> = (0..2)
        .flat_map(|q| read_all(&s, "T", q).into_iter().map(move |m| (q, m.1)))
        .collect();
    // Fill the active segment and go on into the next one, made from the spare: it still holds
    // old records after the new ones, at the same offsets in the file.
    let new = same_size(&s, "new", 100, 40);
    assert!(!spare.exists(), "the spare became the new segment");
    let end = s.stats().log_end;
    let expect = |q: i32| -> Vec<String> {
        kept.iter()
            .chain(&new)
            .filter(|m| m.0 == q)
            .map(|m| m.1.clone())
            .collect()
    };
    let bodies = |s: &FileStore, q: i32| -> Vec<String> {
        read_all(s, "T", q).into_iter().map(|m| m.1).collect()
    };
    for q in 0..2 {
        assert_eq!(bodies(&s, q), expect(q));
    }
    // After a crash recovery finds the end of the new records, not the old ones behind them,
    // and the next append continues from there.
    let s = crash_reopen(s);
    assert_eq!(s.stats().log_end, end, "the log ends after the new records");
    for q in 0..2 {
        assert_eq!(bodies(&s, q), expect(q), "queue {q} after the crash");
        assert_eq!(s.queue_info("T", q).unwrap().max_offset, 70);
    }
    let more = same_size(&s, "more", 140, 2);
    let s = reopen(s);
    for q in 0..2 {
        let mut e = expect(q);
        e.extend(more.iter().filter(|m| m.0 == q).map(|m| m.1.clone()));
        assert_eq!(bodies(&s, q), e, "queue {q} after a clean restart");
    }
}
