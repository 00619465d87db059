//! The check-back task: a half message without an outcome `check_delay` after it was stored is
//! checked with CHECK_TRANSACTION_STATE (oneway, on a connection its producer group opened),
//! then again every `check_interval`; after `check_max` check-backs it is discarded.

use std::sync::Arc;
use std::time::Duration;

use catmq_common::msgid::offset_msg_id;
use catmq_common::{properties as props, RecordView, StoreStamp};
use catmq_protocol::headers::CheckTransactionStateRequestHeader;
use catmq_protocol::{RemotingCommand, RequestCode};
use catmq_remoting::Connection;

use super::recover::half_at;
use super::{op_record, resolve, save_progress, Op, Pending, CHECK_TIMES};
use crate::state::{lock, State};
use crate::topics::unpark;

/// Most check-backs handled in one pass (the rest wait for the next).
const PASS_LIMIT: usize = 1024;
/// Longest sleep between passes.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// A check-back to send.
struct Check {
    conn: Arc<Connection>,
    cmd: RemotingCommand,
}

/// The task: runs until shutdown.
pub(crate) async fn run(st: Arc<State>) {
    let mut shutdown = st.shutdown.subscribe();
    loop {
        let s = st.clone();
        let (checks, next) = tokio::task::spawn_blocking(move || due_checks(&s))
            .await
            .unwrap_or_else(|_| (Vec::new(), None));
        for c in checks {
            let conn = c.conn;
            if let Err(e) = conn.oneway(c.cmd).await {
                tracing::debug!(peer = %conn.peer(), "check-back not sent: {e}");
            }
        }
        let wait = next.map_or(MAX_IDLE, |t| {
            Duration::from_millis(u64::try_from(t - st.clock.now_ms()).unwrap_or(0)).min(MAX_IDLE)
        });
        tokio::select! {
            _ = st.txn_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Handles every half message whose check is due; returns the check-backs to send and the
/// time of the next one.
fn due_checks(st: &State) -> (Vec<Check>, Option<i64>) {
    let now = st.clock.now_ms();
    let due: Vec<(u64, Pending)> = lock(&st.txn)
        .pending
        .iter()
        .filter(|(_, p)| p.next_check <= now)
        .take(PASS_LIMIT)
        .map(|(k, p)| (*k, p.clone()))
        .collect();
    let mut out = Vec::new();
    for (key, p) in due {
        if let Some(c) = check_one(st, key, &p, now) {
            out.push(c);
        }
    }
    let next = lock(&st.txn).pending.values().map(|p| p.next_check).min();
    (out, next)
}

fn check_one(st: &State, key: u64, p: &Pending, now: i64) -> Option<Check> {
    let cfg = &st.cfg.transaction;
    let rec = match half_at(st, p.phys) {
        Ok(Some(r)) => r,
        Ok(None) => {
            tracing::warn!(key, "half message no longer stored; forgotten");
            forget(st, key);
            return None;
        }
        Err(e) => {
            tracing::warn!(key, "half message unreadable: {e}");
            postpone(st, key, now + cfg.check_interval_ms());
            return None;
        }
    };
    let view = RecordView::parse(&rec).ok()?;
    if p.checks >= cfg.check_max {
        discard(st, &view, p);
        return None;
    }
    let Some(conn) = producer_conn(st, p, key) else {
        tracing::debug!(key, group = %p.group, "no live producer to check back; later");
        postpone(st, key, now + cfg.check_interval_ms());
        return None;
    };
    let cmd = request(st, &view, p.checks + 1)?;
    let mut t = lock(&st.txn);
    if !t.pending.contains_key(&key) {
        return None;
    }
    let at = match st.store.append(&op_record(st, key, Op::Check)) {
        Ok(r) => r.messages.first().map(|a| a.queue_offset),
        Err(e) => {
            tracing::warn!(key, "check-back not recorded: {e}");
            None
        }
    };
    let at = at?;
    t.next_op = at + 1;
    t.counts.checks += 1;
    if let Some(e) = t.pending.get_mut(&key) {
        e.checks += 1;
        e.first_op.get_or_insert(at);
        e.next_check = now + cfg.check_interval_ms();
    }
    save_progress(st, &t);
    Some(Check { conn, cmd })
}

fn postpone(st: &State, key: u64, to: i64) {
    if let Some(e) = lock(&st.txn).pending.get_mut(&key) {
        e.next_check = to;
    }
}

fn forget(st: &State, key: u64) {
    let mut t = lock(&st.txn);
    t.pending.remove(&key);
    save_progress(st, &t);
}

fn discard(st: &State, view: &RecordView<'_>, p: &Pending) {
    let props_str = view.properties().unwrap_or_default();
    match resolve(st, view, Op::Discard) {
        Ok(_) => tracing::warn!(
            key = view.queue_offset(),
            group = %p.group,
            topic = props::get(props_str, props::REAL_TOPIC).unwrap_or_default(),
            msg_id = props::get(props_str, props::UNIQ_KEY).unwrap_or_default(),
            checks = p.checks,
            kept = st.cfg.transaction.keep_discarded,
            "transaction never resolved after its last check-back: half message discarded"
        ),
        Err(e) => tracing::warn!(key = view.queue_offset(), "discard failed: {e}"),
    }
}

/// A live connection of the half message's producer group, else the one it came on.
fn producer_conn(st: &State, p: &Pending, key: u64) -> Option<Arc<Connection>> {
    let members: Vec<Arc<Connection>> = lock(&st.clients)
        .producer_channels(&p.group)
        .into_iter()
        .map(|c| c.conn)
        .filter(|c| !c.is_closed())
        .collect();
    if !members.is_empty() {
        let i = usize::try_from(key % members.len() as u64).unwrap_or(0);
        return members.get(i).cloned();
    }
    p.conn
        .as_ref()
        .and_then(|w| w.upgrade())
        .filter(|c| !c.is_closed())
}

/// CHECK_TRANSACTION_STATE for a half message; the body is the message with its real topic
/// and queue, as the producer sent it.
fn request(st: &State, half: &RecordView<'_>, times: u32) -> Option<RemotingCommand> {
    let mut m = half.to_new_message();
    unpark(&mut m)?;
    m.properties = props::update(&m.properties, &[(CHECK_TIMES, &times.to_string())], &[]);
    let stamp = StoreStamp {
        queue_offset: half.queue_offset(),
        physical_offset: half.physical_offset(),
        store_timestamp: half.store_timestamp(),
        store_host: half.store_host(),
    };
    let mut body = Vec::new();
    m.encode(&stamp, &mut body).ok()?;
    let uniq = props::get(&m.properties, props::UNIQ_KEY).map(str::to_owned);
    let tx_id = props::get(&m.properties, "__transactionId__")
        .map(str::to_owned)
        .or_else(|| uniq.clone());
    let header = CheckTransactionStateRequestHeader {
        topic: Some(m.topic.clone()),
        tran_state_table_offset: half.queue_offset(),
        commit_log_offset: half.physical_offset(),
        msg_id: uniq,
        transaction_id: tx_id,
        offset_msg_id: Some(offset_msg_id(st.addr, half.physical_offset())),
        bname: Some(st.cfg.broker_name.clone()),
    };
    Some(RemotingCommand::request(
        RequestCode::CheckTransactionState.as_i32(),
        header.to_ext(),
        body.into(),
    ))
}
