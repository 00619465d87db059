//! `--mode read` (sequential reads of every queue after a reopen) and `--mode key-lookup`
//! (random `query_by_key` calls).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use catmq_common::{properties, RecordView};
use catmq_store::{FileStore, MessageStore, ReadRequest, ReadStatus};
use rand::Rng;

use super::append::run_appends;
use super::{body_for, open_store, store_config, Summary, Workload};
use crate::bench::report::{latency_histogram, record_since, Phase, Progress};
use crate::cli::{FlushArg, StoreBenchArgs};

/// Messages asked for by each read call.
const READ_BATCH: u32 = 32;
/// Byte limit of each read call.
const READ_MAX_BYTES: usize = 32 << 20;

/// Writes dirty pages back and drops the OS page cache (needs root). On failure, adds a note to
/// the summary and carries on warm.
pub fn drop_page_cache(summary: &mut Summary) {
    let synced = std::process::Command::new("sync").status();
    if !synced.as_ref().is_ok_and(|s| s.success()) {
        tracing::warn!(?synced, "`sync` failed");
    }
    match std::fs::write("/proc/sys/vm/drop_caches", "3") {
        Ok(()) => summary.notes.push("page cache dropped (cold)".into()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot drop the page cache; continuing warm");
            summary.notes.push(format!(
                "--cold requested but the page cache was not dropped ({e}): warm run"
            ));
        }
    }
}

/// Appends (async flush), closes, optionally drops the page cache, reopens and reads every
/// queue from offset 0.
pub fn read_mode(args: &StoreBenchArgs, dir: &Path, summary: &mut Summary) -> Result<()> {
    if args.flush == FlushArg::Sync {
        summary
            .notes
            .push("--flush sync ignored: the read benchmark appends with async flush".into());
    }
    let cfg = store_config(args, dir, FlushArg::Async);
    let wl = Workload::new(args)?;
    let store = open_store(cfg.clone())?;
    let out = run_appends(&store, &wl, args, false)?;
    summary.phases.push(out.phase);
    store.close().context("closing the store")?;
    drop(store);
    if args.cold {
        drop_page_cache(summary);
    }
    let store = open_store(cfg)?;
    let (phase, read_errors) = read_all(&store, &wl)?;
    let expected: u64 = store
        .queues()
        .iter()
        .map(|q| q.max_offset - q.min_offset)
        .sum();
    summary.error(
        read_errors,
        format!("{read_errors} read call(s) returned an unexpected status"),
    );
    let missing = expected.abs_diff(phase.messages);
    summary.error(
        missing,
        format!(
            "read {} messages, the queues hold {expected}",
            phase.messages
        ),
    );
    summary.phases.push(phase);
    store.close().context("closing the store")?;
    Ok(())
}

/// Reads every queue from offset 0 to its end, `READ_BATCH` messages a call.
fn read_all(store: &FileStore, wl: &Workload) -> Result<(Phase, u64)> {
    let mut hist = latency_histogram()?;
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("read", "msgs", counter.clone())?;
    let (mut calls, mut msgs, mut bytes, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for q in store.queues() {
        let mut offset = 0;
        while offset < q.max_offset {
            let req = ReadRequest {
                topic: &q.topic,
                queue_id: q.queue_id,
                offset,
                max_messages: READ_BATCH,
                max_bytes: READ_MAX_BYTES,
                tag_codes: None,
            };
            let t = Instant::now();
            let r = store.read(&req).context("read failed")?;
            record_since(&mut hist, t);
            calls += 1;
            match r.status {
                ReadStatus::Found | ReadStatus::NoMatchedMessage => {}
                ReadStatus::OffsetTooSmall => {}
                _ => {
                    errors += 1;
                    break;
                }
            }
            msgs += r.messages.len() as u64;
            bytes += r.messages.iter().map(|m| m.len() as u64).sum::<u64>();
            counter.store(msgs, Ordering::Relaxed);
            if r.next_offset <= offset {
                errors += 1;
                break;
            }
            offset = r.next_offset;
        }
    }
    let elapsed = started.elapsed();
    progress.finish()?;
    let phase = Phase::new("read", calls, msgs, msgs * wl.size as u64, elapsed)
        .with_log_bytes(bytes)
        .with_latency(&hist);
    Ok((phase, errors))
}

/// Appends, then looks up random messages by their `KEYS` and checks each answer.
pub fn key_lookup_mode(args: &StoreBenchArgs, dir: &Path, summary: &mut Summary) -> Result<()> {
    let store = open_store(store_config(args, dir, args.flush))?;
    let wl = Workload::new(args)?;
    let out = run_appends(&store, &wl, args, args.flush == FlushArg::Sync)?;
    let appended = out.appended;
    summary.phases.push(out.phase);
    if appended == 0 {
        bail!("nothing was appended, so there is nothing to look up");
    }
    let mut hist = latency_histogram()?;
    let counter = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("lookup", "lookups", counter.clone())?;
    let mut rng = rand::thread_rng();
    let (mut found, mut mismatches) = (0u64, 0u64);
    let started = Instant::now();
    for i in 0..args.lookups {
        let n = rng.gen_range(0..appended);
        let topic = &wl.pair_for(n).0;
        let key = format!("key-{n}");
        let t = Instant::now();
        let hits = store
            .query_by_key(topic, &key, 0, i64::MAX, 1)
            .context("query_by_key failed")?;
        record_since(&mut hist, t);
        found += hits.len() as u64;
        let right = hits.len() == 1
            && hits
                .first()
                .is_some_and(|rec| is_message(rec, &wl, n, &key));
        if !right {
            mismatches += 1;
            if mismatches <= 10 {
                tracing::error!(
                    key,
                    hits = hits.len(),
                    "key lookup did not find exactly the right message"
                );
            }
        }
        counter.store(i + 1, Ordering::Relaxed);
    }
    let elapsed = started.elapsed();
    progress.finish()?;
    let phase = Phase::new(
        "lookup",
        args.lookups,
        found,
        found * wl.size as u64,
        elapsed,
    )
    .with_latency(&hist);
    summary.phases.push(phase);
    summary.error(
        mismatches,
        format!(
            "{mismatches} of {} lookups did not find exactly the right message",
            args.lookups
        ),
    );
    store.close().context("closing the store")?;
    Ok(())
}

/// Whether `rec` is message `n` of `wl` (keys, uniq key and body).
fn is_message(rec: &[u8], wl: &Workload, n: u64, key: &str) -> bool {
    let Ok(v) = RecordView::parse(rec) else {
        return false;
    };
    let props = v.properties().unwrap_or("");
    let uniq = wl.uniq_key(n);
    properties::get(props, properties::KEYS) == Some(key)
        && properties::get(props, properties::UNIQ_KEY) == Some(uniq.as_str())
        && v.body() == &body_for(&uniq, wl.size)[..]
        && v.topic() == Some(wl.pair_for(n).0.as_str())
}
