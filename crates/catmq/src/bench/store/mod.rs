//! `catmq bench store`: a storage benchmark over [`FileStore`] directly, without the network.
//!
//! Message `n` (numbered from 0 across all appenders) carries the properties `TAGS=TagA`,
//! `KEYS=key-<n>` and `UNIQ_KEY=<run prefix><n>` (32 upper-case hex digits), and its body is the
//! uniq key's bytes repeated to `--size`, so anyone holding an acknowledgement can check the
//! stored bytes. Append call `k` (messages `k*batch ..`) goes to (topic, queue) pair
//! `k mod (topics * queues)`.

mod append;
mod ratio;
mod read;
mod recovery;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use catmq_common::{properties, NewMessage};
use catmq_store::{FileStore, FlushMode, RetentionConfig, StoreConfig};
use serde::Serialize;

use super::report::Phase;
use crate::cli::{BenchMode, FlushArg, StoreBenchArgs};

pub use recovery::child_main;

/// Messages appended when neither `--count` nor `--duration` is given.
const DEFAULT_COUNT: u64 = 1_000_000;
/// Default checkpoint trigger in log bytes (the store's default).
const DEFAULT_CHECKPOINT_BYTES: u64 = 256 << 20;

/// The messages a run appends.
#[derive(Debug)]
pub struct Workload {
    /// (topic, queue id) pairs, in round-robin order.
    pub pairs: Vec<(String, i32)>,
    /// Body size.
    pub size: usize,
    /// Messages per append call.
    pub batch: u64,
    /// Random prefix making this run's uniq keys unique.
    pub prefix: u64,
}

impl Workload {
    /// The workload `args` describe, with a fresh random uniq-key prefix.
    pub fn new(args: &StoreBenchArgs) -> Result<Self> {
        let topics: Vec<String> = if args.topics == 1 {
            vec!["BenchTopic".to_owned()]
        } else {
            (0..args.topics)
                .map(|t| format!("BenchTopic-{t}"))
                .collect()
        };
        let queues = i32::try_from(args.queues).context("too many queues")?;
        let pairs = topics
            .iter()
            .flat_map(|t| (0..queues).map(move |q| (t.clone(), q)))
            .collect();
        Ok(Self {
            pairs,
            size: usize::try_from(args.size).context("--size is too large")?,
            batch: u64::from(args.batch),
            prefix: rand::random(),
        })
    }

    /// The (topic, queue id) that message `n` goes to.
    pub fn pair_for(&self, n: u64) -> &(String, i32) {
        let len = self.pairs.len().max(1) as u64;
        &self.pairs[((n / self.batch.max(1)) % len) as usize]
    }

    /// The uniq key of message `n`.
    pub fn uniq_key(&self, n: u64) -> String {
        let mut key = String::with_capacity(32);
        push_hex(&mut key, self.prefix);
        push_hex(&mut key, n);
        key
    }

    /// Message `n` and its uniq key.
    pub fn message(&self, n: u64, born_ms: i64) -> (NewMessage, String) {
        let (topic, queue_id) = self.pair_for(n);
        let uniq = self.uniq_key(n);
        let props = bench_properties(n, &uniq);
        let msg = NewMessage {
            topic: topic.clone(),
            queue_id: *queue_id,
            flag: 0,
            body: body_for(&uniq, self.size),
            properties: props,
            sys_flag: 0,
            born_timestamp: born_ms,
            born_host: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        (msg, uniq)
    }
}

/// `TAGS=TagA`, `KEYS=key-<n>`, `UNIQ_KEY=<uniq>`, built in one allocation: the benchmark
/// measures the store, so making its messages should cost little.
fn bench_properties(n: u64, uniq: &str) -> String {
    let mut p = String::with_capacity(64 + uniq.len());
    push_property(&mut p, properties::TAGS, &["TagA"]);
    push_property(&mut p, properties::KEYS, &["key-", &n.to_string()]);
    push_property(&mut p, properties::UNIQ_KEY, &[uniq]);
    p
}

/// Appends one `name=value` pair (the value given in parts) in the wire encoding.
fn push_property(out: &mut String, name: &str, value: &[&str]) {
    out.push_str(name);
    out.push(properties::NAME_VALUE_SEPARATOR);
    value.iter().for_each(|v| out.push_str(v));
    out.push(properties::PROPERTY_SEPARATOR);
}

/// Appends `v` as 16 upper-case hex digits.
fn push_hex(out: &mut String, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((v >> (shift * 4)) & 0xF) as usize]));
    }
}

/// The body of the message whose uniq key is `key`: the key's bytes repeated to `size`.
pub fn body_for(key: &str, size: usize) -> Bytes {
    let mut body = vec![0u8; size];
    let n = key.len().min(size);
    body[..n].copy_from_slice(&key.as_bytes()[..n]);
    if n > 0 {
        // Double the filled prefix until the body is full.
        let mut filled = n;
        while filled < size {
            let m = filled.min(size - filled);
            body.copy_within(..m, filled);
            filled += m;
        }
    }
    body.into()
}

/// Total messages and time limit of the append phase.
fn limits(args: &StoreBenchArgs) -> Result<(u64, Option<Duration>)> {
    let count = match (args.count, args.duration) {
        (Some(c), _) => c,
        (None, Some(_)) => u64::MAX / 2,
        (None, None) => DEFAULT_COUNT,
    };
    let duration = match args.duration {
        Some(d) if d.is_finite() && d >= 0.0 => Some(Duration::from_secs_f64(d)),
        Some(d) => bail!("--duration {d} is not a number of seconds"),
        None => None,
    };
    Ok((count, duration))
}

/// The store configuration of a run: no retention (a benchmark must not delete its data), except
/// with `--recycle`, which asks for it.
pub fn store_config(args: &StoreBenchArgs, dir: &Path, flush: FlushArg) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.segment_size = args.segment_size;
    cfg.max_message_size = cfg
        .max_message_size
        .min(usize::try_from(args.segment_size).unwrap_or(usize::MAX));
    cfg.flush = match flush {
        FlushArg::Sync => FlushMode::Sync,
        FlushArg::Async => FlushMode::Async {
            interval: Duration::from_millis(args.flush_interval_ms.max(1)),
        },
    };
    cfg.checkpoint_interval = Duration::from_secs(args.checkpoint_interval_secs);
    cfg.checkpoint_bytes =
        args.checkpoint_bytes
            .unwrap_or(if args.checkpoint_interval_secs >= 3600 {
                u64::MAX
            } else {
                DEFAULT_CHECKPOINT_BYTES
            });
    cfg.retention = RetentionConfig {
        max_age: args.recycle.then_some(Duration::ZERO),
        max_disk_ratio: None,
        check_interval: Duration::from_millis(if args.recycle { 10 } else { 3_600_000 }),
    };
    cfg
}

/// Opens a store, with the path in the error.
fn open_store(cfg: StoreConfig) -> Result<FileStore> {
    let dir = cfg.dir.clone();
    FileStore::open(cfg).with_context(|| format!("opening the store in {}", dir.display()))
}

/// The store directory: the one given, or a temporary one removed on drop.
struct BenchDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl BenchDir {
    fn new(given: Option<&Path>) -> Result<Self> {
        match given {
            Some(p) => Ok(Self {
                path: p.to_path_buf(),
                _temp: None,
            }),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("catmq-bench-")
                    .tempdir()
                    .context("creating a temporary store directory")?;
                Ok(Self {
                    path: t.path().to_path_buf(),
                    _temp: Some(t),
                })
            }
        }
    }
}

/// What recovery did (`--mode recovery`).
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryInfo {
    /// Wall time of `FileStore::open`, ms.
    pub open_ms: f64,
    /// `RecoveryReport::elapsed`, ms.
    pub report_elapsed_ms: f64,
    /// Records re-dispatched.
    pub records_replayed: u64,
    /// Log bytes scanned.
    pub bytes_scanned: u64,
    /// Where the scan started.
    pub scanned_from: u64,
    /// Where the valid log ends.
    pub log_end: u64,
    /// Position of the checkpoint found, if any.
    pub checkpoint_position: Option<u64>,
    /// Where a torn tail was cut off.
    pub truncated_at: Option<u64>,
    /// Corrupt ranges found.
    pub corrupt_ranges: usize,
}

/// The final summary of a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    mode: &'static str,
    flush: &'static str,
    dir: String,
    appenders: u32,
    batch: u32,
    size: u64,
    topics: u32,
    queues: u32,
    segment_size: u64,
    phases: Vec<Phase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery: Option<RecoveryInfo>,
    /// Failed checks (lookups that found the wrong message, missing reads, ...).
    errors: u64,
    notes: Vec<String>,
}

impl Summary {
    fn new(args: &StoreBenchArgs, dir: &Path) -> Self {
        let flush = if args.mode == BenchMode::Read {
            FlushArg::Async
        } else {
            args.flush
        };
        Self {
            mode: args.mode.name(),
            flush: flush.name(),
            dir: dir.display().to_string(),
            appenders: args.appenders,
            batch: args.batch,
            size: args.size,
            topics: args.topics,
            queues: args.queues,
            segment_size: args.segment_size,
            phases: Vec::new(),
            recovery: None,
            errors: 0,
            notes: Vec::new(),
        }
    }

    /// Records a failed check.
    fn error(&mut self, n: u64, what: String) {
        if n > 0 {
            tracing::error!("{what}");
            self.errors += n;
            self.notes.push(what);
        }
    }

    fn print(&self, json: bool) -> Result<()> {
        if json {
            return super::report::print_json(self);
        }
        println!(
            "bench store: mode {} flush {} appenders {} batch {} size {} B, {} topic(s) x {} queue(s), segment {} B",
            self.mode, self.flush, self.appenders, self.batch, self.size, self.topics, self.queues, self.segment_size
        );
        for p in &self.phases {
            p.print();
        }
        if let Some(r) = &self.recovery {
            println!(
                "recovery: open {:.1} ms (report {:.1} ms), {} records replayed, {} bytes scanned from {} to {}, \
                 checkpoint {:?}, truncated at {:?}, {} corrupt range(s)",
                r.open_ms,
                r.report_elapsed_ms,
                r.records_replayed,
                r.bytes_scanned,
                r.scanned_from,
                r.log_end,
                r.checkpoint_position,
                r.truncated_at,
                r.corrupt_ranges
            );
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        println!("errors: {}", self.errors);
        Ok(())
    }
}

/// Runs `catmq bench store`.
pub fn run(args: &StoreBenchArgs) -> Result<ExitCode> {
    let dir = BenchDir::new(args.dir.as_deref())?;
    let mut summary = Summary::new(args, &dir.path);
    match args.mode {
        BenchMode::Append => append_mode(args, &dir.path, &mut summary)?,
        BenchMode::Read => read::read_mode(args, &dir.path, &mut summary)?,
        BenchMode::KeyLookup => read::key_lookup_mode(args, &dir.path, &mut summary)?,
        BenchMode::Recovery => recovery::recovery_mode(args, &dir.path, &mut summary)?,
        BenchMode::SyncRatio => ratio::sync_ratio_mode(args, &dir.path, &mut summary)?,
    }
    summary.print(args.json)?;
    Ok(if summary.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn append_mode(args: &StoreBenchArgs, dir: &Path, summary: &mut Summary) -> Result<()> {
    let store = open_store(store_config(args, dir, args.flush))?;
    let wl = Workload::new(args)?;
    let sync = args.flush == FlushArg::Sync;
    warm_up(&store, &wl, args)?;
    let out = append::run_appends(&store, &wl, args, sync)?;
    summary.phases.push(out.phase);
    catmq_store::MessageStore::close(&store).context("closing the store")?;
    Ok(())
}

/// Appends `--warmup` messages with the run's appenders, untimed.
fn warm_up(store: &FileStore, wl: &Workload, args: &StoreBenchArgs) -> Result<()> {
    if args.warmup == 0 {
        return Ok(());
    }
    let mut warm = args.clone();
    (warm.count, warm.duration, warm.print_acks) = (Some(args.warmup), None, false);
    let w = append::run_appends(store, wl, &warm, args.flush == FlushArg::Sync)?;
    eprintln!("warm-up: {} msgs (not counted)", w.appended);
    Ok(())
}

#[cfg(test)]
mod tests {
    use catmq_common::RecordView;
    use clap::Parser;

    use super::*;
    use crate::cli::{BenchCommand, Cli, Command};

    fn args(extra: &[&str]) -> StoreBenchArgs {
        let mut argv = vec!["catmq", "bench", "store"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Bench(BenchCommand::Store(a)) => a,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bodies_repeat_the_key_and_keys_are_hex() {
        assert_eq!(&body_for("abc", 8)[..], b"abcabcab");
        assert_eq!(&body_for("abc", 2)[..], b"ab");
        assert_eq!(&body_for("", 3)[..], &[0, 0, 0]);
        let wl = Workload::new(&args(&[])).unwrap();
        let n = 0x1234_5678_9ABC_DEF0;
        assert_eq!(wl.uniq_key(n), format!("{:016X}{n:016X}", wl.prefix));
        let props = properties::encode([
            (properties::TAGS, "TagA"),
            (properties::KEYS, "key-42"),
            (properties::UNIQ_KEY, "U"),
        ]);
        assert_eq!(bench_properties(42, "U"), props);
    }

    #[test]
    fn messages_are_deterministic_from_their_uniq_key() {
        let wl = Workload::new(&args(&[
            "--size", "100", "--batch", "3", "--topics", "2", "--queues", "2",
        ]))
        .unwrap();
        let (m, key) = wl.message(7, 1);
        assert_eq!(key.len(), 32);
        assert_eq!(m.body, body_for(&key, 100));
        assert_eq!(m.body.len(), 100);
        assert_eq!(
            properties::get(&m.properties, properties::UNIQ_KEY),
            Some(key.as_str())
        );
        assert_eq!(
            properties::get(&m.properties, properties::KEYS),
            Some("key-7")
        );
        assert_eq!(
            properties::get(&m.properties, properties::TAGS),
            Some("TagA")
        );
        // Messages 6..9 form append call 2: pair 2 of [(T0,0),(T0,1),(T1,0),(T1,1)].
        assert_eq!(wl.pair_for(7), &("BenchTopic-1".to_owned(), 0));
        assert_eq!(wl.pair_for(0), wl.pair_for(2));
        let mut buf = Vec::new();
        let stamp = catmq_common::StoreStamp {
            queue_offset: 0,
            physical_offset: 0,
            store_timestamp: 2,
            store_host: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        };
        m.encode(&stamp, &mut buf).unwrap();
        assert_eq!(RecordView::parse(&buf).unwrap().body(), &m.body[..]);
    }

    #[test]
    fn limits_follow_count_and_duration() {
        assert_eq!(limits(&args(&[])).unwrap(), (DEFAULT_COUNT, None));
        assert_eq!(limits(&args(&["--count", "5"])).unwrap(), (5, None));
        let (c, d) = limits(&args(&["--duration", "2"])).unwrap();
        assert!(c > 1 << 60);
        assert_eq!(d, Some(Duration::from_secs(2)));
        assert!(limits(&args(&["--duration=-1"])).is_err());
    }

    #[test]
    fn config_fits_small_segments_and_huge_checkpoint_intervals() {
        let a = args(&[
            "--segment-size",
            "1m",
            "--checkpoint-interval-secs",
            "100000",
        ]);
        let cfg = store_config(&a, Path::new("/nonexistent"), FlushArg::Sync);
        cfg.validate().unwrap();
        assert_eq!(cfg.checkpoint_bytes, u64::MAX);
        assert_eq!(cfg.flush, FlushMode::Sync);
        assert_eq!(cfg.retention.max_disk_ratio, None);
        assert_eq!(cfg.retention.max_age, None, "a plain run deletes nothing");
        let a = args(&["--recycle", "--warmup", "10"]);
        let cfg = store_config(&a, Path::new("/nonexistent"), FlushArg::Sync);
        assert_eq!(cfg.retention.max_age, Some(Duration::ZERO));
        assert_eq!(cfg.retention.check_interval, Duration::from_millis(10));
    }
}
