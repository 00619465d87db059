//! Durability bookkeeping: how far the log is fsynced, the poisoned latch, and waiting for both.
//!
//! The flusher thread advances `flushed` after each fsync and wakes every waiter, blocking
//! ([`FlushWaiter::wait_blocking`]) or async ([`FlushWaiter::wait`]). Appenders that arrive during
//! an fsync are covered by the next one: that is the group commit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::{Result, StoreError};

#[derive(Debug)]
pub(crate) struct FlushState {
    /// Log position up to which everything is durable.
    flushed: AtomicU64,
    /// Log position up to which appends were written (what the flusher should cover).
    written: AtomicU64,
    poisoned: OnceLock<String>,
    /// Completed fsync rounds.
    rounds: AtomicU64,
    /// The flusher sleeps until something is written: only then do appenders wake it, so
    /// appends during an fsync cost no wake-up.
    flusher_idle: AtomicBool,
    /// Guards nothing but the condition variables' wake-ups.
    lock: Mutex<()>,
    /// Signalled when `flushed` advances or the store is poisoned.
    flushed_cv: Condvar,
    /// Signalled when `written` advances (wakes the flusher in sync mode) or on shutdown.
    written_cv: Condvar,
    notify: tokio::sync::Notify,
}

impl FlushState {
    pub(crate) fn new(start: u64) -> Arc<Self> {
        Arc::new(Self {
            flushed: AtomicU64::new(start),
            written: AtomicU64::new(start),
            poisoned: OnceLock::new(),
            rounds: AtomicU64::new(0),
            flusher_idle: AtomicBool::new(false),
            lock: Mutex::new(()),
            flushed_cv: Condvar::new(),
            written_cv: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        })
    }

    pub(crate) fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
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
        self.wake_flushed();
        self.wake_written();
    }

    /// Records that the log is written up to `pos` (called by the appender).
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
        self.flushed.fetch_max(pos, Ordering::AcqRel);
        self.wake_flushed();
    }

    fn wake_flushed(&self) {
        drop(self.lock.lock());
        self.flushed_cv.notify_all();
        self.notify.notify_waiters();
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
        if state.flushed() >= pos {
            return Ok(());
        }
        loop {
            let notified = state.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if state.flushed() >= pos {
                return Ok(());
            }
            state.check_poisoned()?;
            notified.await;
        }
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
        loop {
            if state.flushed() >= pos {
                return Ok(());
            }
            state.check_poisoned()?;
            guard = state
                .flushed_cv
                .wait(guard)
                .map_err(|_| StoreError::Closed)?;
        }
    }
}
