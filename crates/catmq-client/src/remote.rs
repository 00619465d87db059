//! One multiplexed connection per address, opened on first use, reopened after it closes, with
//! a backoff after failed connects so a dead broker is not dialled on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use catmq_protocol::{ExtFields, RemotingCommand, RequestCode, SerializeType};
use catmq_remoting::{Connection, ConnectionOptions, Handler, RemotingError};

use crate::error::{ClientError, Result};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct Slot {
    live: Mutex<Option<Arc<Connection>>>,
    connecting: tokio::sync::Mutex<Backoff>,
}

impl Slot {
    fn live(&self) -> Option<Arc<Connection>> {
        let g = self.live.lock().ok()?;
        g.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    fn set(&self, conn: Option<Arc<Connection>>) {
        if let Ok(mut g) = self.live.lock() {
            *g = conn;
        }
    }
}

/// The connection pool of one client instance.
pub(crate) struct Remote {
    serialize: SerializeType,
    connect_timeout: Duration,
    handler: Arc<dyn Handler>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Remote {
    pub(crate) fn new(
        serialize: SerializeType,
        connect_timeout: Duration,
        handler: Arc<dyn Handler>,
    ) -> Self {
        Self {
            serialize,
            connect_timeout,
            handler,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, addr: &str) -> Arc<Slot> {
        match self.slots.lock() {
            Ok(mut m) => match m.get(addr) {
                Some(s) => s.clone(),
                None => m.entry(addr.to_owned()).or_default().clone(),
            },
            Err(_) => Arc::new(Slot::default()),
        }
    }

    /// The open connection to `addr`, connecting if needed.
    pub(crate) async fn conn(&self, addr: &str) -> Result<Arc<Connection>> {
        let slot = self.slot(addr);
        if let Some(c) = slot.live() {
            return Ok(c);
        }
        let mut backoff = slot.connecting.lock().await;
        if let Some(c) = slot.live() {
            return Ok(c);
        }
        if let Some(at) = backoff.retry_at.filter(|at| Instant::now() < *at) {
            let wait = at.saturating_duration_since(Instant::now());
            return Err(connect_error(
                addr,
                format!("{} failed connects, next try in {wait:?}", backoff.failures),
            ));
        }
        let opts = ConnectionOptions::default();
        let res = tokio::time::timeout(
            self.connect_timeout,
            Connection::connect(addr, self.handler.clone(), opts),
        )
        .await;
        let err = match res {
            // Dialling a local port nobody listens on can connect the socket to itself (TCP
            // simultaneous open); that is no broker.
            Ok(Ok(c)) if c.local() == c.peer() => {
                c.close();
                connect_error(addr, "connected to itself: nothing listens there".into())
            }
            Ok(Ok(c)) => {
                *backoff = Backoff::default();
                slot.set(Some(c.clone()));
                return Ok(c);
            }
            Ok(Err(e)) => ClientError::Remoting(e),
            Err(_) => connect_error(addr, format!("timed out after {:?}", self.connect_timeout)),
        };
        backoff.failures = backoff.failures.saturating_add(1);
        let delay = BACKOFF_MIN
            .saturating_mul(1 << backoff.failures.min(6))
            .min(BACKOFF_MAX);
        backoff.retry_at = Some(Instant::now() + delay);
        Err(err)
    }

    /// Sends `cmd` to `addr` and waits for the response (any code).
    pub(crate) async fn request(
        &self,
        addr: &str,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        cmd.serialize = self.serialize;
        let conn = self.conn(addr).await?;
        match conn.request(cmd, timeout).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.forget_if_closed(addr, &conn);
                Err(e.into())
            }
        }
    }

    /// Sends a request and returns the response only if it is a success.
    pub(crate) async fn call(
        &self,
        addr: &str,
        code: RequestCode,
        ext: ExtFields,
        body: Bytes,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let cmd = RemotingCommand::request(code.as_i32(), ext, body);
        let resp = self.request(addr, cmd, timeout).await?;
        if resp.code != 0 {
            return Err(ClientError::refused(addr, &resp));
        }
        Ok(resp)
    }

    /// Sends a oneway request.
    pub(crate) async fn oneway(&self, addr: &str, mut cmd: RemotingCommand) -> Result<()> {
        cmd.serialize = self.serialize;
        let conn = self.conn(addr).await?;
        conn.oneway(cmd).await.map_err(|e| {
            self.forget_if_closed(addr, &conn);
            e.into()
        })
    }

    fn forget_if_closed(&self, addr: &str, conn: &Arc<Connection>) {
        if conn.is_closed() {
            let slot = self.slot(addr);
            if slot.live().is_none() {
                slot.set(None);
            }
        }
    }

    /// Closes every connection.
    pub(crate) fn close_all(&self) {
        let slots: Vec<Arc<Slot>> = match self.slots.lock() {
            Ok(mut m) => m.drain().map(|(_, s)| s).collect(),
            Err(_) => Vec::new(),
        };
        for s in slots {
            if let Some(c) = s.live() {
                c.close();
            }
            s.set(None);
        }
    }
}

fn connect_error(addr: &str, why: String) -> ClientError {
    ClientError::Remoting(RemotingError::Connect {
        addr: addr.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, why),
    })
}
