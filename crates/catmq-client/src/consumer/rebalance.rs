//! Rebalancing: every member of a clustering group computes its share of each subscribed
//! topic's queues; queues it lost are released (offset persisted, lock released), queues it
//! gained start at their committed offset. Orderly groups hold a broker lock per queue.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::core::{lock, Core};
use super::pq::ProcessQueue;
use crate::message::MessageQueue;

/// Rebalances every subscribed topic; returns whether some queue could not be taken yet (a
/// lock still held by the member that is letting go), so the caller retries soon.
pub(crate) async fn rebalance(core: &Arc<Core>) -> bool {
    if core.manual.load(Ordering::Acquire) || core.is_stopped() {
        return false;
    }
    let mut pending = false;
    for sub in core.subscriptions() {
        let route = match core.instance.route(&sub.topic).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(topic = %sub.topic, error = %e, "rebalance: no route");
                continue;
            }
        };
        let mut all = route.read_queues.clone();
        all.sort();
        let mine = if core.clustering() {
            match core.member_ids(&sub.topic).await {
                Ok(ids) if ids.contains(&core.instance.client_id) => {
                    core.opts
                        .allocate
                        .allocate(&core.instance.client_id, &all, &ids)
                }
                other => {
                    if let Err(e) = other {
                        tracing::debug!(topic = %sub.topic, error = %e, "rebalance: member list failed");
                    }
                    // The broker does not list this member yet: its heartbeats went out before
                    // it knew the topic's broker. Send one now and retry soon, rather than at
                    // the next periodic heartbeat.
                    core.instance.heartbeat().await;
                    pending = true;
                    continue;
                }
            }
        } else {
            all
        };
        pending |= apply(core, &sub.topic, mine).await;
    }
    pending
}

/// Makes the queues of `topic` this member reads equal to `mine`.
pub(crate) async fn apply(core: &Arc<Core>, topic: &str, mine: Vec<MessageQueue>) -> bool {
    let wanted: HashSet<&MessageQueue> = mine.iter().collect();
    let lost: Vec<MessageQueue> = core
        .queues()
        .into_keys()
        .filter(|mq| mq.topic == topic && !wanted.contains(mq))
        .collect();
    for mq in lost {
        release(core, &mq).await;
    }
    let held = core.queues();
    let mut pending = false;
    for mq in mine.into_iter().filter(|mq| !held.contains_key(mq)) {
        pending |= !take(core, mq).await;
    }
    pending
}

/// Starts reading `mq`; false if it cannot yet (lock refused, broker unreachable).
async fn take(core: &Arc<Core>, mq: MessageQueue) -> bool {
    let needs_lock = core.orderly && core.clustering();
    if needs_lock {
        let locked = match core.addr(&mq).await {
            Ok(addr) => core.lock(&addr, vec![mq.clone()]).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if !locked.contains(&mq) {
            tracing::debug!(queue = ?mq, "queue still locked by another member; will retry");
            return false;
        }
    }
    // Read the offset only now: the member that held the queue committed it before unlocking.
    let offset = match core.start_offset(&mq).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(queue = ?mq, error = %e, "cannot find where to start reading");
            return false;
        }
    };
    let pq = Arc::new(ProcessQueue::new(offset));
    if needs_lock {
        pq.set_locked(true);
    }
    lock(&core.pqs).insert(mq.clone(), pq.clone());
    tracing::debug!(queue = ?mq, offset, "queue taken");
    if let Some(start) = core.starter.get() {
        start(core, mq, pq);
    }
    true
}

/// Stops reading `mq`: waits for an orderly batch in flight, persists the offset, unlocks.
pub(crate) async fn release(core: &Arc<Core>, mq: &MessageQueue) {
    let Some(pq) = lock(&core.pqs).remove(mq) else {
        return;
    };
    pq.set_dropped();
    let _in_flight = if core.orderly {
        Some(tokio::time::timeout(Duration::from_secs(30), pq.consume_lock.lock()).await)
    } else {
        None
    };
    if let Err(e) = core.offsets.persist(Some(std::slice::from_ref(mq))).await {
        tracing::warn!(queue = ?mq, error = %e, "could not persist the offset of a released queue");
    }
    core.offsets.forget(mq);
    if core.orderly && core.clustering() {
        if let Ok(addr) = core.addr(mq).await {
            let _ = core.unlock(&addr, vec![mq.clone()]).await;
        }
    }
    tracing::debug!(queue = ?mq, "queue released");
}

/// Renews the locks of every queue held (orderly clustering).
pub(crate) async fn renew_locks(core: &Arc<Core>) {
    let mut by_broker: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
    for mq in core.queues().into_keys() {
        by_broker
            .entry(mq.broker_name.clone())
            .or_default()
            .push(mq);
    }
    for (_, mqs) in by_broker {
        let Some(first) = mqs.first() else { continue };
        let Ok(addr) = core.addr(first).await else {
            continue;
        };
        let ok: HashSet<MessageQueue> = core
            .lock(&addr, mqs.clone())
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        for mq in &mqs {
            if let Some(pq) = core.queue(mq) {
                pq.set_locked(ok.contains(mq));
            }
        }
    }
}

/// Shutdown's last steps: releases every queue, leaves the group, closes the connections.
pub(crate) async fn leave(core: &Arc<Core>) {
    for mq in core.queues().into_keys() {
        release(core, &mq).await;
    }
    core.instance.unregister(None, Some(&core.group)).await;
    core.instance.close();
}
