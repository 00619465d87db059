//! Rebuilds the unresolved half messages at start: read the op queue from its progress offset
//! (outcomes and check counts), then the half queue from its progress offset (every half
//! message without an outcome is pending again).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use catmq_common::{properties as props, RecordView};
use catmq_store::StoreError;

use super::{Op, Pending, TxnTable, TXN_GROUP};
use crate::queue::scan;
use crate::state::{lock, State};
use crate::topics::{HALF_TOPIC, OP_TOPIC};

fn progress(st: &State, topic: &str) -> u64 {
    let committed = st.offsets.query(TXN_GROUP, topic, 0).unwrap_or(0);
    let min = st.store.queue_info(topic, 0).map_or(0, |q| q.min_offset);
    u64::try_from(committed).unwrap_or(0).max(min)
}

/// What the op queue says about the half messages.
#[derive(Default)]
struct Ops {
    resolved: HashSet<u64>,
    /// key → (check-backs, op offset of the first)
    checks: HashMap<u64, (u32, u64)>,
}

fn read_ops(st: &State, from: u64) -> Result<(Ops, u64), StoreError> {
    let mut ops = Ops::default();
    let end = scan(st, OP_TOPIC, from, |at, v| {
        let key = std::str::from_utf8(v.body())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let op = v
            .properties()
            .and_then(|p| props::get(p, props::TAGS))
            .and_then(Op::from_tag);
        match (key, op) {
            (Some(k), Some(Op::Check)) => {
                let e = ops.checks.entry(k).or_insert((0, at));
                e.0 += 1;
            }
            (Some(k), Some(_)) => {
                ops.resolved.insert(k);
            }
            _ => tracing::warn!(offset = at, "unreadable transaction op record skipped"),
        }
    })?;
    Ok((ops, end))
}

/// Loads the pending half messages into `st.txn`; returns how many there are.
pub(crate) fn recover(st: &State) -> Result<usize, StoreError> {
    let (ops, next_op) = read_ops(st, progress(st, OP_TOPIC))?;
    let now = st.clock.now_ms();
    let delay = st.cfg.transaction.check_delay_ms();
    let mut pending = Vec::new();
    let next_half = scan(st, HALF_TOPIC, progress(st, HALF_TOPIC), |key, v| {
        if ops.resolved.contains(&key) {
            return;
        }
        let (checks, first_op) = ops
            .checks
            .get(&key)
            .map_or((0, None), |(n, at)| (*n, Some(*at)));
        let group = v
            .properties()
            .and_then(|p| props::get(p, props::PGROUP))
            .unwrap_or_default()
            .to_owned();
        let due = v.store_timestamp().saturating_add(delay).max(now);
        pending.push((
            key,
            Pending {
                phys: u64::try_from(v.physical_offset()).unwrap_or(0),
                group,
                checks,
                next_check: due,
                first_op,
                conn: None,
            },
        ));
    })?;
    let mut t = lock(&st.txn);
    *t = TxnTable {
        pending: pending.into_iter().collect(),
        next_half,
        next_op,
        counts: Default::default(),
    };
    Ok(t.pending.len())
}

/// The stored half message at `phys`, if that position holds one.
pub(crate) fn half_at(st: &State, phys: u64) -> Result<Option<Bytes>, StoreError> {
    let Some(rec) = st.store.read_at(phys)? else {
        return Ok(None);
    };
    let is_half = RecordView::parse(&rec)
        .ok()
        .is_some_and(|v| v.topic() == Some(HALF_TOPIC));
    Ok(is_half.then_some(rec))
}
