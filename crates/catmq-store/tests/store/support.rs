use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use catmq_common::{properties, NewMessage, RecordView};
use catmq_store::{
    Clock, FileStore, FlushMode, MessageStore, ReadRequest, ReadResult, RetentionConfig,
    StoreConfig,
};

/// A small-file configuration so tests cross segment and file boundaries quickly.
pub fn cfg(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.segment_size = 64 * 1024;
    c.max_message_size = 32 * 1024;
    c.cq_entries_per_file = 50;
    c.index_entries_per_file = 200;
    c.index_slots = 64;
    c.flush = FlushMode::Async {
        interval: Duration::from_millis(20),
    };
    c.checkpoint_interval = Duration::from_secs(3600);
    c.checkpoint_bytes = u64::MAX;
    c.retention = RetentionConfig {
        max_age: None,
        max_disk_ratio: None,
        check_interval: Duration::from_secs(3600),
    };
    c
}

/// A manual clock starting at a fixed time.
pub fn manual_clock(c: &mut StoreConfig) -> Arc<AtomicI64> {
    let t = Arc::new(AtomicI64::new(1_700_000_000_000));
    c.clock = Clock::manual(t.clone());
    t
}

pub fn advance(t: &AtomicI64, ms: i64) {
    t.fetch_add(ms, Ordering::AcqRel);
}

pub fn msg(
    topic: &str,
    qid: i32,
    body: &str,
    tag: Option<&str>,
    keys: &str,
    uniq: &str,
) -> NewMessage {
    let mut props = Vec::new();
    if let Some(t) = tag {
        props.push((properties::TAGS, t));
    }
    if !keys.is_empty() {
        props.push((properties::KEYS, keys));
    }
    if !uniq.is_empty() {
        props.push((properties::UNIQ_KEY, uniq));
    }
    NewMessage {
        topic: topic.to_owned(),
        queue_id: qid,
        flag: 0,
        body: Bytes::copy_from_slice(body.as_bytes()),
        properties: properties::encode(props),
        sys_flag: 0,
        born_timestamp: 1,
        born_host: "127.0.0.1:5000".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

pub fn simple(topic: &str, qid: i32, i: usize) -> NewMessage {
    msg(
        topic,
        qid,
        &format!("body-{i}"),
        Some("TagA"),
        &format!("key-{i}"),
        &format!("UNIQ{i:08}"),
    )
}

pub fn read(s: &FileStore, topic: &str, qid: i32, offset: u64, max: u32) -> ReadResult {
    s.read(&ReadRequest {
        topic,
        queue_id: qid,
        offset,
        max_messages: max,
        max_bytes: usize::MAX,
        tag_codes: None,
    })
    .unwrap()
}

/// Bodies of every readable message of a queue, from its min offset, following next offsets.
pub fn read_all(s: &FileStore, topic: &str, qid: i32) -> Vec<(u64, String)> {
    let Some(info) = s.queue_info(topic, qid) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut off = info.min_offset;
    while off < info.max_offset {
        let r = read(s, topic, qid, off, 7);
        for m in &r.messages {
            let v = RecordView::parse(m).unwrap();
            out.push((
                v.queue_offset() as u64,
                String::from_utf8(v.body().to_vec()).unwrap(),
            ));
        }
        assert!(r.next_offset > off, "read made no progress at {off}: {r:?}");
        off = r.next_offset;
    }
    out
}

pub fn body(b: &Bytes) -> String {
    String::from_utf8(RecordView::parse(b).unwrap().body().to_vec()).unwrap()
}

/// Closes a store and opens it again with the same configuration.
pub fn reopen(s: FileStore) -> FileStore {
    let c = s.config().clone();
    s.close().unwrap();
    drop(s);
    FileStore::open(c).unwrap()
}

/// Abandons a store as a crash would (no final flush or checkpoint) and opens it again.
pub fn crash_reopen(s: FileStore) -> FileStore {
    let c = s.config().clone();
    s.simulate_crash();
    drop(s);
    FileStore::open(c).unwrap()
}

/// [`cfg`] with sync flush.
pub fn sync_cfg(dir: &Path) -> StoreConfig {
    let mut c = cfg(dir);
    c.flush = FlushMode::Sync;
    c
}

/// Makes the store in `dir` start on a segment that is `/dev/full`: every write to it fails
/// with ENOSPC.
pub fn first_segment_is_dev_full(dir: &Path) {
    let log = dir.join("commitlog");
    std::fs::create_dir_all(&log).unwrap();
    std::os::unix::fs::symlink("/dev/full", log.join("00000000000000000000")).unwrap();
}
