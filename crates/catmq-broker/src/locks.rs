//! Queue locks for ordered consumption (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ): a queue belongs to at
//! most one client of a group; a lock not renewed within the expiry may be taken by another.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use catmq_protocol::body::MessageQueue;

#[derive(Debug)]
struct Lock {
    client_id: String,
    renewed: Instant,
}

/// group → queue → holder
#[derive(Debug, Default)]
pub struct QueueLocks {
    groups: HashMap<String, HashMap<MessageQueue, Lock>>,
}

impl QueueLocks {
    /// Locks (or renews) every queue of `mqs` that is free, expired or already `client`'s;
    /// returns the queues `client` now holds.
    pub fn lock(
        &mut self,
        group: &str,
        client: &str,
        mqs: &[MessageQueue],
        now: Instant,
        expiry: Duration,
    ) -> Vec<MessageQueue> {
        let locks = self.groups.entry(group.to_owned()).or_default();
        let mut held = Vec::new();
        for mq in mqs {
            let take = match locks.get(mq) {
                None => true,
                Some(l) => {
                    l.client_id == client || now.saturating_duration_since(l.renewed) > expiry
                }
            };
            if take {
                if let Some(prev) = locks.get(mq).filter(|l| l.client_id != client) {
                    tracing::info!(group, ?mq, from = %prev.client_id, to = client, "expired queue lock taken over");
                }
                locks.insert(
                    mq.clone(),
                    Lock {
                        client_id: client.to_owned(),
                        renewed: now,
                    },
                );
                held.push(mq.clone());
            }
        }
        held
    }

    /// Releases the queues of `mqs` that `client` holds.
    pub fn unlock(&mut self, group: &str, client: &str, mqs: &[MessageQueue]) {
        if let Some(locks) = self.groups.get_mut(group) {
            for mq in mqs {
                if locks.get(mq).is_some_and(|l| l.client_id == client) {
                    locks.remove(mq);
                }
            }
            if locks.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// The client holding a queue right now, if any.
    pub fn holder(
        &self,
        group: &str,
        mq: &MessageQueue,
        now: Instant,
        expiry: Duration,
    ) -> Option<&str> {
        self.groups
            .get(group)?
            .get(mq)
            .filter(|l| now.saturating_duration_since(l.renewed) <= expiry)
            .map(|l| l.client_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(q: i32) -> MessageQueue {
        MessageQueue {
            broker_name: "b".into(),
            queue_id: q,
            topic: "T".into(),
        }
    }

    #[test]
    fn a_queue_has_one_holder_until_unlock_or_expiry() {
        let mut l = QueueLocks::default();
        let t0 = Instant::now();
        let exp = Duration::from_secs(60);
        assert_eq!(
            l.lock("G", "a", &[mq(0), mq(1)], t0, exp),
            vec![mq(0), mq(1)]
        );
        assert_eq!(l.lock("G", "b", &[mq(1), mq(2)], t0, exp), vec![mq(2)]);
        assert_eq!(l.lock("H", "b", &[mq(1)], t0, exp), vec![mq(1)]);
        l.unlock("G", "b", &[mq(0)]);
        assert_eq!(l.holder("G", &mq(0), t0, exp), Some("a"));
        l.unlock("G", "a", &[mq(0)]);
        assert_eq!(l.lock("G", "b", &[mq(0)], t0, exp), vec![mq(0)]);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(l.holder("G", &mq(1), later, exp), None);
        assert_eq!(l.lock("G", "b", &[mq(1)], later, exp), vec![mq(1)]);
        assert_eq!(l.lock("G", "a", &[mq(1)], later, exp), vec![]);
    }
}
