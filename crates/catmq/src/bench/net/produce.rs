//! `catmq bench produce`: N producers × M in flight, sync / async / batch / oneway.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use catmq_client::{Message, Producer};
use futures::stream::{FuturesUnordered, StreamExt};

use super::{ensure_topic, now_ns, NetArgs, NetSummary, SendMode, Tally};
use crate::bench::report::{latency_histogram, record_since, Progress};
use crate::tools::runtime;

/// When the run stops, and the pace of one worker.
#[derive(Clone, Copy)]
pub struct Plan {
    pub deadline: Instant,
    pub limit: u64,
    pub gap: Option<Duration>,
}

impl Plan {
    pub fn new(args: &NetArgs, workers: usize) -> Self {
        Self {
            deadline: Instant::now() + Duration::from_secs_f64(args.duration.max(0.01)),
            limit: args.count.unwrap_or(u64::MAX),
            gap: args
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(workers as f64 / r)),
        }
    }

    /// Claims `n` messages of the budget; false when the run is over.
    fn claim(&self, t: &Tally, n: u64) -> bool {
        Instant::now() < self.deadline && t.msgs.fetch_add(n, Ordering::Relaxed) + n <= self.limit
    }
}

/// A body of `size` bytes whose first 8 bytes carry the send time (ns), for e2e latency.
pub fn body(size: usize) -> Bytes {
    let mut b = vec![b'x'; size.max(8)];
    b[..8].copy_from_slice(&now_ns().to_be_bytes());
    Bytes::from(b)
}

async fn worker(p: Producer, args: Arc<NetArgs>, plan: Plan, t: Arc<Tally>) -> Result<()> {
    let mut hist = latency_histogram()?;
    let mut next = tokio::time::Instant::now();
    let per_call = if args.mode == SendMode::Batch {
        args.batch.max(1) as u64
    } else {
        1
    };
    while plan.claim(&t, per_call) {
        if let Some(gap) = plan.gap {
            tokio::time::sleep_until(next).await;
            next += gap;
        }
        let started = Instant::now();
        let r = match args.mode {
            SendMode::Sync | SendMode::Async => p
                .send(Message::new(args.topic.clone(), body(args.size)))
                .await
                .map(drop),
            SendMode::Oneway => {
                p.send_oneway(Message::new(args.topic.clone(), body(args.size)))
                    .await
            }
            SendMode::Batch => {
                let msgs = (0..per_call)
                    .map(|_| Message::new(args.topic.clone(), body(args.size)))
                    .collect();
                p.send_batch(msgs).await.map(drop)
            }
        };
        t.ops.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(()) if args.mode != SendMode::Oneway => record_since(&mut hist, started),
            Ok(()) => {}
            Err(e) => {
                if t.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    tracing::warn!(error = %e, "send failed");
                }
            }
        }
    }
    t.merge(&hist);
    Ok(())
}

/// `--mode async`: a window of `inflight` spawned sends per producer.
async fn async_worker(p: Producer, args: Arc<NetArgs>, plan: Plan, t: Arc<Tally>) -> Result<()> {
    let mut hist = latency_histogram()?;
    let mut window = FuturesUnordered::new();
    let mut next = tokio::time::Instant::now();
    loop {
        while window.len() < args.inflight.max(1) && plan.claim(&t, 1) {
            if let Some(gap) = plan.gap {
                tokio::time::sleep_until(next).await;
                next += gap;
            }
            let started = Instant::now();
            let f = p.send_async(Message::new(args.topic.clone(), body(args.size)));
            // Timed on its own task, so the latency ends when the broker answers, not when
            // this loop gets round to looking.
            window.push(tokio::spawn(async move { (f.await, started.elapsed()) }));
        }
        let Some(joined) = window.next().await else {
            break;
        };
        let (r, took) = joined?;
        t.ops.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(_) => {
                let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                hist.saturating_record(ns.max(1));
            }
            Err(e) => {
                if t.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    tracing::warn!(error = %e, "send failed");
                }
            }
        }
    }
    t.merge(&hist);
    Ok(())
}

/// Starts the producers and runs them to the plan; returns the tally and elapsed time.
pub async fn produce(args: Arc<NetArgs>, t: Arc<Tally>) -> Result<Duration> {
    let mut producers = Vec::new();
    for i in 0..args.producers.max(1) {
        let p = Producer::builder(format!("CATMQ_BENCH_PRODUCER_{i}"))
            .config(args.conn.config())
            .start()
            .await?;
        // Warm up the route and the connection.
        p.queues(&args.topic).await?;
        producers.push(p);
    }
    let async_mode = args.mode == SendMode::Async;
    let per_producer = if async_mode { 1 } else { args.inflight.max(1) };
    let plan = Plan::new(&args, args.producers.max(1) * per_producer);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in &producers {
        for _ in 0..per_producer {
            let (p, a, t) = (p.clone(), args.clone(), t.clone());
            tasks.push(if async_mode {
                tokio::spawn(async_worker(p, a, plan, t))
            } else {
                tokio::spawn(worker(p, a, plan, t))
            });
        }
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    // The budget counter may overshoot by the claims that found the run over.
    let ok = t.ops.load(Ordering::Relaxed) - t.errors.load(Ordering::Relaxed);
    let done = ok
        * if args.mode == SendMode::Batch {
            args.batch.max(1) as u64
        } else {
            1
        };
    t.msgs.store(done, Ordering::Relaxed);
    for p in producers {
        p.shutdown().await;
    }
    Ok(elapsed)
}

/// Runs `catmq bench produce`.
pub fn run_produce(args: NetArgs) -> Result<ExitCode> {
    let args = Arc::new(args);
    runtime()?.block_on(async {
        ensure_topic(&args).await?;
        let t = Tally::new()?;
        let progress = Progress::start("produce", "msgs", t.msgs.clone())?;
        let elapsed = produce(args.clone(), t.clone()).await?;
        progress.finish()?;
        let mut s = NetSummary::new("produce", &args);
        s.phases.push(t.phase("produce", args.size, elapsed));
        s.errors = t.errors.load(Ordering::Relaxed);
        s.print(args.json)?;
        Ok(if s.errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
