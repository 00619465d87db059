//! What benchmarks measure and print: latency histograms, per-phase results, the live progress
//! line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histograms hold: one hour, in nanoseconds.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// A histogram of latencies in nanoseconds.
pub fn latency_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).context("creating a latency histogram")
}

/// Records the time since `start` into `hist`.
pub fn record_since(hist: &mut Histogram<u64>, start: Instant) {
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    hist.saturating_record(ns.max(1));
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// The percentiles of a nanosecond histogram, `None` if it is empty.
    pub fn of(hist: &Histogram<u64>) -> Option<Self> {
        if hist.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Self {
            p50: us(hist.value_at_quantile(0.50)),
            p90: us(hist.value_at_quantile(0.90)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
        })
    }
}

/// The result of one timed phase of a benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// What was done (append, read, lookup, ...).
    pub name: String,
    /// Calls made (append calls, reads, lookups).
    pub ops: u64,
    /// Messages appended, read or found.
    pub messages: u64,
    /// Wall time.
    pub seconds: f64,
    /// Calls per second.
    pub ops_per_sec: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Message bodies per second (MB = 10^6 bytes).
    pub mb_per_sec: f64,
    /// Commit-log record bytes per second (MB = 10^6 bytes), where known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub log_mb_per_sec: Option<f64>,
    /// Latency of one call, in µs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub latency_us: Option<Latency>,
}

impl Phase {
    /// Builds a phase from raw counts.
    pub fn new(name: &str, ops: u64, messages: u64, body_bytes: u64, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            name: name.to_owned(),
            ops,
            messages,
            seconds: elapsed.as_secs_f64(),
            ops_per_sec: ops as f64 / secs,
            msgs_per_sec: messages as f64 / secs,
            mb_per_sec: body_bytes as f64 / 1e6 / secs,
            log_mb_per_sec: None,
            latency_us: None,
        }
    }

    /// Adds the commit-log byte rate.
    pub fn with_log_bytes(mut self, bytes: u64) -> Self {
        self.log_mb_per_sec = Some(bytes as f64 / 1e6 / self.seconds.max(1e-9));
        self
    }

    /// Adds the latency percentiles of a nanosecond histogram.
    pub fn with_latency(mut self, hist: &Histogram<u64>) -> Self {
        self.latency_us = Latency::of(hist);
        self
    }

    /// Prints the phase as human-readable lines.
    pub fn print(&self) {
        let log = self
            .log_mb_per_sec
            .map(|l| format!(", log {l:.1} MB/s"))
            .unwrap_or_default();
        println!(
            "{}: {} msgs ({} calls) in {:.3} s = {:.0} msgs/s, {:.0} calls/s, {:.1} MB/s{log}",
            self.name,
            self.messages,
            self.ops,
            self.seconds,
            self.msgs_per_sec,
            self.ops_per_sec,
            self.mb_per_sec
        );
        if let Some(l) = &self.latency_us {
            println!(
                "{} latency µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                self.name, l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
    }
}

/// Prints a summary as one JSON line on stdout.
pub fn print_json<T: Serialize>(summary: &T) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string(summary).context("encoding the summary")?
    );
    Ok(())
}

/// A once-per-second progress line on stderr, until [`Progress::finish`].
pub struct Progress {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

impl Progress {
    /// Starts reporting `counter` (a running count of `what`) under `label`.
    pub fn start(label: &str, what: &'static str, counter: Arc<AtomicU64>) -> Result<Self> {
        let (stop, rx) = mpsc::channel::<()>();
        let label = label.to_owned();
        let handle = std::thread::Builder::new()
            .name("bench-progress".into())
            .spawn(move || {
                let started = Instant::now();
                let (mut last_n, mut last_t) = (0u64, started);
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(1)) {
                    let n = counter.load(Ordering::Relaxed);
                    let now = Instant::now();
                    let rate = (n - last_n.min(n)) as f64 / now.duration_since(last_t).as_secs_f64().max(1e-9);
                    let avg = n as f64 / now.duration_since(started).as_secs_f64().max(1e-9);
                    eprintln!(
                        "[{label} {:>5.1}s] {n} {what}, {rate:.0} {what}/s now, {avg:.0} {what}/s so far",
                        now.duration_since(started).as_secs_f64()
                    );
                    (last_n, last_t) = (n, now);
                }
            })
            .context("spawning the progress thread")?;
        Ok(Self { stop, handle })
    }

    /// Stops the progress line.
    pub fn finish(self) -> Result<()> {
        drop(self.stop);
        self.handle
            .join()
            .map_err(|_| anyhow!("progress thread panicked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_are_in_microseconds() {
        let mut h = latency_histogram().unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::of(&h).unwrap();
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        assert!(Latency::of(&latency_histogram().unwrap()).is_none());
    }

    #[test]
    fn phase_rates() {
        let p =
            Phase::new("x", 10, 100, 2_000_000, Duration::from_secs(2)).with_log_bytes(4_000_000);
        assert_eq!(p.msgs_per_sec, 50.0);
        assert_eq!(p.ops_per_sec, 5.0);
        assert_eq!(p.mb_per_sec, 1.0);
        assert_eq!(p.log_mb_per_sec, Some(2.0));
    }
}
