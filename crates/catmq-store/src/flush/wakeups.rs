//! Async waiters for durability, each woken only when the log is durable up to its own position.
//!
//! With many appenders in flight, a flush covers only the earliest of them. Waking every waiter
//! on each flush (one shared notification) would make each later one poll, find its append not
//! yet durable and register again: work that grows with the number of waiters on every flush.
//! Here waiters are kept in position order and a flush takes off exactly those it covers.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::FlushState;
use crate::{Result, StoreError};

/// One registered waiter.
#[derive(Debug)]
struct Entry {
    pos: u64,
    id: u64,
    waker: Waker,
}

/// Registered waiters in position order (appends register in about that order, so inserts go
/// at or near the back).
#[derive(Debug, Default)]
pub(super) struct Wakeups {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl Queue {
    fn insert(&mut self, pos: u64, waker: Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let at = self
            .entries
            .iter()
            .rposition(|e| e.pos <= pos)
            .map_or(0, |i| i + 1);
        self.entries.insert(at, Entry { pos, id, waker });
        id
    }

    /// The index of the entry `id` registered for `pos`.
    fn find(&self, pos: u64, id: u64) -> Option<usize> {
        let from = self.entries.partition_point(|e| e.pos < pos);
        (from..self.entries.len())
            .take_while(|&i| self.entries[i].pos == pos)
            .find(|&i| self.entries[i].id == id)
    }
}

impl Wakeups {
    /// Takes off and wakes every waiter whose position is at or before `flushed` (all of them
    /// with `None`: the store is poisoned).
    pub(super) fn wake_upto(&self, flushed: Option<u64>) {
        let mut woken = Vec::new();
        {
            let Ok(mut q) = self.queue.lock() else { return };
            while let Some(e) = q.entries.front() {
                if flushed.is_some_and(|f| e.pos > f) {
                    break;
                }
                if let Some(e) = q.entries.pop_front() {
                    woken.push(e.waker);
                }
            }
        }
        woken.into_iter().for_each(Waker::wake);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.entries.len())
    }
}

/// Resolves once everything before `pos` is durable, or fails once the store is poisoned.
#[derive(Debug)]
pub(super) struct Durable<'a> {
    pub(super) state: &'a FlushState,
    pub(super) pos: u64,
    /// This future's entry in the queue, while it has one.
    pub(super) id: Option<u64>,
}

impl Durable<'_> {
    /// Ready if `pos` is durable or the store poisoned; checked again under the queue's lock so
    /// a flush that completes meanwhile is never missed.
    fn settled(&self) -> Option<Result<()>> {
        if self.state.flushed() >= self.pos {
            return Some(Ok(()));
        }
        self.state.check_poisoned().err().map(Err)
    }
}

impl Future for Durable<'_> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(done) = self.settled() {
            self.id = None;
            return Poll::Ready(done);
        }
        let Ok(mut q) = self.state.wakeups.queue.lock() else {
            return Poll::Ready(Err(StoreError::Closed));
        };
        // The flusher advances `flushed` before it takes this lock to wake waiters.
        if let Some(done) = self.settled() {
            self.id = None;
            return Poll::Ready(done);
        }
        let found = self.id.and_then(|id| q.find(self.pos, id));
        match found {
            Some(i) => {
                if !q.entries[i].waker.will_wake(cx.waker()) {
                    q.entries[i].waker = cx.waker().clone();
                }
            }
            None => self.id = Some(q.insert(self.pos, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Durable<'_> {
    /// A waiter given up on (a timeout, say) leaves the queue at once.
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        if let Ok(mut q) = self.state.wakeups.queue.lock() {
            if let Some(i) = q.find(self.pos, id) {
                q.entries.remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut Pin<Box<Durable<'_>>>, w: &Arc<Count>) -> Poll<Result<()>> {
        let waker = Waker::from(w.clone());
        f.as_mut().poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_flush_wakes_only_the_waiters_it_covers() {
        let state = FlushState::new(0);
        let counts: Vec<_> = (0..4)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        // Registered out of order: 300, 100, 200, 400.
        let mut futs: Vec<_> = [300, 100, 200, 400]
            .into_iter()
            .map(|pos| Box::pin(state.durable(pos)))
            .collect();
        for (f, c) in futs.iter_mut().zip(&counts) {
            assert!(poll(f, c).is_pending());
        }
        state.set_flushed(200);
        let woken: Vec<_> = counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, [0, 1, 1, 0]);
        assert!(matches!(
            poll(&mut futs[1], &counts[1]),
            Poll::Ready(Ok(()))
        ));
        assert!(poll(&mut futs[0], &counts[0]).is_pending());
        assert_eq!(state.wakeups.len(), 2);
        state.set_flushed(400);
        assert!(counts.iter().all(|c| c.0.load(Ordering::SeqCst) == 1));
        assert_eq!(state.wakeups.len(), 0);
    }

    #[test]
    fn polling_again_keeps_one_entry_and_a_dropped_waiter_leaves() {
        let state = FlushState::new(0);
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let mut f = Box::pin(state.durable(50));
        for _ in 0..3 {
            assert!(poll(&mut f, &c).is_pending());
        }
        assert_eq!(state.wakeups.len(), 1);
        drop(f);
        assert_eq!(state.wakeups.len(), 0);
        state.set_flushed(50);
        assert_eq!(c.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn poisoning_wakes_every_waiter_with_the_error() {
        let state = FlushState::new(0);
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let mut a = Box::pin(state.durable(10));
        let mut b = Box::pin(state.durable(1 << 40));
        assert!(poll(&mut a, &c).is_pending());
        assert!(poll(&mut b, &c).is_pending());
        state.poison("disk gone".into());
        assert_eq!(c.0.load(Ordering::SeqCst), 2);
        assert!(matches!(
            poll(&mut b, &c),
            Poll::Ready(Err(StoreError::Poisoned { .. }))
        ));
    }
}
