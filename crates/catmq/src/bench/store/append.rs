//! The append phase: `--appenders` OS threads claim message numbers from a shared counter and
//! append them `--batch` at a time, until `--count` or `--duration` runs out.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use catmq_common::NewMessage;
use catmq_store::{AppendResult, FileStore, MessageStore};
use hdrhistogram::Histogram;

use super::{limits, Workload};
use crate::bench::report::{latency_histogram, record_since, Phase, Progress};
use crate::cli::StoreBenchArgs;

/// What the append phase did.
#[derive(Debug)]
pub struct AppendOutcome {
    /// Timings.
    pub phase: Phase,
    /// Messages appended: numbers `0..appended` (when no append failed).
    pub appended: u64,
}

/// State shared by the appender threads.
struct Shared<'a> {
    store: &'a FileStore,
    wl: &'a Workload,
    /// Next message number to claim.
    claimed: AtomicU64,
    /// Messages appended (and durable, in sync mode).
    done: Arc<AtomicU64>,
    limit: u64,
    deadline: Option<Instant>,
    sync: bool,
    print_acks: bool,
    /// Set when an appender fails, to stop the others.
    failed: AtomicBool,
}

/// What one appender did.
struct ThreadResult {
    hist: Histogram<u64>,
    calls: u64,
}

/// Runs the append phase on `store`; with `sync`, each appender waits for durability after each
/// append.
pub fn run_appends(
    store: &FileStore,
    wl: &Workload,
    args: &StoreBenchArgs,
    sync: bool,
) -> Result<AppendOutcome> {
    let (limit, duration) = limits(args)?;
    let log_start = store.stats().log_end;
    let fsyncs_start = store.stats().log_fsyncs;
    let started = Instant::now();
    let shared = Shared {
        store,
        wl,
        claimed: AtomicU64::new(0),
        done: Arc::new(AtomicU64::new(0)),
        limit,
        deadline: duration.map(|d| started + d),
        sync,
        print_acks: args.print_acks,
        failed: AtomicBool::new(false),
    };
    let progress = Progress::start("append", "msgs", shared.done.clone())?;
    let results = if args.tasks {
        run_tasks(&shared, args.appenders, args.workers)?
    } else {
        run_threads(&shared, args.appenders)
    };
    let elapsed = started.elapsed();
    progress.finish()?;
    let mut hist = latency_histogram()?;
    let mut calls = 0;
    for r in results {
        let r = r?;
        hist.add(&r.hist).context("merging latency histograms")?;
        calls += r.calls;
    }
    let appended = shared.done.load(Ordering::Acquire);
    let log_bytes = store.stats().log_end.saturating_sub(log_start);
    let fsyncs = store.stats().log_fsyncs.saturating_sub(fsyncs_start);
    if sync && fsyncs > 0 {
        eprintln!(
            "fsyncs: {fsyncs} ({:.1} appends per fsync)",
            calls as f64 / fsyncs as f64
        );
    }
    let phase = Phase::new(
        "append",
        calls,
        appended,
        appended * wl.size as u64,
        elapsed,
    )
    .with_log_bytes(log_bytes)
    .with_latency(&hist);
    Ok(AppendOutcome { phase, appended })
}

/// Runs `f(i)` for `i` in `0..n`, each on its own scoped thread named `<name>-<i>`; the results
/// in order.
fn on_threads<T: Send>(n: u32, name: &str, f: impl Fn(u32) -> T + Sync) -> Vec<Result<T>> {
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn_scoped(s, move || f(i))
                    .with_context(|| format!("spawning thread {name}-{i}"))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h?.join().map_err(|_| anyhow!("thread {name} panicked")))
            .collect()
    })
}

/// Runs the appenders as OS threads.
fn run_threads(shared: &Shared<'_>, n: u32) -> Vec<Result<ThreadResult>> {
    on_threads(n, "appender", |_| shared.noting_failure(appender(shared)))
        .into_iter()
        .map(|r| r.and_then(|r| r))
        .collect()
}

/// Runs the appenders as async tasks, spread over one single-threaded runtime per core, as the
/// broker's runtime spreads its connections' tasks over one worker per core.
fn run_tasks(
    shared: &Shared<'_>,
    n: u32,
    workers: Option<u32>,
) -> Result<Vec<Result<ThreadResult>>> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get() as u32);
    let workers = workers.unwrap_or(cores).clamp(1, n);
    let mut out = Vec::new();
    for results in on_threads(workers, "bench-worker", |w| {
        run_worker(shared, n / workers + u32::from(w < n % workers))
    }) {
        out.extend(results??);
    }
    Ok(out)
}

/// One runtime thread running `n` appender tasks.
fn run_worker(shared: &Shared<'_>, n: u32) -> Result<Vec<Result<ThreadResult>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let tasks = (0..n).map(|_| async { shared.noting_failure(task_appender(shared).await) });
    Ok(rt.block_on(futures::future::join_all(tasks)))
}

impl Shared<'_> {
    /// Passes an appender's result through, telling the other appenders to stop if it failed.
    fn noting_failure<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        r
    }

    /// Claims the next message numbers: `(first, count)`, or `None` when the run is over.
    fn claim(&self) -> Option<(u64, u64)> {
        if self.failed.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            return None;
        }
        let first = self.claimed.fetch_add(self.wl.batch, Ordering::Relaxed);
        (first < self.limit).then(|| (first, self.wl.batch.min(self.limit - first)))
    }

    /// Builds the messages `first..first + n` into `msgs` and `keys`.
    fn build(&self, (first, n): (u64, u64), msgs: &mut Vec<NewMessage>, keys: &mut Vec<String>) {
        msgs.clear();
        keys.clear();
        let born = now_ms();
        for i in first..first + n {
            let (m, k) = self.wl.message(i, born);
            msgs.push(m);
            keys.push(k);
        }
    }
}

/// One appender's buffers, latency histogram and call count.
struct Lane {
    hist: Histogram<u64>,
    msgs: Vec<NewMessage>,
    keys: Vec<String>,
    calls: u64,
}

impl Lane {
    fn new() -> Result<Self> {
        Ok(Self {
            hist: latency_histogram()?,
            msgs: Vec::new(),
            keys: Vec::new(),
            calls: 0,
        })
    }

    /// Claims and appends the next batch: its size, the result and when it started; `None` when
    /// the run is over.
    fn append(&mut self, sh: &Shared<'_>) -> Result<Option<(u64, AppendResult, Instant)>> {
        let Some(claim) = sh.claim() else {
            return Ok(None);
        };
        sh.build(claim, &mut self.msgs, &mut self.keys);
        let start = Instant::now();
        let res = sh.store.append_batch(&self.msgs).context("append failed")?;
        Ok(Some((claim.1, res, start)))
    }

    /// Records an acknowledged append.
    fn finish(
        &mut self,
        sh: &Shared<'_>,
        n: u64,
        res: &AppendResult,
        start: Instant,
    ) -> Result<()> {
        record_since(&mut self.hist, start);
        self.calls += 1;
        sh.done.fetch_add(n, Ordering::Relaxed);
        if sh.print_acks {
            print_acks(&self.msgs, &self.keys, res)?;
        }
        Ok(())
    }

    fn result(self) -> ThreadResult {
        ThreadResult {
            hist: self.hist,
            calls: self.calls,
        }
    }
}

/// One appender task's loop: like [`appender`], awaiting durability instead of blocking.
async fn task_appender(sh: &Shared<'_>) -> Result<ThreadResult> {
    let mut lane = Lane::new()?;
    let waiter = sh.store.flush_waiter();
    while let Some((n, res, start)) = lane.append(sh)? {
        if sh.sync {
            waiter
                .wait(res.end)
                .await
                .context("waiting for the fsync failed")?;
        } else {
            tokio::task::yield_now().await;
        }
        lane.finish(sh, n, &res, start)?;
    }
    Ok(lane.result())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One appender thread's loop.
fn appender(sh: &Shared<'_>) -> Result<ThreadResult> {
    let mut lane = Lane::new()?;
    let waiter = sh.store.flush_waiter();
    while let Some((n, res, start)) = lane.append(sh)? {
        if sh.sync {
            waiter
                .wait_blocking(res.end)
                .context("waiting for the fsync failed")?;
        }
        lane.finish(sh, n, &res, start)?;
    }
    Ok(lane.result())
}

/// Prints one `ACK <topic> <queue_id> <queue_offset> <uniq_key>` line per message and flushes
/// each, so a parent that kills the process has seen every acknowledgement it was given.
fn print_acks(msgs: &[NewMessage], keys: &[String], res: &AppendResult) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for ((m, key), a) in msgs.iter().zip(keys).zip(&res.messages) {
        writeln!(
            out,
            "ACK {} {} {} {key}",
            m.topic, a.queue_id, a.queue_offset
        )
        .context("writing an ACK line")?;
        out.flush().context("flushing an ACK line")?;
    }
    Ok(())
}
