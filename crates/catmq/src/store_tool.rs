//! `catmq store verify|dump`: offline tools for a store directory.
//!
//! Both open the store with [`FileStore::open`], which runs crash recovery (and may so cut off a
//! torn tail) and takes the directory lock, so they fail while a broker uses the directory.
//! Retention is off: a tool never deletes segments.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use catmq_common::{properties, RecordView};
use catmq_store::{FileStore, MessageStore, ReadRequest, ReadStatus, RetentionConfig, StoreConfig};

use crate::cli::{DumpArgs, StoreCommand, StoreLocation, VerifyArgs};

/// Segment size assumed when it cannot be inferred.
const DEFAULT_SEGMENT_SIZE: u64 = 1 << 30;
/// Messages asked for by each read.
const READ_BATCH: u64 = 32;

/// Runs a `store` subcommand.
pub fn run(cmd: StoreCommand) -> Result<ExitCode> {
    match cmd {
        StoreCommand::Verify(a) => verify(&a),
        StoreCommand::Dump(a) => dump(&a),
    }
}

/// Infers the segment size from the segment names (their base offsets): the smallest distance
/// between consecutive bases, or the base of a lone segment that does not start at 0.
fn infer_segment_size(dir: &Path) -> Result<Option<u64>> {
    let log_dir = dir.join("commitlog");
    let mut bases = Vec::new();
    for entry in
        std::fs::read_dir(&log_dir).with_context(|| format!("listing {}", log_dir.display()))?
    {
        let name = entry?.file_name();
        if let Some(base) = name
            .to_str()
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let min_gap = bases
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g > 0)
        .min();
    Ok(match (min_gap, bases.as_slice()) {
        (Some(g), _) => Some(g),
        (None, [b]) if *b > 0 => Some(*b),
        _ => None,
    })
}

/// Opens the store at `loc` for a tool.
fn open(loc: &StoreLocation) -> Result<FileStore> {
    if !loc.dir.join("commitlog").is_dir() {
        bail!(
            "{} holds no store (no commitlog directory)",
            loc.dir.display()
        );
    }
    let segment_size = match loc.segment_size {
        Some(s) => s,
        None => infer_segment_size(&loc.dir)?.unwrap_or(DEFAULT_SEGMENT_SIZE),
    };
    tracing::info!(dir = %loc.dir.display(), segment_size, "opening the store");
    let mut cfg = StoreConfig::new(&loc.dir);
    cfg.segment_size = segment_size;
    cfg.max_message_size = cfg
        .max_message_size
        .min(usize::try_from(segment_size).unwrap_or(usize::MAX));
    cfg.retention = RetentionConfig {
        max_age: None,
        max_disk_ratio: None,
        check_interval: Duration::from_secs(3600),
    };
    FileStore::open(cfg).with_context(|| format!("opening the store in {}", loc.dir.display()))
}

/// What reading one queue found.
#[derive(Debug, Default, Clone, Copy)]
struct QueueScan {
    /// Messages read.
    read: u64,
    /// Queue offsets skipped between messages read.
    gaps: u64,
    /// Failed reads, unexpected statuses, unparsable records.
    errors: u64,
    /// The offset after the last message read.
    next: u64,
}

/// Reads up to `max_count` messages of a queue from `from`, calling `each` on every record.
fn scan_queue(
    store: &FileStore,
    topic: &str,
    queue_id: i32,
    from: u64,
    max_count: u64,
    mut each: impl FnMut(&RecordView<'_>),
) -> QueueScan {
    let mut s = QueueScan {
        next: from,
        ..QueueScan::default()
    };
    let mut offset = from;
    while s.read < max_count {
        let req = ReadRequest {
            topic,
            queue_id,
            offset,
            max_messages: u32::try_from(READ_BATCH.min(max_count - s.read)).unwrap_or(1),
            max_bytes: 32 << 20,
            tag_codes: None,
        };
        let r = match store.read(&req) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(topic, queue_id, offset, error = %e, "read failed");
                s.errors += 1;
                break;
            }
        };
        match r.status {
            ReadStatus::Found | ReadStatus::NoMatchedMessage => {}
            ReadStatus::OffsetOverflowOne | ReadStatus::NoMessageInQueue => break,
            ReadStatus::OffsetTooSmall => {
                (offset, s.next) = (r.next_offset, r.next_offset);
                continue;
            }
            other => {
                tracing::error!(topic, queue_id, offset, ?other, "unexpected read status");
                s.errors += 1;
                break;
            }
        }
        for m in &r.messages {
            match RecordView::parse(m) {
                Ok(v) => {
                    let q = u64::try_from(v.queue_offset()).unwrap_or(0);
                    if q != s.next {
                        tracing::error!(
                            topic,
                            queue_id,
                            expected = s.next,
                            found = q,
                            "queue offsets not contiguous"
                        );
                        s.gaps += q.abs_diff(s.next);
                    }
                    s.next = q + 1;
                    s.read += 1;
                    each(&v);
                }
                Err(e) => {
                    tracing::error!(topic, queue_id, error = %e, "unparsable record");
                    s.errors += 1;
                }
            }
        }
        if r.next_offset <= offset {
            tracing::error!(topic, queue_id, offset, "read made no progress");
            s.errors += 1;
            break;
        }
        offset = r.next_offset;
    }
    s
}

/// `catmq store verify`.
fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let store = open(&args.store)?;
    let r = store.recovery_report();
    println!(
        "recovery: checkpoint {:?}, scanned {}..{}, {} records replayed, corrupt ranges {:?}, truncated at {:?}, took {:?}",
        r.checkpoint, r.scanned_from, r.log_end, r.records_replayed, r.corrupt_ranges, r.truncated_at, r.elapsed
    );
    let mut failures = r.corrupt_ranges.len() as u64;
    let st = store.stats();
    println!(
        "stats: log {}..{}, flushed {}, {} segment(s), {} queue(s), {} index file(s), {} corrupt record(s) skipped",
        st.log_min, st.log_end, st.flushed, st.segments, st.queues, st.index_files, st.corrupt_records_skipped
    );
    let (mut total, mut queues) = (0u64, 0u64);
    for q in store.queues() {
        let s = scan_queue(&store, &q.topic, q.queue_id, q.min_offset, u64::MAX, |_| {});
        let missing = (q.max_offset - q.min_offset).saturating_sub(s.read);
        println!(
            "queue {} {} min {} max {} read {} gaps {} missing {} errors {}",
            q.topic, q.queue_id, q.min_offset, q.max_offset, s.read, s.gaps, missing, s.errors
        );
        failures += s.errors + s.gaps + missing;
        total += s.read;
        queues += 1;
    }
    let skipped = store
        .stats()
        .corrupt_records_skipped
        .saturating_sub(st.corrupt_records_skipped);
    failures += skipped;
    store.close().context("closing the store")?;
    println!("total: {queues} queue(s), {total} message(s) read, {skipped} corrupt record(s) skipped, {failures} problem(s)");
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `catmq store dump`.
fn dump(args: &DumpArgs) -> Result<ExitCode> {
    let store = open(&args.store)?;
    let Some(info) = store.queue_info(&args.topic, args.queue) else {
        store.close().context("closing the store")?;
        bail!("no queue {} of topic {}", args.queue, args.topic);
    };
    let from = args.from.unwrap_or(info.min_offset);
    let count = args.count.unwrap_or(u64::MAX);
    let s = scan_queue(&store, &args.topic, args.queue, from, count, |v| {
        let props = v.properties().unwrap_or("");
        println!(
            "queue_offset={}\tphysical_offset={}\tstore_timestamp={}\ttags={}\tkeys={}\tuniq_key={}\tbody_len={}",
            v.queue_offset(),
            v.physical_offset(),
            v.store_timestamp(),
            properties::get(props, properties::TAGS).unwrap_or(""),
            properties::get(props, properties::KEYS).unwrap_or(""),
            properties::get(props, properties::UNIQ_KEY).unwrap_or(""),
            v.body().len()
        );
    });
    store.close().context("closing the store")?;
    tracing::info!(read = s.read, gaps = s.gaps, errors = s.errors, "dump done");
    Ok(if s.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use catmq_common::NewMessage;

    use super::*;

    fn location(dir: &Path, segment_size: Option<u64>) -> StoreLocation {
        StoreLocation {
            dir: dir.to_path_buf(),
            segment_size,
        }
    }

    #[test]
    fn segment_size_is_inferred_from_segment_names() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("commitlog");
        std::fs::create_dir(&log).unwrap();
        std::fs::write(log.join("00000000000000000000"), b"").unwrap();
        assert_eq!(infer_segment_size(dir.path()).unwrap(), None);
        std::fs::write(log.join("00000000000001048576"), b"").unwrap();
        std::fs::write(log.join("00000000000002097152"), b"").unwrap();
        assert_eq!(infer_segment_size(dir.path()).unwrap(), Some(1 << 20));
        std::fs::remove_file(log.join("00000000000000000000")).unwrap();
        std::fs::remove_file(log.join("00000000000001048576")).unwrap();
        assert_eq!(infer_segment_size(dir.path()).unwrap(), Some(2 << 20));
    }

    #[test]
    fn open_refuses_a_directory_without_a_store() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open(&location(dir.path(), None)).is_err());
    }

    #[test]
    fn scan_reads_a_queue_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path());
        cfg.segment_size = 64 << 10;
        cfg.max_message_size = 64 << 10;
        let store = FileStore::open(cfg).unwrap();
        for i in 0..100 {
            let msg = NewMessage {
                topic: "T".into(),
                queue_id: 1,
                flag: 0,
                body: vec![b'x'; 1000].into(),
                properties: properties::encode([(properties::KEYS, format!("k{i}"))]),
                sys_flag: 0,
                born_timestamp: 0,
                born_host: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                reconsume_times: 0,
                prepared_transaction_offset: 0,
            };
            store.append(&msg).unwrap();
        }
        store.close().unwrap();
        drop(store);
        let store = open(&location(dir.path(), None)).unwrap();
        assert_eq!(
            store.config().segment_size,
            64 << 10,
            "inferred from the segments"
        );
        let mut seen = Vec::new();
        let s = scan_queue(&store, "T", 1, 10, 50, |v| seen.push(v.queue_offset()));
        assert_eq!((s.read, s.gaps, s.errors, s.next), (50, 0, 0, 60));
        assert_eq!(seen, (10..60).collect::<Vec<i64>>());
        let all = scan_queue(&store, "T", 1, 0, u64::MAX, |_| {});
        assert_eq!((all.read, all.gaps, all.errors), (100, 0, 0));
        store.close().unwrap();
    }
}
