//! Rebalance strategies: which of a topic's queues each member of a clustering group reads.
//! Every member runs the same strategy on the same sorted inputs, so they agree without talking.

use std::collections::BTreeMap;

use crate::message::MessageQueue;

/// Divides queues among consumers.
pub trait AllocateStrategy: Send + Sync {
    /// A short name (for logs and the CLI).
    fn name(&self) -> &str;
    /// The queues `me` reads, given every queue and every consumer id (both sorted).
    fn allocate(
        &self,
        me: &str,
        queues: &[MessageQueue],
        consumers: &[String],
    ) -> Vec<MessageQueue>;
}

/// Contiguous ranges: with 8 queues and 3 consumers, 3 + 3 + 2 (RocketMQ's default).
#[derive(Debug, Default, Clone, Copy)]
pub struct Average;

impl AllocateStrategy for Average {
    fn name(&self) -> &str {
        "average"
    }

    fn allocate(
        &self,
        me: &str,
        queues: &[MessageQueue],
        consumers: &[String],
    ) -> Vec<MessageQueue> {
        let Some(index) = consumers.iter().position(|c| c == me) else {
            return Vec::new();
        };
        let (q, c) = (queues.len(), consumers.len());
        let base = q / c;
        let extra = q % c;
        let start = index * base + index.min(extra);
        let len = base + usize::from(index < extra);
        queues.iter().skip(start).take(len).cloned().collect()
    }
}

/// Dealt like cards: consumer i reads queues i, i + n, i + 2n, …
#[derive(Debug, Default, Clone, Copy)]
pub struct AverageByCircle;

impl AllocateStrategy for AverageByCircle {
    fn name(&self) -> &str {
        "circle"
    }

    fn allocate(
        &self,
        me: &str,
        queues: &[MessageQueue],
        consumers: &[String],
    ) -> Vec<MessageQueue> {
        let Some(index) = consumers.iter().position(|c| c == me) else {
            return Vec::new();
        };
        queues
            .iter()
            .skip(index)
            .step_by(consumers.len())
            .cloned()
            .collect()
    }
}

/// A hash ring with virtual nodes: when a consumer joins or leaves, only the queues next to it
/// on the ring move.
#[derive(Debug, Clone, Copy)]
pub struct ConsistentHash {
    /// Virtual nodes per consumer.
    pub virtual_nodes: usize,
}

impl Default for ConsistentHash {
    fn default() -> Self {
        Self { virtual_nodes: 10 }
    }
}

/// FNV-1a, 64 bit: stable across processes and platforms.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl AllocateStrategy for ConsistentHash {
    fn name(&self) -> &str {
        "consistent-hash"
    }

    fn allocate(
        &self,
        me: &str,
        queues: &[MessageQueue],
        consumers: &[String],
    ) -> Vec<MessageQueue> {
        if !consumers.iter().any(|c| c == me) {
            return Vec::new();
        }
        let ring: BTreeMap<u64, &str> = consumers
            .iter()
            .flat_map(|c| {
                (0..self.virtual_nodes.max(1)).map(move |v| (fnv(&format!("{c}-{v}")), c.as_str()))
            })
            .collect();
        queues
            .iter()
            .filter(|q| {
                let h = fnv(&format!("{}@{}@{}", q.topic, q.broker_name, q.queue_id));
                let owner = ring.range(h..).next().or_else(|| ring.iter().next());
                owner.is_some_and(|(_, c)| *c == me)
            })
            .cloned()
            .collect()
    }
}

/// A fixed list, whatever the other members do (for operators who pin queues).
#[derive(Debug, Default, Clone)]
pub struct ByConfig(pub Vec<MessageQueue>);

impl AllocateStrategy for ByConfig {
    fn name(&self) -> &str {
        "config"
    }

    fn allocate(
        &self,
        _me: &str,
        _queues: &[MessageQueue],
        _consumers: &[String],
    ) -> Vec<MessageQueue> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::test_queues;

    fn ids(v: &[MessageQueue]) -> Vec<i32> {
        v.iter().map(|q| q.queue_id).collect()
    }

    fn cids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    /// Every strategy gives each queue to exactly one consumer.
    fn covers_once(s: &dyn AllocateStrategy, q: usize, c: usize) {
        let qs = test_queues(q as i32);
        let cs = cids(c);
        let mut all: Vec<i32> = cs
            .iter()
            .flat_map(|me| ids(&s.allocate(me, &qs, &cs)))
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..q as i32).collect::<Vec<_>>(),
            "{} {q}/{c}",
            s.name()
        );
    }

    #[test]
    fn strategies_partition_the_queues() {
        for (q, c) in [(8, 3), (4, 4), (3, 5), (16, 2), (1, 1)] {
            covers_once(&Average, q, c);
            covers_once(&AverageByCircle, q, c);
            covers_once(&ConsistentHash::default(), q, c);
        }
        let cs = cids(3);
        assert_eq!(
            ids(&Average.allocate("c0", &test_queues(8), &cs)),
            vec![0, 1, 2]
        );
        assert_eq!(
            ids(&Average.allocate("c2", &test_queues(8), &cs)),
            vec![6, 7]
        );
        assert_eq!(
            ids(&AverageByCircle.allocate("c1", &test_queues(8), &cs)),
            vec![1, 4, 7]
        );
        assert!(Average
            .allocate("stranger", &test_queues(8), &cs)
            .is_empty());
        let pinned = ByConfig(test_queues(2));
        assert_eq!(
            ids(&pinned.allocate("c0", &test_queues(8), &cs)),
            vec![0, 1]
        );
    }
}
