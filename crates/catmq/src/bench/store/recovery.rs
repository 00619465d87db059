//! `--mode recovery`: the append phase runs in a child process (`catmq bench store-child`),
//! which is killed with SIGKILL once it prints "done", so the store is never closed; then the
//! parent times `FileStore::open` and reports what recovery did.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use catmq_store::MessageStore;
use serde::{Deserialize, Serialize};

use super::append::run_appends;
use super::read::drop_page_cache;
use super::{open_store, store_config, RecoveryInfo, Summary, Workload};
use crate::bench::report::Phase;
use crate::cli::{FlushArg, StoreBenchArgs};

/// Line prefix of the child's report.
const CHILD_PREFIX: &str = "CHILD ";
/// Last line the child prints before waiting to be killed.
const DONE: &str = "done";

/// What the child reports before "done".
#[derive(Debug, Serialize, Deserialize)]
struct ChildReport {
    phase: Phase,
    /// The log end after the appends (and the checkpoint, if any).
    log_end: u64,
}

/// The child side: append, optionally checkpoint, report, print "done", then wait to be killed
/// without closing the store. If the parent goes away (stdin closes) it exits, still without
/// closing.
pub fn child_main(args: &StoreBenchArgs) -> Result<()> {
    let dir = args.dir.as_deref().context("store-child needs --dir")?;
    let store = open_store(store_config(args, dir, args.flush))?;
    let wl = Workload::new(args)?;
    let out = run_appends(&store, &wl, args, args.flush == FlushArg::Sync)?;
    if args.checkpoint_before {
        store.checkpoint().context("checkpoint failed")?;
    }
    let report = ChildReport {
        phase: out.phase,
        log_end: store.stats().log_end,
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{CHILD_PREFIX}{}", serde_json::to_string(&report)?)?;
        writeln!(stdout, "{DONE}")?;
        stdout.flush()?;
    }
    // Block until the parent kills us; a read of 0 bytes means the parent is gone.
    let mut buf = [0u8; 64];
    while std::io::stdin().read(&mut buf).is_ok_and(|n| n > 0) {}
    tracing::warn!("parent went away; exiting without closing the store");
    std::process::exit(1);
}

/// The arguments of the child process.
fn child_args(args: &StoreBenchArgs, dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = ["bench", "store-child", "--dir"]
        .iter()
        .map(OsString::from)
        .collect();
    v.push(dir.as_os_str().to_owned());
    let mut flag = |name: &str, value: String| {
        v.push(name.into());
        v.push(value.into());
    };
    flag("--flush", args.flush.name().to_owned());
    flag("--flush-interval-ms", args.flush_interval_ms.to_string());
    flag("--appenders", args.appenders.to_string());
    flag("--size", args.size.to_string());
    flag("--topics", args.topics.to_string());
    flag("--queues", args.queues.to_string());
    flag("--batch", args.batch.to_string());
    flag("--segment-size", args.segment_size.to_string());
    flag(
        "--checkpoint-interval-secs",
        args.checkpoint_interval_secs.to_string(),
    );
    if let Some(c) = args.count {
        flag("--count", c.to_string());
    }
    if let Some(d) = args.duration {
        flag("--duration", d.to_string());
    }
    if let Some(b) = args.checkpoint_bytes {
        flag("--checkpoint-bytes", b.to_string());
    }
    if args.checkpoint_before {
        v.push("--checkpoint-before".into());
    }
    v
}

/// Reads the child's stdout until "done"; returns its report.
fn await_child(stdout: ChildStdout) -> Result<ChildReport> {
    let mut report = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the child's output")?;
        if let Some(json) = line.strip_prefix(CHILD_PREFIX) {
            report = Some(serde_json::from_str(json).context("parsing the child's report")?);
        } else if line == DONE {
            return report.context("the child printed done without a report");
        }
    }
    bail!("the child exited before it was done (see its errors above)")
}

/// Runs the child to "done", then kills it with SIGKILL.
fn run_child(args: &StoreBenchArgs, dir: &Path) -> Result<ChildReport> {
    let exe = std::env::current_exe().context("finding the catmq executable")?;
    let mut child: Child = Command::new(exe)
        .args(child_args(args, dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the append child")?;
    let report = match child.stdout.take() {
        Some(out) => await_child(out),
        None => Err(anyhow::anyhow!("the child has no stdout")),
    };
    child.kill().context("killing the child")?;
    let status = child.wait().context("waiting for the child")?;
    tracing::info!(%status, "append child killed");
    report
}

/// Appends in a killed child, then times recovery.
pub fn recovery_mode(args: &StoreBenchArgs, dir: &Path, summary: &mut Summary) -> Result<()> {
    let child = run_child(args, dir)?;
    summary.phases.push(child.phase);
    if args.cold {
        drop_page_cache(summary);
    }
    let cfg = store_config(args, dir, args.flush);
    let started = Instant::now();
    let store = open_store(cfg)?;
    let open = started.elapsed();
    let r = store.recovery_report().clone();
    summary.recovery = Some(RecoveryInfo {
        open_ms: open.as_secs_f64() * 1e3,
        report_elapsed_ms: r.elapsed.as_secs_f64() * 1e3,
        records_replayed: r.records_replayed,
        bytes_scanned: r.log_end.saturating_sub(r.scanned_from),
        scanned_from: r.scanned_from,
        log_end: r.log_end,
        checkpoint_position: r.checkpoint.map(|c| c.position),
        truncated_at: r.truncated_at,
        corrupt_ranges: r.corrupt_ranges.len(),
    });
    let lost = child.log_end.saturating_sub(r.log_end);
    summary.error(
        u64::from(lost > 0),
        format!(
            "the child wrote the log to {}, recovery found it ending at {}",
            child.log_end, r.log_end
        ),
    );
    let corrupt = r.corrupt_ranges.len() as u64;
    summary.error(
        corrupt,
        format!("recovery found corrupt ranges {:?}", r.corrupt_ranges),
    );
    store.close().context("closing the store")?;
    Ok(())
}
