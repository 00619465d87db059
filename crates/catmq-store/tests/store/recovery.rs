//! Recovery after a crash: torn tails, flipped bytes in the tail and mid-log, unfinished
//! batches, checkpoints, and rebuilding lost consume queues.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use catmq_common::record::MAGIC_PENDING_BATCH;
use catmq_store::{Appended, FileStore, MessageStore};

use crate::support::*;

/// Offset of the body within a record with IPv4 hosts.
const BODY_POS: u64 = 88;

fn segment_of(dir: &Path, seg_size: u64, phys: u64) -> (PathBuf, u64) {
    let base = phys - phys % seg_size;
    (
        dir.join("commitlog").join(format!("{base:020}")),
        phys - base,
    )
}

fn patch(dir: &Path, seg_size: u64, phys: u64, bytes: &[u8]) {
    let (path, pos) = segment_of(dir, seg_size, phys);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, pos).unwrap();
}

fn flip(dir: &Path, seg_size: u64, phys: u64) {
    let (path, pos) = segment_of(dir, seg_size, phys);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, pos).unwrap();
    f.write_all_at(&[b[0] ^ 0x5A], pos).unwrap();
}

/// A store in `dir` with `n` messages in queue 0 of T, abandoned as a crash leaves it: its
/// configuration and where the messages went.
fn crashed(dir: &Path, n: usize) -> (catmq_store::StoreConfig, Vec<Appended>) {
    let c = cfg(dir);
    let s = FileStore::open(c.clone()).unwrap();
    let placed = fill(&s, n);
    s.simulate_crash();
    drop(s);
    (c, placed)
}

/// Appends `n` messages to queue 0 of T and returns where they went.
fn fill(s: &FileStore, n: usize) -> Vec<Appended> {
    (0..n)
        .map(|i| s.append(&simple("T", 0, i)).unwrap().messages[0])
        .collect()
}

fn offsets(s: &FileStore) -> Vec<u64> {
    read_all(s, "T", 0).into_iter().map(|(o, _)| o).collect()
}

#[test]
fn torn_tail_is_cut_at_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let (c, placed) = crashed(dir.path(), 20);
    let last = placed[19];
    let (path, pos) = segment_of(dir.path(), c.segment_size, last.physical_offset);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(pos + u64::from(last.size) / 2)
        .unwrap();
    let s = FileStore::open(c).unwrap();
    assert_eq!(s.recovery_report().truncated_at, Some(last.physical_offset));
    assert!(s.recovery_report().corrupt_ranges.is_empty());
    assert_eq!(offsets(&s), (0..19).collect::<Vec<_>>());
    // The log goes on from the cut, on a record boundary.
    let a = s.append(&simple("T", 0, 99)).unwrap().messages[0];
    assert_eq!(
        (a.queue_offset, a.physical_offset),
        (19, last.physical_offset)
    );
    let s = reopen(s);
    assert_eq!(offsets(&s).len(), 20);
}

#[test]
fn flipped_byte_in_the_last_record_cuts_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let (c, placed) = crashed(dir.path(), 20);
    flip(
        dir.path(),
        c.segment_size,
        placed[19].physical_offset + BODY_POS,
    );
    let s = FileStore::open(c).unwrap();
    assert_eq!(
        s.recovery_report().truncated_at,
        Some(placed[19].physical_offset)
    );
    assert_eq!(offsets(&s), (0..19).collect::<Vec<_>>());
}

#[test]
fn corruption_mid_log_is_reported_and_never_served() {
    for (what, delta) in [("body byte", BODY_POS), ("size field", 1), ("magic", 5)] {
        let dir = tempfile::tempdir().unwrap();
        let (c, placed) = crashed(dir.path(), 20);
        flip(
            dir.path(),
            c.segment_size,
            placed[7].physical_offset + delta,
        );
        let s = FileStore::open(c).unwrap();
        let r = s.recovery_report();
        assert_eq!(
            r.corrupt_ranges,
            vec![(placed[7].physical_offset, placed[8].physical_offset)],
            "{what}"
        );
        assert_eq!(r.truncated_at, None, "{what}");
        let expect: Vec<u64> = (0..20).filter(|o| *o != 7).collect();
        assert_eq!(offsets(&s), expect, "{what}");
        assert_eq!(
            s.append(&simple("T", 0, 20)).unwrap().messages[0].queue_offset,
            20,
            "{what}"
        );
        // Still consistent after another restart.
        let s = reopen(s);
        assert_eq!(offsets(&s).len(), 20, "{what}");
    }
}

#[test]
fn corruption_before_the_checkpoint_is_caught_by_reads() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let s = FileStore::open(c.clone()).unwrap();
    let placed = fill(&s, 20);
    s.close().unwrap();
    drop(s);
    flip(
        dir.path(),
        c.segment_size,
        placed[7].physical_offset + BODY_POS,
    );
    let s = FileStore::open(c).unwrap();
    assert_eq!(
        s.recovery_report().records_replayed,
        0,
        "clean shutdown: nothing to scan"
    );
    let expect: Vec<u64> = (0..20).filter(|o| *o != 7).collect();
    assert_eq!(offsets(&s), expect);
    assert_eq!(s.stats().corrupt_records_skipped, 1);
    assert!(s.read_at(placed[7].physical_offset).unwrap().is_none());
}

#[test]
fn recovery_replays_only_what_follows_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    fill(&s, 30);
    s.checkpoint().unwrap();
    for i in 30..42 {
        s.append(&simple("T", 0, i)).unwrap();
    }
    let s = crash_reopen(s);
    assert_eq!(s.recovery_report().records_replayed, 12);
    assert_eq!(offsets(&s), (0..42).collect::<Vec<_>>());
    for i in [3, 35] {
        let found = s
            .query_by_key("T", &format!("key-{i}"), 0, i64::MAX, 10)
            .unwrap();
        assert_eq!(
            found.iter().map(body).collect::<Vec<_>>(),
            vec![format!("body-{i}")]
        );
    }
    // Recovering twice in a row gives the same store.
    let s = crash_reopen(s);
    assert_eq!(s.recovery_report().records_replayed, 0);
    assert_eq!(offsets(&s).len(), 42);
}

#[test]
fn an_unfinished_batch_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let s = FileStore::open(c.clone()).unwrap();
    fill(&s, 5);
    let batch = s
        .append_batch(&[simple("T", 0, 5), simple("T", 0, 6), simple("T", 0, 7)])
        .unwrap();
    s.simulate_crash();
    drop(s);
    // What a crash between the batch write and its commit leaves: the first record still pending.
    let first = batch.messages[0].physical_offset;
    patch(
        dir.path(),
        c.segment_size,
        first + 4,
        &MAGIC_PENDING_BATCH.to_be_bytes(),
    );
    let s = FileStore::open(c).unwrap();
    assert_eq!(s.recovery_report().truncated_at, Some(first));
    assert_eq!(offsets(&s), (0..5).collect::<Vec<_>>());
    assert!(s
        .query_by_key("T", "key-6", 0, i64::MAX, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn lost_consume_queues_and_index_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(cfg(dir.path())).unwrap();
    for i in 0..120 {
        s.append(&simple("T", (i % 2) as i32, i)).unwrap();
    }
    let s_cfg = s.config().clone();
    s.close().unwrap();
    drop(s);
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    let s = FileStore::open(s_cfg).unwrap();
    assert_eq!(s.recovery_report().records_replayed, 120);
    assert_eq!(read_all(&s, "T", 0).len(), 60);
    assert_eq!(read_all(&s, "T", 1).len(), 60);
    let found = s
        .query_by_key("T", "UNIQ00000077", 0, i64::MAX, 10)
        .unwrap();
    assert_eq!(found.iter().map(body).collect::<Vec<_>>(), vec!["body-77"]);
}

#[test]
fn a_damaged_queue_offset_field_cannot_blow_up_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (c, placed) = crashed(dir.path(), 20);
    // The queue offset (bytes 20..28) is outside the body CRC: make it absurd.
    patch(
        dir.path(),
        c.segment_size,
        placed[5].physical_offset + 20,
        &(1u64 << 40).to_be_bytes(),
    );
    let s = FileStore::open(c).unwrap();
    let expect: Vec<u64> = (0..20).filter(|o| *o != 5).collect();
    assert_eq!(offsets(&s), expect);
    assert_eq!(s.queue_info("T", 0).unwrap().max_offset, 20);
}

#[test]
fn preallocated_tail_is_the_clean_end_and_close_trims_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path());
    let s = FileStore::open(c.clone()).unwrap();
    let placed = fill(&s, 20);
    let end = s.stats().log_end;
    s.simulate_crash();
    drop(s);
    let (path, _) = segment_of(dir.path(), c.segment_size, 0);
    // A crash leaves the active segment preallocated to its full size, zeros after the data.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), c.segment_size);
    let s = FileStore::open(c.clone()).unwrap();
    let r = s.recovery_report();
    assert_eq!(
        (r.log_end, r.truncated_at, r.corrupt_ranges.len()),
        (end, None, 0)
    );
    assert_eq!(offsets(&s).len(), placed.len());
    // A clean close cuts the file to its records.
    s.close().unwrap();
    drop(s);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
    let s = FileStore::open(c).unwrap();
    assert_eq!(
        s.append(&simple("T", 0, 20)).unwrap().messages[0].physical_offset,
        end
    );
}

/// A sync store whose active segment was made from a deleted segment's file: 100 old records
/// (2,000-byte bodies) were written and deleted by retention, and new ones (1,500-byte bodies, so
/// their boundaries do not line up with the old ones) went on into the segment made from the
/// deleted file. Returns the store and the new records in that segment (at least 20).
fn recycled(dir: &Path) -> (FileStore, Vec<Appended>) {
    let mut c = sync_cfg(dir);
    c.retention.max_age = Some(std::time::Duration::ZERO);
    let s = FileStore::open(c).unwrap();
    let one = |i: usize, pad: usize| {
        let body = format!("{i:04}:{}", "p".repeat(pad));
        s.append(&msg("T", 0, &body, None, "", ""))
            .unwrap()
            .messages[0]
    };
    for i in 0..100 {
        one(i, 2000);
    }
    assert!(s.run_retention().unwrap().segments_removed >= 2);
    let spare = dir.join("commitlog/spare");
    assert!(spare.exists(), "a deleted segment is kept as the spare");
    let mut new = Vec::new();
    let mut i = 100;
    while spare.exists() || new.len() < 20 {
        let a = one(i, 1500);
        i += 1;
        new.retain(|n: &Appended| n.physical_offset / 65536 == a.physical_offset / 65536);
        new.push(a);
    }
    (s, new)
}

#[test]
fn a_recycled_segment_ends_where_its_new_records_end() {
    let dir = tempfile::tempdir().unwrap();
    let (s, new) = recycled(dir.path());
    let (first, last) = (new[0].queue_offset, new[new.len() - 1].queue_offset);
    let end = s.stats().log_end;
    let (path, _) = segment_of(dir.path(), 65536, end);
    assert!(std::fs::metadata(&path).unwrap().len() > end % 65536 + 2000);
    let s = crash_reopen(s);
    let r = s.recovery_report().clone();
    assert!(r.corrupt_ranges.is_empty(), "{r:?}");
    assert_eq!(r.log_end, end);
    let got = offsets(&s);
    assert_eq!(got.last(), Some(&last));
    assert!(got.contains(&first));
    assert_eq!(
        s.append(&simple("T", 0, 1)).unwrap().messages[0].physical_offset,
        end
    );
}

#[test]
fn a_recycled_segment_reports_corruption_and_cuts_a_torn_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let (s, new) = recycled(dir.path());
    let c = s.config().clone();
    s.simulate_crash();
    drop(s);
    let (bad, torn) = (new[3], new[new.len() - 1]);
    flip(dir.path(), c.segment_size, bad.physical_offset + BODY_POS);
    flip(dir.path(), c.segment_size, torn.physical_offset + BODY_POS);
    let s = FileStore::open(c).unwrap();
    let r = s.recovery_report().clone();
    assert_eq!(
        r.corrupt_ranges,
        vec![(bad.physical_offset, new[4].physical_offset)]
    );
    assert_eq!(r.truncated_at, Some(torn.physical_offset));
    assert_eq!(r.log_end, torn.physical_offset);
    let got = offsets(&s);
    assert!(!got.contains(&bad.queue_offset) && !got.contains(&torn.queue_offset));
    assert!(got.contains(&new[4].queue_offset));
    assert_eq!(got.last(), Some(&(torn.queue_offset - 1)));
    // Nothing of the old records is served, before or after the next append.
    let a = s.append(&simple("T", 0, 1)).unwrap().messages[0];
    assert_eq!(a.physical_offset, torn.physical_offset);
    let s = reopen(s);
    assert_eq!(offsets(&s).last(), Some(&a.queue_offset));
}
