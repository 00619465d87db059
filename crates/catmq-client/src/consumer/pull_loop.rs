//! The push consumer's loop for one queue: long-poll the broker, cache what arrives, hand it
//! to the consume service; pause while the queue's cache is over its limits.

use std::sync::Arc;
use std::time::Duration;

use super::concurrent::Concurrent;
use super::core::{Core, PullStatus};
use super::orderly::Orderly;
use super::pq::ProcessQueue;
use crate::message::MessageQueue;

/// How a push consumer consumes.
#[derive(Clone)]
pub(crate) enum Service {
    Concurrent(Arc<Concurrent>),
    Orderly(Arc<Orderly>),
}

impl Service {
    /// Starts consuming a queue the rebalancer took.
    pub(crate) fn start_queue(&self, core: &Arc<Core>, mq: MessageQueue, pq: Arc<ProcessQueue>) {
        if let Service::Orderly(o) = self {
            tokio::spawn(super::orderly::run_queue(
                core.clone(),
                o.clone(),
                mq.clone(),
                pq.clone(),
            ));
        }
        tokio::spawn(pull_loop(core.clone(), self.clone(), mq, pq));
    }
}

async fn pull_loop(core: Arc<Core>, svc: Service, mq: MessageQueue, pq: Arc<ProcessQueue>) {
    let orderly_clustering = core.orderly && core.clustering();
    while !pq.is_dropped() && !core.is_stopped() {
        if core.cache_full(&pq) {
            tracing::trace!(queue = ?mq, "flow control: queue cache full, pull paused");
            core.flow_pauses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            pq.wait_until(Duration::from_secs(1), || {
                !core.cache_full(&pq) || pq.is_dropped() || core.is_stopped()
            })
            .await;
            continue;
        }
        if orderly_clustering && !pq.lock_valid() {
            pq.wait_until(Duration::from_secs(1), || {
                pq.lock_valid() || pq.is_dropped()
            })
            .await;
            continue;
        }
        let Some(sub) = core.subscription(&mq.topic) else {
            return;
        };
        let commit = if core.clustering() {
            core.offsets.cached(&mq)
        } else {
            None
        };
        let offset = pq.next_offset();
        match core
            .pull(&mq, offset, &sub, Some(core.opts.long_poll), commit)
            .await
        {
            Ok(p) => {
                if pq.is_dropped() {
                    return;
                }
                pq.set_next_offset(p.next);
                match p.status {
                    PullStatus::Found if !p.msgs.is_empty() => {
                        pq.put(&p.msgs);
                        if let Service::Concurrent(c) = &svc {
                            c.submit(&core, &mq, &pq, p.msgs);
                        }
                    }
                    PullStatus::Found | PullStatus::NoNew | PullStatus::NoMatched => {
                        if pq.load().0 == 0 {
                            core.offsets.update(&mq, p.next, true);
                        }
                    }
                    PullStatus::OffsetMoved => {
                        tracing::warn!(queue = ?mq, from = offset, to = p.next, "offset out of range; moved");
                        core.offsets.update(&mq, p.next, false);
                    }
                }
            }
            Err(e) => {
                if core.is_stopped() || pq.is_dropped() {
                    return;
                }
                tracing::warn!(queue = ?mq, error = %e, "pull failed; retrying");
                if e.response_code().is_some() || !e.is_retryable() {
                    core.instance.forget_route(&mq.topic);
                }
                let delay = core.opts.pull_error_delay;
                pq.wait_until(delay, || pq.is_dropped() || core.is_stopped())
                    .await;
            }
        }
    }
}
