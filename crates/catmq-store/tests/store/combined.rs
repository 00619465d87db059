//! Sync flush combines appends and writes them right before each fsync: what was appended is
//! still readable at once, long-polling readers are told only once it is readable, and a
//! failed write is never acknowledged.

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use catmq_store::{Boundary, FileStore, MessageStore, StoreError};

use crate::support::*;

fn sync_store(dir: &std::path::Path) -> FileStore {
    FileStore::open(sync_cfg(dir)).unwrap()
}

#[test]
fn what_was_appended_is_readable_before_its_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let s = sync_store(dir.path());
    for round in 0..50 {
        // Without waiting for durability: each read must find what the appends returned.
        let a = s.append(&simple("T", 0, 2 * round)).unwrap();
        let batch = [simple("T", 0, 2 * round + 1), simple("U", 1, round)];
        let b = s.append_batch(&batch).unwrap();
        let r = read(&s, "T", 0, a.messages[0].queue_offset, 2);
        assert_eq!(r.messages.len(), 2, "round {round}: {r:?}");
        assert_eq!(body(&r.messages[1]), format!("body-{}", 2 * round + 1));
        let at = s.read_at(b.messages[1].physical_offset).unwrap().unwrap();
        assert_eq!(body(&at), format!("body-{round}"));
        let by_key = s
            .query_by_key("U", &format!("key-{round}"), 0, i64::MAX, 4)
            .unwrap();
        assert_eq!(by_key.len(), 1, "round {round}");
        let info = s.queue_info("U", 1).unwrap();
        assert!(info.last_store_timestamp > 0);
        let off = s.offset_for_timestamp("U", 1, i64::MAX, Boundary::Upper);
        assert_eq!(off.unwrap(), info.max_offset - 1);
    }
    let end = s.stats().log_end;
    s.flush_waiter().wait_blocking(end).unwrap();
    assert_eq!(read_all(&s, "T", 0).len(), 100);
    let s = crash_reopen(s);
    assert_eq!(read_all(&s, "T", 0).len(), 100);
    assert_eq!(read_all(&s, "U", 1).len(), 50);
}

#[test]
fn arrivals_are_announced_once_the_records_are_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = sync_store(dir.path());
    // The listener looks in the log file itself for the newest record it is told of.
    let seg = dir.path().join("commitlog").join("00000000000000000000");
    let seen: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
    let log = Arc::clone(&seen);
    s.set_arrival_listener(Arc::new(move |_, _, max| {
        let mut head = vec![0u8; 64 << 10];
        let n = std::fs::File::open(&seg)
            .and_then(|f| f.read_at(&mut head, 0))
            .unwrap();
        let want = format!("UNIQ{:08}", max - 1);
        let found = head[..n].windows(want.len()).any(|w| w == want.as_bytes());
        log.lock().unwrap().push((max, found));
    }));
    let mut last = 0;
    for i in 0..40 {
        last = s.append(&simple("T", 0, i)).unwrap().end;
    }
    s.flush_waiter().wait_blocking(last).unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|(_, found)| *found), "{seen:?}");
    // The last announcement reaches the last append.
    assert_eq!(seen.iter().map(|(max, _)| *max).max(), Some(40));
}

#[test]
fn with_sync_flush_a_failed_write_is_never_acknowledged_and_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    first_segment_is_dev_full(dir.path());
    let s = sync_store(dir.path());
    // The append is taken (its write is combined with others'), but its wait fails.
    let first = s.append(&simple("T", 0, 0)).unwrap();
    let waited = s.flush_waiter().wait_blocking(first.end).unwrap_err();
    assert!(matches!(waited, StoreError::Poisoned { .. }), "{waited}");
    assert!(waited.to_string().contains("No space left"), "{waited}");
    let second = s.append(&simple("T", 0, 1)).unwrap_err();
    assert!(matches!(second, StoreError::Poisoned { .. }), "{second}");
    // Its record never reached the file: it is not served.
    let r = read(&s, "T", 0, 0, 1);
    assert!(r.messages.is_empty(), "{r:?}");
    assert_eq!(r.next_offset, 0);
    assert!(s
        .read_at(first.messages[0].physical_offset)
        .unwrap()
        .is_none());
}
