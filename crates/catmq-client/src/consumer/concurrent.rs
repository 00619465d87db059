//! Concurrent consumption: batches of any queue run at once (up to `consume_tasks`); a failed
//! batch goes back to the broker's retry topic, or is consumed again here if that fails.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::core::Core;
use super::pq::ProcessQueue;
use super::{BoxFuture, ConcurrentListener, ConsumeContext, ConsumeResult};
use crate::message::{MessageExt, MessageQueue};

/// Wait before consuming again a message that could not be sent back.
const LOCAL_RETRY_DELAY: Duration = Duration::from_secs(5);

/// At most `n` listener calls at once; shutdown waits for the running ones.
pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    n: usize,
}

impl Slots {
    pub(crate) fn new(n: usize) -> Self {
        let n = n.max(1);
        Self {
            permits: Arc::new(Semaphore::new(n)),
            n,
        }
    }

    /// A slot for one listener call (`None` once closed).
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// Waits (up to `limit`) for every running call to finish.
    pub(crate) async fn wait_idle(&self, limit: Duration) {
        let n = u32::try_from(self.n).unwrap_or(u32::MAX);
        if let Ok(Ok(all)) = tokio::time::timeout(limit, self.permits.acquire_many(n)).await {
            drop(all);
        }
    }
}

pub(crate) struct Concurrent {
    listener: Arc<dyn ConcurrentListener>,
    pub(crate) slots: Slots,
}

impl Concurrent {
    pub(crate) fn new(listener: Arc<dyn ConcurrentListener>, tasks: usize) -> Self {
        Self {
            listener,
            slots: Slots::new(tasks),
        }
    }

    /// Schedules pulled messages, in batches.
    pub(crate) fn submit(
        self: &Arc<Self>,
        core: &Arc<Core>,
        mq: &MessageQueue,
        pq: &Arc<ProcessQueue>,
        msgs: Vec<MessageExt>,
    ) {
        for chunk in msgs.chunks(core.opts.consume_batch_size.max(1)) {
            tokio::spawn(run(
                core.clone(),
                self.clone(),
                mq.clone(),
                pq.clone(),
                chunk.to_vec(),
            ));
        }
    }
}

/// Runs the listener on its own task (a panic is a failure) with the consume timeout.
pub(crate) async fn call<T: Send + 'static>(fut: BoxFuture<T>, limit: Duration) -> Option<T> {
    let task = tokio::spawn(fut);
    let abort = task.abort_handle();
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "listener panicked");
            None
        }
        Err(_) => {
            abort.abort();
            tracing::warn!(?limit, "listener timed out");
            None
        }
    }
}

fn run(
    core: Arc<Core>,
    svc: Arc<Concurrent>,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    msgs: Vec<MessageExt>,
) -> BoxFuture<()> {
    Box::pin(async move {
        let Some(_slot) = svc.slots.acquire().await else {
            return;
        };
        if pq.is_dropped() || core.is_stopped() {
            return;
        }
        let ctx = ConsumeContext {
            group: core.group.clone(),
            queue: mq.clone(),
        };
        core.hooks_before(&ctx, &msgs);
        let fut = svc.listener.consume(msgs.clone(), ctx.clone());
        let ok = call(fut, core.opts.consume_timeout).await == Some(ConsumeResult::Success);
        core.hooks_after(&ctx, &msgs, ok);
        if pq.is_dropped() {
            return;
        }
        let (done, again) = settle(&core, &msgs, ok).await;
        if let Some(o) = pq.remove(&done) {
            core.offsets.update(&mq, o, true);
        }
        if !again.is_empty() {
            let again: Vec<MessageExt> = again
                .into_iter()
                .map(|mut m| {
                    m.reconsume_times += 1;
                    m
                })
                .collect();
            tokio::spawn(async move {
                tokio::time::sleep(LOCAL_RETRY_DELAY).await;
                run(core, svc, mq, pq, again).await;
            });
        }
    })
}

/// Offsets that are finished, and messages to consume again here.
async fn settle(core: &Core, msgs: &[MessageExt], ok: bool) -> (Vec<i64>, Vec<MessageExt>) {
    if ok || !core.clustering() {
        if !ok {
            tracing::warn!(
                count = msgs.len(),
                "broadcast consumption failed; messages dropped"
            );
        }
        return (msgs.iter().map(|m| m.queue_offset).collect(), Vec::new());
    }
    let mut done = Vec::new();
    let mut again = Vec::new();
    for m in msgs {
        match core.send_back(m, 0).await {
            Ok(()) => done.push(m.queue_offset),
            Err(e) => {
                tracing::warn!(msg_id = %m.msg_id, error = %e, "send back failed; consuming again here");
                again.push(m.clone());
            }
        }
    }
    (done, again)
}
