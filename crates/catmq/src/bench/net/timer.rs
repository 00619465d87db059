//! `catmq bench timer`: schedule N messages spread over the next S seconds while a background
//! producer sends normal traffic at a fixed rate; report the timer's ingest rate and delivery
//! lateness (received − due, on this host's clock, which the broker shares on one machine).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use catmq_client::{
    Admin, ConsumeFrom, ConsumeResult, ConsumerOptions, Message, MessageExt, Producer, PushConsumer,
};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::bench::report::print_json;
use crate::tools::{now_ms, runtime, ConnArgs};

/// `catmq bench timer` flags.
#[derive(Debug, Clone, Args)]
pub struct TimerBenchArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic of the scheduled messages.
    #[arg(long, default_value = "BenchTimer")]
    pub topic: String,
    /// Scheduled messages.
    #[arg(long, default_value_t = 200_000)]
    pub scheduled: u64,
    /// Their due times are spread evenly over this many seconds ...
    #[arg(long, default_value_t = 60)]
    pub spread_secs: u64,
    /// ... starting this many seconds after the run starts.
    #[arg(long, default_value_t = 15)]
    pub lead_secs: u64,
    /// Normal traffic to `--background-topic` meanwhile, messages per second (0: none).
    #[arg(long, default_value_t = 20_000)]
    pub background_rate: u64,
    #[arg(long, default_value = "BenchBackground")]
    pub background_topic: String,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Concurrent senders of the scheduled messages.
    #[arg(long, default_value_t = 32)]
    pub senders: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What the run measured.
#[derive(Debug, Serialize)]
struct TimerSummary {
    scheduled: u64,
    spread_secs: u64,
    size: usize,
    ingest_secs: f64,
    ingest_msgs_per_sec: f64,
    delivered: u64,
    lateness_p50_ms: u64,
    lateness_p99_ms: u64,
    lateness_max_ms: u64,
    early: u64,
    duplicates: u64,
    background_target_per_sec: u64,
    background_sent: u64,
    background_msgs_per_sec: f64,
    broker_lateness_p99_ms: u64,
}

/// Sends `n` messages at `rate` per second with 8 paced senders until `stop` is set.
async fn background(p: Producer, topic: String, rate: u64, size: usize, sent: Arc<AtomicU64>) {
    let senders = 8u64;
    let gap = Duration::from_secs_f64(senders as f64 / rate.max(1) as f64);
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (p, topic, sent) = (p.clone(), topic.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let body = vec![b'b'; size];
            let mut next = tokio::time::Instant::now();
            loop {
                next += gap;
                tokio::time::sleep_until(next).await;
                if p.send(Message::new(topic.clone(), body.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Sends the scheduled messages; returns the seconds it took.
async fn schedule(p: &Producer, args: &TimerBenchArgs, base: i64) -> Result<f64> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.senders.max(1) {
        let (p, next, args) = (p.clone(), next.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let body = vec![b't'; args.size];
            let span = args.spread_secs as f64 * 1000.0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.scheduled {
                    return Ok::<_, anyhow::Error>(());
                }
                let due = base + (span * i as f64 / args.scheduled as f64) as i64;
                let m = Message::new(args.topic.clone(), body.clone()).with_deliver_at(due);
                p.send(m).await.context("sending a scheduled message")?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn consumer(
    args: &TimerBenchArgs,
    hist: Arc<Mutex<Histogram<u64>>>,
    got: Arc<AtomicU64>,
    early: Arc<AtomicU64>,
    dups: Arc<AtomicU64>,
) -> Result<PushConsumer> {
    let ids: Mutex<HashMap<String, (i32, i64)>> = Mutex::default();
    let listener = move |msgs: Vec<MessageExt>, _ctx| {
        let now = now_ms();
        for m in &msgs {
            let Some(due) = m
                .property("TIMER_OUT_MS")
                .and_then(|d| d.parse::<i64>().ok())
            else {
                continue;
            };
            let at = (m.queue.queue_id, m.queue_offset);
            let first = ids
                .lock()
                .ok()
                .and_then(|mut s| s.insert(m.msg_id.clone(), at));
            if let Some(first) = first {
                tracing::warn!(msg_id = %m.msg_id, ?first, again = ?at, reconsume = m.reconsume_times, "scheduled message received twice");
                dups.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            got.fetch_add(1, Ordering::Relaxed);
            let late = now - due;
            if late < 0 {
                early.fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(mut h) = hist.lock() {
                h.saturating_record(u64::try_from(late).unwrap_or(0));
            }
        }
        std::future::ready(ConsumeResult::Success)
    };
    Ok(
        PushConsumer::builder(format!("CATMQ_BENCH_TIMER_{}", now_ms()))
            .config(args.conn.config())
            .options(ConsumerOptions {
                consume_from: ConsumeFrom::Last,
                consume_tasks: 4,
                consume_batch_size: 32,
                ..ConsumerOptions::default()
            })
            .subscribe(&args.topic, "*")
            .concurrent(listener)
            .start()
            .await?,
    )
}

/// Runs `catmq bench timer`.
pub fn run_timer(args: TimerBenchArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)?));
        let (got, early) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let p = Producer::builder("CATMQ_BENCH_TIMER")
            .config(args.conn.config())
            .start()
            .await?;
        // Creates the topic (first send) before the consumer subscribes.
        p.send(Message::new(args.topic.clone(), "warm-up")).await?;
        let dups = Arc::new(AtomicU64::new(0));
        let c = consumer(&args, hist.clone(), got.clone(), early.clone(), dups.clone()).await?;
        let bg_sent = Arc::new(AtomicU64::new(0));
        let bg_started = Instant::now();
        let bg = (args.background_rate > 0).then(|| {
            let t = args.background_topic.clone();
            tokio::spawn(background(p.clone(), t, args.background_rate, args.size, bg_sent.clone()))
        });
        let base = now_ms() + i64::try_from(args.lead_secs * 1000)?;
        let ingest = schedule(&p, &args, base).await?;
        let deadline = Instant::now() + Duration::from_secs(args.lead_secs + args.spread_secs + 120);
        while got.load(Ordering::Relaxed) < args.scheduled {
            if Instant::now() > deadline {
                bail!("only {} of {} scheduled messages arrived", got.load(Ordering::Relaxed), args.scheduled);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let bg_secs = bg_started.elapsed().as_secs_f64();
        if let Some(bg) = bg {
            bg.abort();
        }
        c.shutdown().await;
        p.shutdown().await;
        let admin = Admin::connect(args.conn.config()).await?;
        let broker_p99 = admin.timer_stats().await?.iter().map(|s| s.lateness.p99_ms).max().unwrap_or(0);
        admin.close();
        let h = hist.lock().map_err(|_| anyhow::anyhow!("histogram lock"))?;
        let sent = bg_sent.load(Ordering::Relaxed);
        let s = TimerSummary {
            scheduled: args.scheduled,
            spread_secs: args.spread_secs,
            size: args.size,
            ingest_secs: ingest,
            ingest_msgs_per_sec: args.scheduled as f64 / ingest.max(1e-9),
            delivered: h.len(),
            lateness_p50_ms: h.value_at_quantile(0.5),
            lateness_p99_ms: h.value_at_quantile(0.99),
            lateness_max_ms: h.max(),
            early: early.load(Ordering::Relaxed),
            duplicates: dups.load(Ordering::Relaxed),
            background_target_per_sec: args.background_rate,
            background_sent: sent,
            background_msgs_per_sec: sent as f64 / bg_secs.max(1e-9),
            broker_lateness_p99_ms: broker_p99,
        };
        if args.json {
            print_json(&s)?;
        } else {
            println!(
                "timer: {} scheduled over {} s ({} B) ingested in {:.2} s ({:.0} msgs/s); delivered {}: lateness p50 {} ms, p99 {} ms, max {} ms, early {}, duplicates {}; background {:.0} msgs/s (target {}); broker-side p99 {} ms",
                s.scheduled, s.spread_secs, s.size, s.ingest_secs, s.ingest_msgs_per_sec, s.delivered,
                s.lateness_p50_ms, s.lateness_p99_ms, s.lateness_max_ms, s.early,
                s.duplicates,
                s.background_msgs_per_sec, s.background_target_per_sec, s.broker_lateness_p99_ms
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
