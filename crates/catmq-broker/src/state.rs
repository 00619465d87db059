//! What the broker's handlers and background tasks share.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use catmq_protocol::headers::ConsumerGroupRequestHeader;
use catmq_protocol::{RemotingCommand, RequestCode};
use catmq_store::MessageStore;
use tokio::sync::{watch, Notify};

use crate::clients::ClientRegistry;
use crate::clock::Clock;
use crate::hold::PullWaiters;
use crate::locks::QueueLocks;
use crate::offsets::OffsetTable;
use crate::timer::{Lateness, Wheel};
use crate::topics::{GroupTable, TopicTable};
use crate::txn::TxnTable;
use crate::BrokerConfig;

/// Wall-clock milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A message rate over the last minute.
#[derive(Debug, Default)]
pub(crate) struct Rate {
    total: u64,
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    pub(crate) fn add(&mut self, n: u64, now: Instant) {
        if self
            .samples
            .back()
            .is_none_or(|(t, _)| now.saturating_duration_since(*t).as_secs() >= 1)
        {
            self.samples.push_back((now, self.total));
        }
        self.total += n;
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > Self::WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Messages per second since the oldest sample of the window.
    pub(crate) fn per_sec(&self, now: Instant) -> f64 {
        let Some((t, base)) = self
            .samples
            .iter()
            .find(|(t, _)| now.saturating_duration_since(*t) <= Self::WINDOW)
        else {
            return 0.0;
        };
        let secs = now.saturating_duration_since(*t).as_secs_f64().max(1.0);
        (self.total - base) as f64 / secs
    }

    /// (rate over the last minute, total).
    pub(crate) fn snapshot(&self, now: Instant) -> (f64, u64) {
        (self.per_sec(now), self.total)
    }
}

/// Traffic counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub put: Mutex<Rate>,
    pub got: Mutex<Rate>,
    pub by_group: Mutex<HashMap<String, Rate>>,
    /// Requests received with JSON headers.
    pub json_requests: AtomicU64,
    /// Requests received with binary (ROCKETMQ) headers.
    pub binary_requests: AtomicU64,
}

impl Counters {
    pub(crate) fn stored(&self, n: usize) {
        if let Ok(mut r) = self.put.lock() {
            r.add(n as u64, Instant::now());
        }
    }

    pub(crate) fn delivered(&self, group: &str, n: usize) {
        let now = Instant::now();
        if let Ok(mut r) = self.got.lock() {
            r.add(n as u64, now);
        }
        if let Ok(mut m) = self.by_group.lock() {
            match m.get_mut(group) {
                Some(r) => r.add(n as u64, now),
                None => m.entry(group.to_owned()).or_default().add(n as u64, now),
            }
        }
    }

    pub(crate) fn group_tps(&self, group: &str) -> f64 {
        self.by_group
            .lock()
            .ok()
            .and_then(|m| m.get(group).map(|r| r.per_sec(Instant::now())))
            .unwrap_or(0.0)
    }
}

/// The broker's shared state.
pub(crate) struct State {
    pub cfg: BrokerConfig,
    /// The address clients use (and the store host of every record).
    pub addr: SocketAddr,
    pub store: Arc<dyn MessageStore>,
    pub sync_flush: bool,
    pub topics: Mutex<TopicTable>,
    pub groups: Mutex<GroupTable>,
    pub offsets: OffsetTable,
    pub clients: Mutex<ClientRegistry>,
    pub locks: Mutex<QueueLocks>,
    pub waiters: PullWaiters,
    pub counters: Counters,
    /// The clock of timers and check-backs.
    pub clock: Clock,
    /// Unresolved transactions.
    pub txn: Mutex<TxnTable>,
    /// Wakes the check-back task (a half message was stored).
    pub txn_wake: Notify,
    /// The timing wheel of scheduled messages.
    pub timer: Mutex<Wheel>,
    /// Wakes the timer task (a message entered the timer topic).
    pub timer_wake: Notify,
    /// Delivery lateness of scheduled messages.
    pub timer_lateness: Lateness,
    /// Wakes the name-server registration task (topics changed).
    pub register_wake: Notify,
    pub shutdown: watch::Sender<bool>,
    pub boot_ms: i64,
    next_queue: AtomicU32,
}

/// Locks a mutex, recovering the data if a panic poisoned it (a panic is a bug, but the data
/// is plain metadata and serving on beats stopping).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: BrokerConfig,
        addr: SocketAddr,
        store: Arc<dyn MessageStore>,
        sync_flush: bool,
        topics: TopicTable,
        groups: GroupTable,
        offsets: OffsetTable,
        wheel: Wheel,
    ) -> Self {
        Self {
            cfg,
            addr,
            store,
            sync_flush,
            topics: Mutex::new(topics),
            groups: Mutex::new(groups),
            offsets,
            clients: Mutex::new(ClientRegistry::default()),
            locks: Mutex::new(QueueLocks::default()),
            waiters: PullWaiters::default(),
            counters: Counters::default(),
            clock: Clock::default(),
            txn: Mutex::new(TxnTable::default()),
            txn_wake: Notify::new(),
            timer: Mutex::new(wheel),
            timer_wake: Notify::new(),
            timer_lateness: Lateness::default(),
            register_wake: Notify::new(),
            shutdown: watch::channel(false).0,
            boot_ms: now_ms(),
            next_queue: AtomicU32::new(0),
        }
    }

    /// A queue id for a send that left the choice to the broker.
    pub(crate) fn pick_queue(&self, queues: i32) -> i32 {
        let n = self.next_queue.fetch_add(1, Ordering::Relaxed);
        i32::try_from(n % queues.max(1) as u32).unwrap_or(0)
    }

    /// Tells every member of `group` to rebalance now (NOTIFY_CONSUMER_IDS_CHANGED, oneway,
    /// on the connection each client opened).
    pub(crate) fn notify_ids_changed(self: &Arc<Self>, group: &str) {
        let enabled = lock(&self.groups)
            .get(group)
            .is_none_or(|g| g.notify_consumer_ids_changed_enable);
        if !enabled {
            return;
        }
        let conns = lock(&self.clients).consumer_connections(group);
        for conn in conns {
            let ext = ConsumerGroupRequestHeader {
                consumer_group: group.to_owned(),
            }
            .to_ext();
            let cmd = RemotingCommand::request(
                RequestCode::NotifyConsumerIdsChanged.as_i32(),
                ext,
                bytes::Bytes::new(),
            );
            tokio::spawn(async move {
                if let Err(e) = conn.oneway(cmd).await {
                    tracing::debug!(peer = %conn.peer(), "consumer ids notification not sent: {e}");
                }
            });
        }
    }

    pub(crate) fn store_flush(&self) -> catmq_store::FlushMode {
        self.cfg.store.flush
    }
}
