//! Long polling: pulls that found nothing wait here and are woken as soon as the store reports
//! a message on their queue. The store calls [`PullWaiters::arrived`] after every append, so
//! the common case (nobody waiting) is one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

#[derive(Debug)]
struct Waiter {
    /// Wake once the queue's max offset passes this.
    offset: u64,
    tx: oneshot::Sender<()>,
}

/// Suspended pulls by topic and queue.
#[derive(Debug, Default)]
pub struct PullWaiters {
    count: AtomicUsize,
    queues: Mutex<HashMap<String, HashMap<i32, Vec<Waiter>>>>,
}

impl PullWaiters {
    /// Registers a pull of `topic`/`queue` at `offset`; the receiver fires when the queue's
    /// max offset goes past it. Register before the final store check, so no arrival is missed.
    pub fn wait(&self, topic: &str, queue: i32, offset: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut q) = self.queues.lock() {
            let list = q
                .entry(topic.to_owned())
                .or_default()
                .entry(queue)
                .or_default();
            let before = list.len();
            list.retain(|w| !w.tx.is_closed());
            list.push(Waiter { offset, tx });
            self.count.fetch_add(1, Ordering::AcqRel);
            self.count
                .fetch_sub(before + 1 - list.len(), Ordering::AcqRel);
        }
        rx
    }

    /// A message arrived: `topic`/`queue` now ends at `max_offset`.
    pub fn arrived(&self, topic: &str, queue: i32, max_offset: u64) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let Ok(mut q) = self.queues.lock() else {
            return;
        };
        let Some(by_queue) = q.get_mut(topic) else {
            return;
        };
        let Some(list) = by_queue.get_mut(&queue) else {
            return;
        };
        let before = list.len();
        let mut keep = Vec::with_capacity(list.len());
        for w in list.drain(..) {
            if w.offset < max_offset {
                let _ = w.tx.send(());
            } else if !w.tx.is_closed() {
                keep.push(w);
            }
        }
        self.count.fetch_sub(before - keep.len(), Ordering::AcqRel);
        if keep.is_empty() {
            by_queue.remove(&queue);
            if by_queue.is_empty() {
                q.remove(topic);
            }
        } else {
            *list = keep;
        }
    }

    /// Suspended pulls right now (including ones whose waiter gave up and is not yet swept).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no pull is suspended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_waiters_behind_the_new_max_are_woken() {
        let w = PullWaiters::default();
        let mut a = w.wait("T", 0, 5);
        let mut b = w.wait("T", 0, 7);
        let mut c = w.wait("T", 1, 0);
        assert_eq!(w.len(), 3);
        w.arrived("T", 0, 6);
        assert!(a.try_recv().is_ok());
        assert!(b.try_recv().is_err());
        assert!(c.try_recv().is_err());
        assert_eq!(w.len(), 2);
        drop(b);
        w.arrived("T", 0, 7);
        assert_eq!(w.len(), 1);
        w.arrived("U", 1, 9);
        w.arrived("T", 1, 1);
        assert!(c.try_recv().is_ok());
        assert!(w.is_empty());
    }
}
