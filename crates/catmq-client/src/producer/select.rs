//! Queue selectors: which of a topic's writable queues a message goes to.

use std::sync::atomic::{AtomicUsize, Ordering};

use catmq_common::tags::java_string_hash;

use crate::message::{Message, MessageQueue};

/// Picks a queue for a message, given an argument (an order key, say).
pub trait QueueSelector: Send + Sync {
    /// The index in `queues` (never empty) to send `msg` to.
    fn select(&self, queues: &[MessageQueue], msg: &Message, arg: &str) -> usize;
}

impl<F> QueueSelector for F
where
    F: Fn(&[MessageQueue], &Message, &str) -> usize + Send + Sync,
{
    fn select(&self, queues: &[MessageQueue], msg: &Message, arg: &str) -> usize {
        self(queues, msg, arg)
    }
}

/// The same key always goes to the same queue (while the queue count stays the same): the
/// queue index is the key's Java `String.hashCode`, made non-negative, modulo the count, as
/// RocketMQ's `SelectMessageQueueByHash` does — so Java and Rust producers agree.
#[derive(Debug, Default, Clone, Copy)]
pub struct SelectByHash;

impl QueueSelector for SelectByHash {
    fn select(&self, queues: &[MessageQueue], _msg: &Message, arg: &str) -> usize {
        let h = java_string_hash(arg).unsigned_abs() as usize;
        h % queues.len().max(1)
    }
}

/// Each call takes the next queue.
#[derive(Debug, Default)]
pub struct SelectRoundRobin(AtomicUsize);

impl QueueSelector for SelectRoundRobin {
    fn select(&self, queues: &[MessageQueue], _msg: &Message, _arg: &str) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed) % queues.len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::test_queues;

    #[test]
    fn hash_is_stable_and_matches_java() {
        let q = test_queues(8);
        let m = Message::new("T", "x");
        // "order-1".hashCode() == -1207111310 in Java → |h| % 8 == 6.
        assert_eq!(java_string_hash("order-1"), -1_207_111_310);
        assert_eq!(SelectByHash.select(&q, &m, "order-1"), 6);
        assert_eq!(SelectByHash.select(&q, &m, "order-1"), 6);
        let rr = SelectRoundRobin::default();
        let picks: Vec<usize> = (0..4).map(|_| rr.select(&q[..3], &m, "")).collect();
        assert_eq!(picks, vec![0, 1, 2, 0]);
        let custom = |_: &[MessageQueue], _: &Message, a: &str| a.len();
        assert_eq!(custom.select(&q, &m, "abc"), 3);
    }
}
