//! Test helpers (never a dependency of a shipped crate):
//!
//! * [`Cluster`]: a name server and a broker in this process on `127.0.0.1:0`, with a temp dir,
//!   small store files and short delay levels; restartable on the same data.
//! * [`TestClient`]: a raw remoting client with one helper per request code, that records the
//!   requests the broker sends it (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE).
//! * [`eventually`]: waits for observable state, with a deadline instead of a fixed sleep.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod client;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use catmq_broker::{parse_delay_levels, Broker, BrokerConfig};
use catmq_namesrv::{NameServer, NamesrvConfig};
use catmq_store::FlushMode;
use tokio::net::TcpListener;

pub use client::{Pulled, TestClient};

/// Delay levels for tests: level n waits n × 100 ms.
pub const TEST_DELAY_LEVELS: &str =
    "100ms 200ms 300ms 400ms 500ms 600ms 700ms 800ms 900ms 1s 1s 1s 1s 1s 1s 1s 1s 1s";

/// A broker config for tests under `dir`, registering with `namesrv`.
pub fn broker_config(dir: &Path, namesrv: Option<String>) -> BrokerConfig {
    let mut c = BrokerConfig::new(dir);
    c.namesrv_addrs = namesrv.into_iter().collect();
    c.store.segment_size = 16 << 20;
    c.store.cq_entries_per_file = 10_000;
    c.store.index_entries_per_file = 20_000;
    c.store.index_slots = 4_000;
    c.store.flush = FlushMode::Async {
        interval: Duration::from_millis(200),
    };
    c.delay_levels = parse_delay_levels(TEST_DELAY_LEVELS).unwrap();
    c.offset_persist_interval = Duration::from_millis(100);
    c
}

/// Starts a broker on `127.0.0.1:0`, and waits until its name servers route to it.
pub async fn start_broker(cfg: BrokerConfig) -> Broker {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = Broker::start(listener, cfg.clone()).await.unwrap();
    wait_registered(&cfg).await;
    broker
}

/// Waits until every name server of `cfg` lists its broker.
pub async fn wait_registered(cfg: &BrokerConfig) {
    for ns in &cfg.namesrv_addrs {
        let c = TestClient::connect(ns).await;
        eventually(Duration::from_secs(10), "broker registration", || async {
            let r = c
                .call(
                    catmq_protocol::RequestCode::GetBrokerClusterInfo,
                    catmq_protocol::ExtFields::new(),
                    bytes::Bytes::new(),
                )
                .await;
            let info: catmq_protocol::body::ClusterInfo =
                catmq_protocol::body::decode("cluster info", &r.body).ok()?;
            info.broker_addr_table
                .contains_key(&cfg.broker_name)
                .then_some(())
        })
        .await;
    }
}

/// A name server and one broker.
pub struct Cluster {
    pub namesrv: NameServer,
    pub broker: Option<Broker>,
    pub dir: tempfile::TempDir,
    pub config: BrokerConfig,
}

impl Cluster {
    /// Starts both, with `tweak` applied to the broker config.
    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let namesrv = NameServer::start(listener, NamesrvConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = broker_config(dir.path(), Some(namesrv.addr().to_string()));
        tweak(&mut config);
        let broker = Some(start_broker(config.clone()).await);
        Self {
            namesrv,
            broker,
            dir,
            config,
        }
    }

    /// Starts both with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The broker (panics if stopped).
    pub fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("broker is running")
    }

    /// The broker's address as clients use it.
    pub fn broker_addr(&self) -> String {
        self.broker().addr().to_string()
    }

    /// The name server's address.
    pub fn namesrv_addr(&self) -> String {
        self.namesrv.addr().to_string()
    }

    /// A client connected to the broker.
    pub async fn client(&self) -> TestClient {
        TestClient::connect(&self.broker_addr()).await
    }

    /// A client connected to the name server.
    pub async fn namesrv_client(&self) -> TestClient {
        TestClient::connect(&self.namesrv_addr()).await
    }

    /// Stops the broker and the name server cleanly.
    pub async fn shutdown(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await.unwrap();
        }
        self.namesrv.shutdown().await;
    }

    /// The broker's runtime info (GET_BROKER_RUNTIME_INFO).
    pub async fn runtime_info(&self) -> std::collections::BTreeMap<String, String> {
        let c = self.client().await;
        let r = c
            .call(
                catmq_protocol::RequestCode::GetBrokerRuntimeInfo,
                catmq_protocol::ExtFields::new(),
                bytes::Bytes::new(),
            )
            .await;
        catmq_protocol::body::decode::<catmq_protocol::body::KvTable>("runtime info", &r.body)
            .unwrap()
            .table
    }

    /// Stops the broker cleanly and starts it again on the same data and address (as a
    /// restarted broker host would be), so clients reconnect to it.
    pub async fn restart_broker(&mut self) {
        let b = self.broker.take().expect("broker is running");
        let addr = b.local_addr();
        b.shutdown().await.unwrap();
        // A client redialling meanwhile may briefly hold the port (a self-connected socket).
        let listener = eventually(Duration::from_secs(10), "the broker's port", || async {
            TcpListener::bind(addr).await.ok()
        })
        .await;
        // Requests still finishing on the old broker's connections may hold its store briefly.
        let mut listener = Some(listener);
        let broker = eventually(Duration::from_secs(10), "the store lock", || {
            let l = listener.take();
            let cfg = self.config.clone();
            async move {
                let l = match l {
                    Some(l) => l,
                    None => TcpListener::bind(addr).await.ok()?,
                };
                Broker::start(l, cfg).await.ok()
            }
        })
        .await;
        self.broker = Some(broker);
        wait_registered(&self.config).await;
    }
}

/// Polls `check` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
