//! Durability bookkeeping: how far the log is fsynced, the poisoned latch, and waiting for both.
//!
//! The flusher thread advances `flushed` after each fsync and wakes the waiters it covers: async
//! ones ([`FlushWaiter::wait`]) one by one, in position order (see [`wakeups`]); blocking ones
//! ([`FlushWaiter::wait_blocking`]) all together, through a condition variable. Appenders that
//! arrive during an fsync are covered by the next one: that is the group commit.

mod wakeups;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::{Result, StoreError};
use wakeups::{Durable, Wakeups};

#[derive(Debug)]
pub(crate) struct FlushState {
    /// Log position up to which everything is durable.
    flushed: AtomicU64,
    /// Log position up to which appends were made (and dispatched to their queues).
    written: AtomicU64,
    /// Log position up to which the records are in the log file: what readers may read and an
    /// fsync covers. With sync flush, appends are combined and written by the flusher, so this
    /// trails `written`; otherwise it moves with it.
    in_file: AtomicU64,
    poisoned: OnceLock<String>,
    /// Completed fsync rounds.
    rounds: AtomicU64,
    /// The flusher sleeps until something is written: only then do appenders wake it, so
    /// appends during an fsync cost no wake-up.
    flusher_idle: AtomicBool,
    /// Guards nothing but the condition variables' wake-ups.
    lock: Mutex<()>,
    /// Signalled when `flushed` advances or the store is poisoned, if a thread waits on it.
    flushed_cv: Condvar,
    /// Threads blocked in [`FlushWaiter::wait_blocking`].
    blocked: AtomicUsize,
    /// Signalled when `written` advances (wakes the flusher in sync mode) or on shutdown.
    written_cv: Condvar,
    /// Async waiters.
    wakeups: Wakeups,
}

impl FlushState {
    pub(crate) fn new(start: u64) -> Arc<Self> {
        Arc::new(Self {
            flushed: AtomicU64::new(start),
            written: AtomicU64::new(start),
            in_file: AtomicU64::new(start),
            poisoned: OnceLock::new(),
            rounds: AtomicU64::new(0),
            flusher_idle: AtomicBool::new(false),
            lock: Mutex::new(()),
            flushed_cv: Condvar::new(),
            blocked: AtomicUsize::new(0),
            written_cv: Condvar::new(),
            wakeups: Wakeups::default(),
        })
    }

    pub(crate) fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    pub(crate) fn in_file(&self) -> u64 {
        self.in_file.load(Ordering::Acquire)
    }

    /// Records that the log file holds every record before `pos`.
    pub(crate) fn set_in_file(&self, pos: u64) {
        self.in_file.fetch_max(pos, Ordering::AcqRel);
    }

    pub(crate) fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    pub(crate) fn check_poisoned(&self) -> Result<()> {
        match self.poisoned.get() {
            Some(reason) => Err(StoreError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Latches the poisoned state and wakes every waiter.
    pub(crate) fn poison(&self, reason: String) {
        tracing::error!(%reason, "store poisoned: no further appends are accepted");
        let _ = self.poisoned.set(reason);
        self.wake_blocked();
        self.wakeups.wake_upto(None);
        self.wake_written();
    }

    /// Records that appends reach `pos` (called by the appender, under the writer lock).
    pub(crate) fn set_written(&self, pos: u64, wake_flusher: bool) {
        self.written.fetch_max(pos, Ordering::SeqCst);
        // The flusher marks itself idle (SeqCst) before it checks `written`: either it sees
        // this write or this sees it idle and wakes it (under the lock it waits with).
        if wake_flusher && self.flusher_idle.load(Ordering::SeqCst) {
            self.wake_written();
        }
    }

    /// Records that the log is durable up to `pos` (called by the flusher).
    pub(crate) fn set_flushed(&self, pos: u64) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.flushed.fetch_max(pos, Ordering::SeqCst);
        if self.blocked.load(Ordering::SeqCst) > 0 {
            self.wake_blocked();
        }
        self.wakeups.wake_upto(Some(self.flushed()));
    }

    fn wake_blocked(&self) {
        drop(self.lock.lock());
        self.flushed_cv.notify_all();
    }

    /// A future that resolves once everything before `pos` is durable.
    fn durable(&self, pos: u64) -> Durable<'_> {
        Durable {
            state: self,
            pos,
            id: None,
        }
    }

    pub(crate) fn wake_written(&self) {
        drop(self.lock.lock());
        self.written_cv.notify_all();
    }

    /// Blocks the flusher until there is something to flush, `timeout` passes, or `stop()` holds.
    pub(crate) fn wait_for_writes(&self, timeout: Duration, stop: impl Fn() -> bool) {
        let Ok(guard) = self.lock.lock() else { return };
        self.flusher_idle.store(true, Ordering::SeqCst);
        if self.written.load(Ordering::SeqCst) <= self.flushed() && !stop() {
            let _ = self.written_cv.wait_timeout(guard, timeout);
        }
        self.flusher_idle.store(false, Ordering::SeqCst);
    }
}

/// Waits until a log position is durable. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FlushWaiter {
    state: Option<Arc<FlushState>>,
}

impl FlushWaiter {
    pub(crate) fn new(state: Arc<FlushState>) -> Self {
        Self { state: Some(state) }
    }

    /// A waiter for a store whose appends are durable when they return (in-memory stores).
    pub fn always_durable() -> Self {
        Self { state: None }
    }

    /// Log position up to which everything is durable.
    pub fn flushed(&self) -> u64 {
        self.state.as_ref().map_or(u64::MAX, |s| s.flushed())
    }

    /// Waits (async) until everything before `pos` is durable, or fails if the store is poisoned.
    pub async fn wait(&self, pos: u64) -> Result<()> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        state.durable(pos).await
    }

    /// Blocks until everything before `pos` is durable, or fails if the store is poisoned.
    pub fn wait_blocking(&self, pos: u64) -> Result<()> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if state.flushed() >= pos {
            return Ok(());
        }
        let mut guard = state.lock.lock().map_err(|_| StoreError::Closed)?;
        // Counted before `flushed` is checked again: the flusher advances `flushed` before it
        // looks at the count (both SeqCst), so either this sees the new position or the flusher
        // sees this thread and wakes it under the lock.
        state.blocked.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if state.flushed.load(Ordering::SeqCst) >= pos {
                break Ok(());
            }
            if let Err(e) = state.check_poisoned() {
                break Err(e);
            }
            match state.flushed_cv.wait(guard) {
                Ok(g) => guard = g,
                Err(_) => break Err(StoreError::Closed),
            }
        };
        state.blocked.fetch_sub(1, Ordering::SeqCst);
        result
    }
}
