//! Durability bookkeeping: how far the log is fsynced, the poisoned latch, and waiting for both.
//!
//! The flusher thread advances `flushed` after each fsync and wakes every waiter, blocking
//! ([`FlushWaiter::wait_blocking`]) or async ([`FlushWaiter::wait`]). Appenders that arrive during
//! an fsync are covered by the next one: that is the group commit.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    /// Callers that have started a durability wait for a position beyond `flushing_to`, ever.
    late_arrivals: AtomicU64,
    /// The position the flusher's current round covers.
    flushing_to: AtomicU64,
    /// The flusher sleeps until something is written: appenders must wake it.
    flusher_idle: AtomicBool,
    /// The flusher sleeps until this many callers wait (0: it is not gathering).
    flusher_wants: AtomicUsize,
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

    /// Starts a flusher round that will cover everything written so far: returns the callers
    /// waiting now and the late-arrival count to compare with after the round.
    pub(crate) fn begin_round(&self) -> (usize, u64) {
        self.flushing_to.store(self.written(), Ordering::SeqCst);
        (
            self.waiting.load(Ordering::SeqCst),
            self.late_arrivals.load(Ordering::SeqCst),
        )
    }

    /// Callers that started waiting, since `since`, for positions the round will not cover.
    pub(crate) fn late_since(&self, since: u64) -> u64 {
        self.late_arrivals
            .load(Ordering::SeqCst)
            .saturating_sub(since)
    }

    /// Blocks the flusher until `want` callers are waiting, `deadline` passes, the store is
    /// poisoned or `stop()` holds. Only the caller that brings the count to `want` wakes it.
    pub(crate) fn wait_for_waiters(
        &self,
        deadline: std::time::Instant,
        want: usize,
        stop: impl Fn() -> bool,
    ) {
        let Ok(mut guard) = self.lock.lock() else {
            return;
        };
        self.flusher_wants.store(want.max(1), Ordering::SeqCst);
        while self.waiting.load(Ordering::SeqCst) < want && self.poisoned.get().is_none() && !stop()
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.written_cv.wait_timeout(guard, left) {
                Ok((g, _)) => guard = g,
                Err(_) => break,
            }
        }
        self.flusher_wants.store(0, Ordering::SeqCst);
    }

    /// Counts a caller in as waiting, and wakes the flusher if it was gathering for this many.
    fn enter_wait(&self, pos: u64) -> WaitGuard<'_> {
        let now = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        if pos > self.flushing_to.load(Ordering::SeqCst) {
            self.late_arrivals.fetch_add(1, Ordering::SeqCst);
        }
        let wants = self.flusher_wants.load(Ordering::SeqCst);
        if wants != 0 && now >= wants {
            self.wake_written();
        }
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
    /// The flusher is woken only if it sleeps waiting for writes.
    pub(crate) fn set_written(&self, pos: u64, wake_flusher: bool) {
        self.written.fetch_max(pos, Ordering::SeqCst);
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
        // Announce the sleep before looking, so an appender either sees it or is seen.
        self.flusher_idle.store(true, Ordering::SeqCst);
        if self.written.load(Ordering::SeqCst) <= self.flushed() && !stop() {
            let _ = self.written_cv.wait_timeout(guard, timeout);
        }
        self.flusher_idle.store(false, Ordering::SeqCst);
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
        let _counted = state.enter_wait(pos);
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
        let _counted = state.enter_wait(pos);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn only_callers_beyond_the_round_count_as_late() {
        let s = FlushState::new(0);
        s.set_written(100, false);
        let (waiting, late0) = s.begin_round();
        assert_eq!(waiting, 0);
        // A caller covered by the round in progress, then one that wrote after it began.
        let covered = s.enter_wait(100);
        s.set_written(200, false);
        let late = s.enter_wait(200);
        assert_eq!(s.late_since(late0), 1);
        drop((covered, late));
        assert_eq!(s.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_gathering_flusher_is_woken_by_the_caller_it_waits_for() {
        let s = FlushState::new(0);
        s.set_written(10, false);
        let waiter = FlushWaiter::new(s.clone());
        let t = std::thread::spawn(move || waiter.wait_blocking(10));
        // Returns when the caller starts waiting; the deadline is only a backstop.
        s.wait_for_waiters(Instant::now() + Duration::from_secs(600), 1, || false);
        assert_eq!(s.waiting.load(Ordering::SeqCst), 1);
        s.set_flushed(10);
        t.join().unwrap().unwrap();
        assert_eq!(s.waiting.load(Ordering::SeqCst), 0);
    }
}
