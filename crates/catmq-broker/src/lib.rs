//! The CatMQ broker: serves Apache RocketMQ remoting clients (producers, push/pull consumers,
//! admin tools) from a [`catmq_store`] message store, and registers with name servers.
//!
//! * [`service`](crate::service): one handler per request code, over the shared state.
//! * [`topics`]: topic and subscription-group configs (persisted JSON).
//! * [`offsets`]: committed consumer offsets (persisted every `offset_persist_interval`).
//! * [`clients`]: producer/consumer groups from heartbeats; [`locks`]: ordered-consumption
//!   queue locks; [`hold`]: suspended pulls (long polling).
//! * [`timer`]: scheduled delivery (delay levels and any time), over a durable timing wheel.
//! * [`txn`]: transactional (half) messages, outcomes and check-backs.
//! * `register`: REGISTER_BROKER every 30 s and on topic changes.
//!
//! Threads and tasks: the remoting server's connection tasks run the handlers (a send appends
//! and answers on its connection's task); background tasks: registration, the timer,
//! transaction check-backs, housekeeping (offset persistence, client expiry) and the store's
//! own threads.

pub mod clients;
mod clock;
mod config;
mod error;
pub mod hold;
pub mod locks;
pub mod offsets;
mod persist;
mod queue;
mod register;
mod service;
mod state;
pub mod timer;
pub mod topics;
pub mod txn;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use catmq_remoting::{serve, Server};
use catmq_store::{FileStore, FlushMode, MessageStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use config::{
    parse_delay_levels, BrokerConfig, TimerConfig, TransactionConfig, DEFAULT_DELAY_LEVELS,
};
pub use error::{BrokerError, Result};

use state::{lock, State};
use timer::Wheel;
use topics::{GroupTable, TopicTable, HALF_TOPIC, TIMER_TOPIC};

/// How often silent clients are looked for.
const CLIENT_SCAN: Duration = Duration::from_secs(10);

/// This host's address on the interface that routes outward (no packet is sent), or loopback.
fn outward_ip() -> IpAddr {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The address to advertise for a listener bound to `local`.
pub fn advertised_addr(local: SocketAddr) -> SocketAddr {
    if local.ip().is_unspecified() {
        SocketAddr::new(outward_ip(), local.port())
    } else {
        local
    }
}

/// A running broker.
pub struct Broker {
    server: Server,
    state: Arc<State>,
    store: Arc<FileStore>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addr", &self.state.addr)
            .field("name", &self.state.cfg.broker_name)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Opens the store and metadata under `cfg.data_dir` (recovering after a crash) and serves
    /// `listener` (bound by the caller) on the current tokio runtime.
    pub async fn start(listener: TcpListener, mut cfg: BrokerConfig) -> Result<Self> {
        cfg.validate().map_err(BrokerError::Config)?;
        let local = listener.local_addr().map_err(|source| BrokerError::Io {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let addr = cfg
            .advertised_addr
            .unwrap_or_else(|| advertised_addr(local));
        cfg.store.store_host = addr;
        let store_cfg = cfg.store.clone();
        let store = tokio::task::spawn_blocking(move || FileStore::open(store_cfg))
            .await
            .map_err(|e| BrokerError::Task(e.to_string()))??;
        let store = Arc::new(store);
        let topics = TopicTable::load(
            cfg.config_file("topics.json"),
            cfg.auto_create_topic,
            cfg.default_topic_queue_nums,
            cfg.delay_levels.len(),
        )?;
        let groups = GroupTable::load(cfg.config_file("subscriptionGroup.json"))?;
        let offsets = offsets::OffsetTable::load(cfg.config_file("consumerOffset.json"))?;
        let timer_dir = cfg.data_dir.join("timer");
        let wheel = tokio::task::spawn_blocking(move || Wheel::open(&timer_dir))
            .await
            .map_err(|e| BrokerError::Task(e.to_string()))?
            .map_err(|source| BrokerError::Io {
                path: cfg.data_dir.join("timer"),
                source,
            })?;
        let sync = matches!(cfg.store.flush, FlushMode::Sync);
        let conn_opts = cfg.connection;
        let dyn_store: Arc<dyn MessageStore> = store.clone();
        let state = Arc::new(State::new(
            cfg, addr, dyn_store, sync, topics, groups, offsets, wheel,
        ));
        recover(&state).await?;
        install_arrival_hook(&state);
        let service = Arc::new(service::Service {
            state: state.clone(),
        });
        let server = serve(listener, service, conn_opts).map_err(|source| BrokerError::Io {
            path: state.cfg.data_dir.clone(),
            source,
        })?;
        let links = register::first(&state).await;
        let tasks = vec![
            tokio::spawn(register::run(state.clone(), links)),
            tokio::spawn(timer::run(state.clone())),
            tokio::spawn(txn::run(state.clone())),
            tokio::spawn(housekeeping(state.clone())),
        ];
        tracing::info!(%addr, listen = %local, name = %state.cfg.broker_name, "broker listening");
        Ok(Self {
            server,
            state,
            store,
            tasks,
        })
    }

    /// The address clients are told to use (and the store host of its records).
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The broker name.
    pub fn name(&self) -> &str {
        &self.state.cfg.broker_name
    }

    /// The message store (tests and tools).
    pub fn store(&self) -> &Arc<FileStore> {
        &self.store
    }

    /// Pulls suspended right now (long polling).
    pub fn suspended_pulls(&self) -> usize {
        self.state.waiters.len()
    }

    /// The clock of timers and transaction check-backs (tests move it forward).
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// Wakes the timer and check-back tasks (after the clock was moved).
    pub fn wake_timers(&self) {
        self.state.timer_wake.notify_one();
        self.state.txn_wake.notify_one();
    }

    /// Consumer ids of a group connected to this broker.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        lock(&self.state.clients)
            .consumer_group(group)
            .map(|g| g.client_ids())
            .unwrap_or_default()
    }

    /// Stops serving, unregisters from the name servers, persists offsets and closes the store.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.state.shutdown.send(true);
        self.server.shutdown().await;
        for t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .is_err()
            {
                tracing::warn!("a broker task did not stop within 10 s");
            }
        }
        // Handlers still finishing (a long poll, a flush wait) hold the state, and with it the
        // store; give them a moment so the store's files are closed when this returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.state) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.state.offsets.persist()?;
        let store = self.store;
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|e| BrokerError::Task(e.to_string()))??;
        tracing::info!("broker stopped");
        Ok(())
    }
}

/// Indexes scheduled messages stored before the start and reloads unresolved transactions.
async fn recover(state: &Arc<State>) -> Result<()> {
    let st = state.clone();
    let (scheduled, pending) = tokio::task::spawn_blocking(move || {
        let mut w = lock(&st.timer);
        timer::ingest(&st, &mut w)?;
        let scheduled: u64 = w.counts().values().sum();
        drop(w);
        let pending = txn::recover(&st).map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>((scheduled, pending))
    })
    .await
    .map_err(|e| BrokerError::Task(e.to_string()))?
    .map_err(|source| BrokerError::Io {
        path: state.cfg.data_dir.clone(),
        source,
    })?;
    tracing::info!(
        scheduled,
        pending_transactions = pending,
        "timer and transactions recovered"
    );
    Ok(())
}

/// Long polling and delayed delivery learn of appends from the store (a weak reference, so the
/// store does not keep the broker state alive).
fn install_arrival_hook(state: &Arc<State>) {
    let weak: Weak<State> = Arc::downgrade(state);
    state
        .store
        .set_arrival_listener(Arc::new(move |topic, queue, max| {
            if let Some(st) = weak.upgrade() {
                st.waiters.arrived(topic, queue, max);
                if topic == TIMER_TOPIC {
                    st.timer_wake.notify_one();
                } else if topic == HALF_TOPIC {
                    st.txn_wake.notify_one();
                }
            }
        }));
}

/// Persists changed offsets every `offset_persist_interval`; drops clients silent for longer
/// than `client_expiry`.
async fn housekeeping(st: Arc<State>) {
    let mut shutdown = st.shutdown.subscribe();
    let mut tick = tokio::time::interval(st.cfg.offset_persist_interval);
    let mut last_scan = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let s = st.clone();
        match tokio::task::spawn_blocking(move || s.offsets.persist()).await {
            Ok(Err(e)) => tracing::error!("consumer offsets not persisted: {e}"),
            Err(e) => tracing::error!("offset persistence task failed: {e}"),
            Ok(Ok(())) => {}
        }
        if last_scan.elapsed() >= CLIENT_SCAN {
            last_scan = Instant::now();
            let (dead, changed) = lock(&st.clients).expire(last_scan, st.cfg.client_expiry);
            for conn in dead {
                tracing::info!(peer = %conn.peer(), "client silent too long: connection closed");
                conn.close();
            }
            for g in changed {
                st.notify_ids_changed(&g);
            }
        }
    }
}
