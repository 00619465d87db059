//! `catmq bench produce|consume|e2e`: benchmarks over the wire against a running cluster,
//! with the `catmq-client` library.

mod consume;
mod produce;
mod timer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use catmq_client::Admin;
use catmq_protocol::body::{perm, TopicConfig};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::report::{latency_histogram, Phase};
use crate::tools::ConnArgs;

pub use consume::{run_consume, run_e2e};
pub use produce::run_produce;
pub use timer::{run_timer, TimerBenchArgs};

/// How producers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// `send` and wait, `--inflight` at once per producer.
    Sync,
    /// `send_async` futures, a window of `--inflight` per producer.
    Async,
    /// `send_batch` of `--batch` messages.
    Batch,
    /// `send_oneway`.
    Oneway,
}

/// Flags shared by the network benchmarks.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic (created with `--queues` queues if missing).
    #[arg(long, short, default_value = "CatmqBench")]
    pub topic: String,
    /// Queues per broker of a topic the bench creates.
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Producers (each its own client and connection).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Send mode.
    #[arg(long, value_enum, default_value_t = SendMode::Sync)]
    pub mode: SendMode,
    /// Sends in flight per producer.
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Messages per batch (`--mode batch`).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Run this long (seconds) ...
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// ... or until this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Target rate in messages per second (all producers together).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Consumer group (consume, e2e); a fresh one by default.
    #[arg(long, short)]
    pub group: Option<String>,
    /// Listener tasks of the consumer.
    #[arg(long, default_value_t = 20)]
    pub consume_tasks: usize,
    /// Messages per listener call.
    #[arg(long, default_value_t = 1)]
    pub consume_batch: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Nanoseconds since the epoch (latency across producer and consumer of one host).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Creates the topic unless it already exists.
pub async fn ensure_topic(args: &NetArgs) -> Result<()> {
    let admin = Admin::connect(args.conn.config()).await?;
    if admin.route(&args.topic).await.is_err() {
        let cfg = TopicConfig {
            topic_name: args.topic.clone(),
            read_queue_nums: args.queues,
            write_queue_nums: args.queues,
            perm: perm::READ_WRITE,
            ..TopicConfig::default()
        };
        admin
            .create_topic(None, &cfg)
            .await
            .with_context(|| format!("creating topic {}", args.topic))?;
    }
    admin.close();
    Ok(())
}

/// Counters and a latency histogram shared by the workers of one run.
pub struct Tally {
    pub ops: AtomicU64,
    pub msgs: Arc<AtomicU64>,
    pub errors: AtomicU64,
    pub hist: Mutex<Histogram<u64>>,
}

impl Tally {
    pub fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            ops: AtomicU64::new(0),
            msgs: Arc::new(AtomicU64::new(0)),
            errors: AtomicU64::new(0),
            hist: Mutex::new(latency_histogram()?),
        }))
    }

    /// Adds a worker's histogram.
    pub fn merge(&self, h: &Histogram<u64>) {
        if let Ok(mut g) = self.hist.lock() {
            let _ = g.add(h);
        }
    }

    pub fn phase(&self, name: &str, size: usize, elapsed: Duration) -> Phase {
        let msgs = self.msgs.load(Ordering::Relaxed);
        let p = Phase::new(
            name,
            self.ops.load(Ordering::Relaxed),
            msgs,
            msgs * size as u64,
            elapsed,
        );
        match self.hist.lock() {
            Ok(h) if !h.is_empty() => p.with_latency(&h),
            _ => p,
        }
    }
}

/// What a network benchmark prints.
#[derive(Debug, Serialize)]
pub struct NetSummary {
    pub bench: &'static str,
    pub topic: String,
    pub size: usize,
    pub producers: usize,
    pub mode: SendMode,
    pub inflight: usize,
    pub batch: usize,
    pub rate: Option<f64>,
    pub phases: Vec<Phase>,
    pub errors: u64,
}

impl NetSummary {
    pub fn new(bench: &'static str, args: &NetArgs) -> Self {
        Self {
            bench,
            topic: args.topic.clone(),
            size: args.size,
            producers: args.producers,
            mode: args.mode,
            inflight: args.inflight,
            batch: args.batch,
            rate: args.rate,
            phases: Vec::new(),
            errors: 0,
        }
    }

    pub fn print(&self, json: bool) -> Result<()> {
        if json {
            return super::report::print_json(self);
        }
        println!(
            "bench {}: topic {} size {} B, {} producer(s), mode {:?}, {} in flight, batch {}, rate {}",
            self.bench,
            self.topic,
            self.size,
            self.producers,
            self.mode,
            self.inflight,
            self.batch,
            self.rate.map_or_else(|| "max".to_owned(), |r| format!("{r:.0}/s"))
        );
        self.phases.iter().for_each(Phase::print);
        println!("errors: {}", self.errors);
        Ok(())
    }
}
