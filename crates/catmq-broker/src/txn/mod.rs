//! Transactional messages: half messages, outcomes and check-backs.
//!
//! A send with the prepared flag stores a *half message* in [`HALF_TOPIC`] (queue 0, its real
//! topic and queue in `REAL_TOPIC` / `REAL_QID`), where no consumer can read it. Every event
//! after that is a record in [`OP_TOPIC`] whose body is the half message's queue offset (its
//! *key*) and whose tag says what happened: `c` committed, `r` rolled back, `x` discarded after
//! the last check-back, `k` one check-back sent. A commit appends the real message and its `c`
//! record in one atomic batch, so after any crash a transaction is either published with its
//! record or neither.
//!
//! In memory, [`TxnTable`] holds the unresolved half messages (rebuilt at start from the two
//! queues, see `recover`); a half message that is not in it is resolved, which is what makes a
//! late or duplicate END_TRANSACTION harmless. Every append to the two queues happens under its
//! lock, so the progress offsets saved with the consumer offsets (group [`TXN_GROUP`]) never
//! pass an event that a restart would need.

mod check;
mod recover;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use catmq_common::record::sys_flag;
use catmq_common::{properties as props, NewMessage, RecordView};
use catmq_remoting::Connection;
use catmq_store::{AppendResult, StoreError};

use crate::state::{lock, State};
use crate::timer;
use crate::topics::{park, unpark, CHECK_MAX_TOPIC, HALF_TOPIC, OP_TOPIC, RETRY_PREFIX};

pub(crate) use check::run;
pub(crate) use recover::{half_at, recover};

/// The internal group whose offsets are the progress of the half and op queues.
pub const TXN_GROUP: &str = "CATMQ_TRANSACTION";
/// Property that marks a committed message with its half message's key.
pub const PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Property with the number of check-backs so far.
pub const CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// Property by which a producer may delay the first check-back of one message (seconds).
pub const CHECK_IMMUNITY: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";

/// What an op record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Commit,
    Rollback,
    Discard,
    Check,
}

impl Op {
    fn tag(self) -> &'static str {
        match self {
            Op::Commit => "c",
            Op::Rollback => "r",
            Op::Discard => "x",
            Op::Check => "k",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        Some(match tag {
            "c" => Op::Commit,
            "r" => Op::Rollback,
            "x" => Op::Discard,
            "k" => Op::Check,
            _ => return None,
        })
    }
}

/// An unresolved half message.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Its commit-log position.
    pub phys: u64,
    /// Its producer group (`PGROUP`).
    pub group: String,
    /// Check-backs sent so far.
    pub checks: u32,
    /// When the next check-back is due (broker clock, ms).
    pub next_check: i64,
    /// Op-queue offset of its first check record (the op queue must be re-read from here).
    pub first_op: Option<u64>,
    /// The connection the half message came on (checked first when its group has no member).
    pub conn: Option<Weak<Connection>>,
}

/// Counters of transaction outcomes since start.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TxnCounts {
    pub halves: u64,
    pub committed: u64,
    pub rolled_back: u64,
    pub discarded: u64,
    pub checks: u64,
}

/// The unresolved half messages and the queues' write positions.
#[derive(Debug, Default)]
pub(crate) struct TxnTable {
    pub pending: BTreeMap<u64, Pending>,
    /// Half-queue offset after the last half message appended.
    pub next_half: u64,
    /// Op-queue offset after the last op record appended.
    pub next_op: u64,
    pub counts: TxnCounts,
}

impl TxnTable {
    /// (half progress, op progress): every half message below the first is resolved, and every
    /// op record below the second is about one of those.
    fn progress(&self) -> (u64, u64) {
        let half = self
            .pending
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_half);
        let op = self
            .pending
            .values()
            .filter_map(|p| p.first_op)
            .min()
            .unwrap_or(self.next_op);
        (half, op)
    }
}

/// Whether a send asks for a half message (prepared flag or `TRAN_MSG=true`; a retry is never
/// one, whatever properties it copied).
pub(crate) fn is_prepared(msg: &NewMessage) -> bool {
    if msg.topic.starts_with(RETRY_PREFIX) {
        return false;
    }
    msg.sys_flag & sys_flag::TRANSACTION_MASK == sys_flag::TRANSACTION_PREPARED
        || props::get(&msg.properties, props::TRAN_MSG) == Some("true")
}

/// Stores `msg` as a half message. The result's first entry is the half message's position.
pub(crate) fn store_half(
    st: &State,
    conn: &Arc<Connection>,
    mut msg: NewMessage,
) -> Result<AppendResult, StoreError> {
    let group = props::get(&msg.properties, props::PGROUP)
        .unwrap_or_default()
        .to_owned();
    let immunity = props::get(&msg.properties, CHECK_IMMUNITY)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map_or(st.cfg.transaction.check_delay_ms(), |s| s * 1000);
    park(&mut msg, HALF_TOPIC, &[]);
    msg.sys_flag &= !sys_flag::TRANSACTION_MASK;
    let mut t = lock(&st.txn);
    let r = st.store.append(&msg)?;
    if let Some(a) = r.messages.first() {
        t.next_half = a.queue_offset + 1;
        t.counts.halves += 1;
        t.pending.insert(
            a.queue_offset,
            Pending {
                phys: a.physical_offset,
                group,
                checks: 0,
                next_check: st.clock.now_ms().saturating_add(immunity),
                first_op: None,
                conn: Some(Arc::downgrade(conn)),
            },
        );
    }
    drop(t);
    st.txn_wake.notify_one();
    Ok(r)
}

/// How an END_TRANSACTION (or the last check-back) ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// The outcome was recorded now.
    Done,
    /// The half message had an outcome already: nothing was done.
    AlreadyResolved,
}

/// An op record about the half message `key`.
fn op_record(st: &State, key: u64, op: Op) -> NewMessage {
    NewMessage {
        topic: OP_TOPIC.to_owned(),
        queue_id: 0,
        flag: 0,
        body: Bytes::from(key.to_string()),
        properties: props::encode([(props::TAGS, op.tag())]),
        sys_flag: 0,
        born_timestamp: crate::state::now_ms(),
        born_host: st.addr,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    }
}

/// The message a commit publishes: the half message back in its real topic and queue (or in
/// the timer, when it asked for a delivery time).
pub(crate) fn committed(st: &State, half: &RecordView<'_>) -> Result<NewMessage, String> {
    let mut m = half.to_new_message();
    unpark(&mut m).ok_or("the half message has no readable REAL_TOPIC / REAL_QID")?;
    let key = half.queue_offset().to_string();
    m.properties = props::update(
        &m.properties,
        &[(PREPARED_QUEUE_OFFSET, &key)],
        &[
            props::REAL_TOPIC,
            props::REAL_QID,
            props::TRAN_MSG,
            CHECK_TIMES,
        ],
    );
    m.sys_flag = (m.sys_flag & !sys_flag::TRANSACTION_MASK) | sys_flag::TRANSACTION_COMMIT;
    m.prepared_transaction_offset = half.physical_offset();
    timer::defer_if_scheduled(st, &mut m).map_err(|e| e.to_string())?;
    Ok(m)
}

/// Records the outcome of the half message `half` (its key is its queue offset): a commit
/// publishes it with its `c` record in one batch; a rollback or a discard appends the record
/// (and a discard, when configured, a copy in [`CHECK_MAX_TOPIC`]).
pub(crate) fn resolve(st: &State, half: &RecordView<'_>, op: Op) -> Result<Resolution, String> {
    let key = u64::try_from(half.queue_offset()).map_err(|_| "negative queue offset")?;
    let mut batch = Vec::with_capacity(2);
    match op {
        Op::Commit => batch.push(committed(st, half)?),
        Op::Discard if st.cfg.transaction.keep_discarded => {
            let made = lock(&st.topics).ensure(CHECK_MAX_TOPIC, 1, st.clock.now_ms());
            if made.map_err(|e| e.to_string())?.1 {
                st.register_wake.notify_one();
            }
            let mut m = half.to_new_message();
            m.topic = CHECK_MAX_TOPIC.to_owned();
            m.queue_id = 0;
            batch.push(m);
        }
        _ => {}
    }
    batch.push(op_record(st, key, op));
    let mut t = lock(&st.txn);
    let Some(p) = t.pending.remove(&key) else {
        return Ok(Resolution::AlreadyResolved);
    };
    match st.store.append_batch(&batch) {
        Ok(r) => {
            if let Some(a) = r.messages.last() {
                t.next_op = a.queue_offset + 1;
            }
            let c = &mut t.counts;
            match op {
                Op::Commit => c.committed += 1,
                Op::Rollback => c.rolled_back += 1,
                _ => c.discarded += 1,
            }
            save_progress(st, &t);
            drop(t);
            st.counters.stored(batch.len());
            Ok(Resolution::Done)
        }
        Err(e) => {
            t.pending.insert(key, p);
            Err(format!("the outcome was not stored: {e}"))
        }
    }
}

/// Saves the progress offsets (half queue first: a save between the two leaves the op
/// progress behind, which a restart tolerates; the other order would not be).
fn save_progress(st: &State, t: &TxnTable) {
    let (half, op) = t.progress();
    let o = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    st.offsets.commit(TXN_GROUP, HALF_TOPIC, 0, o(half));
    st.offsets.commit(TXN_GROUP, OP_TOPIC, 0, o(op));
}

/// Unresolved half messages and outcome counters.
pub(crate) fn stats(st: &State) -> (usize, TxnCounts) {
    let t = lock(&st.txn);
    (t.pending.len(), t.counts)
}
