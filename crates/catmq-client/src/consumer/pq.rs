//! A queue being consumed: the messages pulled and not yet done, the next pull offset, and the
//! flags the pull loop, the consume tasks and the rebalancer share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::message::MessageExt;

/// A lock from the broker is trusted this long without renewal.
const LOCK_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    msgs: BTreeMap<i64, MessageExt>,
    bytes: usize,
    /// Orderly: the batch being consumed.
    consuming: BTreeMap<i64, MessageExt>,
    /// Highest offset ever put.
    max_offset: Option<i64>,
}

pub(crate) struct ProcessQueue {
    state: Mutex<State>,
    dropped: AtomicBool,
    paused: AtomicBool,
    locked: Mutex<Option<Instant>>,
    next_offset: AtomicI64,
    generation: AtomicU64,
    /// Held while an orderly batch is consumed; the rebalancer takes it before letting go.
    pub(crate) consume_lock: tokio::sync::Mutex<()>,
    /// Messages arrived, space freed, the lock or a flag changed.
    changed: Notify,
}

impl ProcessQueue {
    pub(crate) fn new(next_offset: i64) -> Self {
        Self {
            state: Mutex::new(State::default()),
            dropped: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            locked: Mutex::new(None),
            next_offset: AtomicI64::new(next_offset),
            generation: AtomicU64::new(0),
            consume_lock: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes everything waiting on this queue.
    pub(crate) fn wake(&self) {
        self.changed.notify_waiters();
    }

    /// Waits until `ready` holds (checked whenever the queue changes) or `limit` passes.
    pub(crate) async fn wait_until(&self, limit: Duration, ready: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready() {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    pub(crate) fn set_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
        self.wake();
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        self.wake();
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn set_next_offset(&self, offset: i64) {
        self.next_offset.store(offset, Ordering::Release);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets cached messages and restarts pulling at `offset` (a seek).
    pub(crate) fn reset_to(&self, offset: i64) {
        {
            let mut s = self.state();
            *s = State::default();
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.set_next_offset(offset);
        self.wake();
    }

    /// Whether the broker lock is held and fresh.
    pub(crate) fn lock_valid(&self) -> bool {
        let g = self
            .locked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.is_some_and(|t| t.elapsed() < LOCK_TTL)
    }

    pub(crate) fn set_locked(&self, locked: bool) {
        {
            let mut g = self
                .locked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *g = locked.then(Instant::now);
        }
        self.wake();
    }

    /// Caches pulled messages.
    pub(crate) fn put(&self, msgs: &[MessageExt]) {
        {
            let mut s = self.state();
            for m in msgs {
                if s.msgs.insert(m.queue_offset, m.clone()).is_none() {
                    s.bytes += m.size();
                }
                s.max_offset = Some(
                    s.max_offset
                        .map_or(m.queue_offset, |x| x.max(m.queue_offset)),
                );
            }
        }
        self.wake();
    }

    /// Cached messages and their body bytes.
    pub(crate) fn load(&self) -> (usize, usize) {
        let s = self.state();
        (s.msgs.len() + s.consuming.len(), s.bytes)
    }

    /// Removes consumed messages; returns the offset to commit (the smallest still cached, or
    /// one past the highest ever cached).
    pub(crate) fn remove(&self, offsets: &[i64]) -> Option<i64> {
        let out = {
            let mut s = self.state();
            for o in offsets {
                if let Some(m) = s.msgs.remove(o) {
                    s.bytes = s.bytes.saturating_sub(m.size());
                }
            }
            s.msgs
                .keys()
                .next()
                .copied()
                .or_else(|| s.max_offset.map(|m| m + 1))
        };
        self.wake();
        out
    }

    /// Orderly: takes the next `n` messages in offset order.
    pub(crate) fn take(&self, n: usize) -> Vec<MessageExt> {
        let mut s = self.state();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some((o, m)) = s.msgs.pop_first() else {
                break;
            };
            s.bytes = s.bytes.saturating_sub(m.size());
            s.consuming.insert(o, m.clone());
            out.push(m);
        }
        out
    }

    /// Orderly: the taken batch is done; returns the offset to commit.
    pub(crate) fn commit(&self) -> Option<i64> {
        let out = {
            let mut s = self.state();
            let last = s.consuming.keys().next_back().copied();
            s.consuming.clear();
            last.map(|o| o + 1)
        };
        self.wake();
        out
    }

    /// Orderly: puts the taken batch back, counting one more attempt for each message.
    pub(crate) fn rollback(&self) {
        let mut s = self.state();
        let taken = std::mem::take(&mut s.consuming);
        for (o, mut m) in taken {
            m.reconsume_times += 1;
            s.bytes += m.size();
            s.msgs.insert(o, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, MessageQueue};

    fn msg(offset: i64) -> MessageExt {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], 1).into();
        MessageExt {
            message: Message::new("T", "abc"),
            msg_id: offset.to_string(),
            offset_msg_id: String::new(),
            queue: MessageQueue::default(),
            queue_offset: offset,
            commit_log_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: addr,
            store_timestamp: 0,
            store_host: addr,
            reconsume_times: 0,
        }
    }

    #[test]
    fn commit_offset_is_the_oldest_unfinished() {
        let pq = ProcessQueue::new(0);
        pq.put(&[msg(5), msg(6), msg(7)]);
        assert_eq!(pq.load(), (3, 9));
        assert_eq!(pq.remove(&[6]), Some(5));
        assert_eq!(pq.remove(&[5]), Some(7));
        assert_eq!(pq.remove(&[7]), Some(8));
        assert_eq!(pq.load(), (0, 0));
    }

    #[test]
    fn orderly_take_commit_rollback() {
        let pq = ProcessQueue::new(0);
        pq.put(&[msg(1), msg(2), msg(3)]);
        let b = pq.take(2);
        assert_eq!(
            b.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
            vec![1, 2]
        );
        pq.rollback();
        let b = pq.take(2);
        assert_eq!(b[0].reconsume_times, 1);
        assert_eq!(pq.commit(), Some(3));
        assert_eq!(pq.take(5).len(), 1);
        assert_eq!(pq.commit(), Some(4));
    }
}
