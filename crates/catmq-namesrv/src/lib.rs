//! CatMQ's name server: brokers register (every 30 s) and heartbeat; clients ask it which
//! brokers serve a topic. A broker silent for longer than its timeout (120 s by default) leaves
//! every route. State is in memory: brokers re-register within 30 s of a restart.
//!
//! * [`route_table`]: the state, with no I/O (time passed in).
//! * [`Service`]: remoting requests → route-table operations.
//! * [`NameServer::start`]: serves a bound listener and runs the expiry scan.

pub mod route_table;
mod service;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catmq_remoting::{serve, ConnectionOptions, Server};
use tokio::net::TcpListener;

pub use route_table::RouteTable;
pub use service::Service;

/// Name server settings.
#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    /// How often silent brokers are looked for.
    pub scan_interval: Duration,
    /// Transport settings.
    pub connection: ConnectionOptions,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        Self {
            scan_interval: Duration::from_secs(5),
            connection: ConnectionOptions::default(),
        }
    }
}

/// A running name server.
#[derive(Debug)]
pub struct NameServer {
    server: Server,
    table: Arc<Mutex<RouteTable>>,
    scan: tokio::task::JoinHandle<()>,
}

impl NameServer {
    /// Serves `listener` (bound by the caller) on the current tokio runtime.
    pub fn start(listener: TcpListener, cfg: NamesrvConfig) -> std::io::Result<Self> {
        let table = Arc::new(Mutex::new(RouteTable::new()));
        let server = serve(
            listener,
            Arc::new(Service::new(table.clone())),
            cfg.connection,
        )?;
        let t = table.clone();
        let scan = tokio::spawn(async move {
            let mut tick = tokio::time::interval(cfg.scan_interval);
            loop {
                tick.tick().await;
                if let Ok(mut t) = t.lock() {
                    t.expire(service::now_ms());
                }
            }
        });
        tracing::info!(addr = %server.addr(), "name server listening");
        Ok(Self {
            server,
            table,
            scan,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Runs `f` on the route table (tests and diagnostics).
    pub fn inspect<T>(&self, f: impl FnOnce(&RouteTable) -> T) -> Option<T> {
        self.table.lock().ok().map(|t| f(&t))
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.scan.abort();
        self.server.shutdown().await;
    }
}
