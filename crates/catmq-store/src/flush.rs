//! Durability bookkeeping: how far the log is fsynced, the poisoned latch, and waiting for both.
//!
//! The flusher thread advances `flushed` after each fsync and wakes every waiter, blocking
//! ([`FlushWaiter::wait_blocking`]) or async ([`FlushWaiter::wait`]). Appenders that arrive during
//! an fsync are covered by the next one: that is the group commit.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::{Result, StoreError};

#[derive(Debug, Default)]
pub(crate) struct FlushState {
    /// Log position up to which everything is durable.
    flushed: AtomicU64,
    /// Log position up to which appends were written (what the flusher should cover).
    written: AtomicU64,
    poisoned: OnceLock<String>,
    /// Completed fsync rounds.
    rounds: AtomicU64,
    /// Callers blocked in a durability wait right now.
    waiting: AtomicUsize,
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
        let s = Self::default();
        s.flushed.store(start, Ordering::Release);
        s.written.store(start, Ordering::Release);
        Arc::new(s)
    }

    pub(crate) fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Callers blocked in a durability wait right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Blocks the flusher until `enough()` holds, `deadline` passes or the store stops. Woken
    /// each time a caller starts waiting for durability.
    pub(crate) fn wait_for_waiters(&self, deadline: std::time::Instant, enough: impl Fn() -> bool) {
        let Ok(mut guard) = self.lock.lock() else {
            return;
        };
        while !enough() && self.poisoned.get().is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.written_cv.wait_timeout(guard, left) {
                Ok((g, _)) => guard = g,
                Err(_) => return,
            }
        }
    }

    /// Counts a caller in as waiting and tells the flusher.
    fn enter_wait(&self) -> WaitGuard<'_> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.wake_written();
        WaitGuard(self)
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
        self.written.fetch_max(pos, Ordering::AcqRel);
        if wake_flusher {
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
        if self.written() > self.flushed() || stop() {
            return;
        }
        let _ = self.written_cv.wait_timeout(guard, timeout);
    }
}

/// Counts a caller out of waiting when dropped.
struct WaitGuard<'a>(&'a FlushState);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
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
        let _counted = state.enter_wait();
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
        let _counted = state.enter_wait();
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
