//! Orderly consumption: one task per queue takes batches in offset order, one at a time, only
//! while this member holds the queue's broker lock (clustering). A failed batch is retried in
//! place after a pause; past the maximum attempts it goes to the dead-letter topic.

use std::sync::Arc;
use std::time::Duration;

use super::concurrent::{call, Slots};
use super::core::Core;
use super::pq::ProcessQueue;
use super::{ConsumeContext, OrderlyListener, OrderlyResult};
use crate::message::{MessageExt, MessageQueue};

pub(crate) struct Orderly {
    listener: Arc<dyn OrderlyListener>,
    pub(crate) slots: Slots,
}

impl Orderly {
    pub(crate) fn new(listener: Arc<dyn OrderlyListener>, tasks: usize) -> Self {
        Self {
            listener,
            slots: Slots::new(tasks),
        }
    }
}

fn ready(core: &Core, pq: &ProcessQueue) -> bool {
    pq.is_dropped()
        || core.is_stopped()
        || (pq.load().0 > 0 && (!core.clustering() || pq.lock_valid()))
}

/// Consumes one queue until it is released or the consumer stops.
pub(crate) async fn run_queue(
    core: Arc<Core>,
    svc: Arc<Orderly>,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
) {
    loop {
        pq.wait_until(Duration::from_secs(1), || ready(&core, &pq))
            .await;
        if pq.is_dropped() || core.is_stopped() {
            return;
        }
        if core.clustering() && !pq.lock_valid() {
            continue;
        }
        let guard = pq.consume_lock.lock().await;
        if pq.is_dropped() || core.is_stopped() {
            return;
        }
        let msgs = pq.take(core.opts.consume_batch_size.max(1));
        if msgs.is_empty() {
            continue;
        }
        let Some(permit) = svc.slots.acquire().await else {
            return;
        };
        let ctx = ConsumeContext {
            group: core.group.clone(),
            queue: mq.clone(),
        };
        core.hooks_before(&ctx, &msgs);
        let result = call(
            svc.listener.consume(msgs.clone(), ctx.clone()),
            core.opts.consume_timeout,
        )
        .await;
        let ok = result == Some(OrderlyResult::Success);
        core.hooks_after(&ctx, &msgs, ok);
        drop(permit);
        // Still under the consume lock: a release waits for this commit, so the member that
        // takes the queue over starts right after the last message consumed here.
        let suspend = if ok {
            commit(&core, &mq, &pq);
            false
        } else if pq.is_dropped() {
            return;
        } else {
            failed(&core, &mq, &pq, &msgs).await
        };
        drop(guard);
        if suspend {
            pq.wait_until(core.opts.orderly_suspend, || {
                pq.is_dropped() || core.is_stopped()
            })
            .await;
        }
    }
}

fn commit(core: &Core, mq: &MessageQueue, pq: &ProcessQueue) {
    if let Some(o) = pq.commit() {
        core.offsets.update(mq, o, false);
    }
}

/// Handles a failed batch; returns whether the queue should pause before the next try.
async fn failed(core: &Core, mq: &MessageQueue, pq: &ProcessQueue, msgs: &[MessageExt]) -> bool {
    let max = core.opts.max_reconsume_times;
    if !msgs.iter().all(|m| m.reconsume_times >= max) {
        pq.rollback();
        return true;
    }
    if core.clustering() {
        for m in msgs {
            if let Err(e) = core.send_back(m, -1).await {
                tracing::warn!(msg_id = %m.msg_id, error = %e, "could not move a message to the dead-letter topic");
                pq.rollback();
                return true;
            }
        }
    } else {
        tracing::warn!(
            count = msgs.len(),
            "broadcast orderly consumption failed too often; messages dropped"
        );
    }
    commit(core, mq, pq);
    false
}
