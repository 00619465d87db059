//! `catmq bench consume` (drain a backlog with a push consumer) and `catmq bench e2e`
//! (produce at a steady rate; latency from send to listener).

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use catmq_client::{Admin, ConsumeFrom, ConsumeResult, ConsumerOptions, MessageExt, PushConsumer};
use tokio::sync::Notify;

use super::produce::produce;
use super::{ensure_topic, now_ns, NetArgs, NetSummary, Tally};
use crate::bench::report::Progress;
use crate::tools::{now_ms, runtime};

/// How long the consumer may go without progress before the run is called failed.
const STALL: Duration = Duration::from_secs(30);

async fn backlog(args: &NetArgs) -> Result<u64> {
    let admin = Admin::connect(args.conn.config()).await?;
    let status = admin.topic_status(&args.topic).await?;
    admin.close();
    Ok(status
        .iter()
        .map(|(_, o)| (o.max_offset - o.min_offset).max(0) as u64)
        .sum())
}

async fn start_consumer(
    args: &NetArgs,
    from: ConsumeFrom,
    t: Arc<Tally>,
    target: Arc<Mutex<u64>>,
    done: Arc<Notify>,
    e2e: bool,
) -> Result<PushConsumer> {
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("CATMQ_BENCH_{}", now_ms()));
    let opts = ConsumerOptions {
        consume_from: from,
        consume_tasks: args.consume_tasks.max(1),
        consume_batch_size: args.consume_batch.max(1),
        ..ConsumerOptions::default()
    };
    let listener = move |msgs: Vec<MessageExt>, _ctx| {
        if e2e {
            let now = now_ns();
            if let Ok(mut h) = t.hist.lock() {
                for m in &msgs {
                    let b = m.body();
                    if b.len() >= 8 {
                        let mut sent = [0u8; 8];
                        sent.copy_from_slice(&b[..8]);
                        h.saturating_record(now.saturating_sub(u64::from_be_bytes(sent)).max(1));
                    }
                }
            }
        }
        t.ops.fetch_add(1, Ordering::Relaxed);
        let n = t.msgs.fetch_add(msgs.len() as u64, Ordering::Relaxed) + msgs.len() as u64;
        if target.lock().is_ok_and(|g| n >= *g) {
            done.notify_one();
        }
        std::future::ready(ConsumeResult::Success)
    };
    Ok(PushConsumer::builder(group)
        .config(args.conn.config())
        .options(opts)
        .subscribe(&args.topic, "*")
        .concurrent(listener)
        .start()
        .await?)
}

/// Waits until `done` fires, failing if the count stops moving for [`STALL`].
async fn wait_done(t: &Tally, done: &Notify) -> Result<()> {
    let mut last = (t.msgs.load(Ordering::Relaxed), Instant::now());
    loop {
        if tokio::time::timeout(Duration::from_secs(1), done.notified())
            .await
            .is_ok()
        {
            return Ok(());
        }
        let n = t.msgs.load(Ordering::Relaxed);
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > STALL {
            bail!("no message consumed for {STALL:?} (at {n})");
        }
    }
}

/// Runs `catmq bench consume`: consumes the topic's backlog (or `--count`) from the start.
pub fn run_consume(args: NetArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let target = match args.count {
            Some(c) => c,
            None => backlog(&args).await?,
        };
        if target == 0 {
            bail!(
                "topic {} is empty: produce a backlog first (catmq bench produce --count N)",
                args.topic
            );
        }
        let t = Tally::new()?;
        let done = Arc::new(Notify::new());
        let progress = Progress::start("consume", "msgs", t.msgs.clone())?;
        let started = Instant::now();
        let c = start_consumer(
            &args,
            ConsumeFrom::First,
            t.clone(),
            Arc::new(Mutex::new(target)),
            done.clone(),
            false,
        )
        .await?;
        wait_done(&t, &done).await?;
        let elapsed = started.elapsed();
        progress.finish()?;
        c.shutdown().await;
        let mut s = NetSummary::new("consume", &args);
        let mut phase = t.phase("consume", args.size, elapsed);
        phase.latency_us = None;
        s.phases.push(phase);
        s.print(args.json)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `catmq bench e2e`: a consumer, then producers at `--rate`; reports send latency and
/// send-to-listener latency.
pub fn run_e2e(args: NetArgs) -> Result<ExitCode> {
    let args = Arc::new(args);
    runtime()?.block_on(async {
        ensure_topic(&args).await?;
        let consumed = Tally::new()?;
        let done = Arc::new(Notify::new());
        let target = Arc::new(Mutex::new(u64::MAX));
        let c = start_consumer(
            &args,
            ConsumeFrom::Last,
            consumed.clone(),
            target.clone(),
            done.clone(),
            true,
        )
        .await?;
        let deadline = Instant::now() + STALL;
        while c.assignment().is_empty() {
            if Instant::now() > deadline {
                bail!("the consumer got no queue of {}", args.topic);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = Tally::new()?;
        let progress = Progress::start("e2e", "msgs consumed", consumed.msgs.clone())?;
        let elapsed = produce(args.clone(), sent.clone()).await?;
        let n = sent.msgs.load(Ordering::Relaxed);
        if let Ok(mut g) = target.lock() {
            *g = n;
        }
        if consumed.msgs.load(Ordering::Relaxed) < n {
            wait_done(&consumed, &done).await?;
        }
        progress.finish()?;
        c.shutdown().await;
        let mut s = NetSummary::new("e2e", &args);
        s.phases.push(sent.phase("send", args.size, elapsed));
        s.phases
            .push(consumed.phase("send-to-listener", args.size, elapsed));
        s.errors = sent.errors.load(Ordering::Relaxed);
        s.print(args.json)?;
        Ok(if s.errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
