//! Registration with the name servers: REGISTER_BROKER with every topic config at start, every
//! `register_interval`, and whenever topics change; UNREGISTER_BROKER at shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use catmq_common::record::body_crc;
use catmq_protocol::body::{self, RegisterBrokerBody};
use catmq_protocol::headers::{RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader};
use catmq_protocol::{RemotingCommand, RequestCode, ResponseCode};
use catmq_remoting::{Connection, Handled, Handler, RemotingError};

use crate::state::{lock, State};

/// Name servers send no requests to brokers; answer anything with NOT_SUPPORTED.
struct NoRequests;

impl Handler for NoRequests {
    fn handle(&self, _: &Arc<Connection>, req: RemotingCommand) -> Handled {
        crate::service::not_supported(&req).into()
    }
}

/// Open connections to the name servers, by address.
#[derive(Default)]
pub(crate) struct Links(HashMap<String, Arc<Connection>>);

impl Links {
    async fn get(&mut self, st: &State, addr: &str) -> Result<Arc<Connection>, RemotingError> {
        if let Some(c) = self.0.get(addr).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let connect = Connection::connect(addr, Arc::new(NoRequests), st.cfg.connection);
        let conn = tokio::time::timeout(st.cfg.register_timeout, connect)
            .await
            .map_err(|_| RemotingError::Timeout {
                peer: addr.to_owned(),
                timeout: st.cfg.register_timeout,
                code: RequestCode::RegisterBroker.as_i32(),
            })??;
        self.0.insert(addr.to_owned(), conn.clone());
        Ok(conn)
    }

    async fn call(
        &mut self,
        st: &State,
        addr: &str,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand, RemotingError> {
        let conn = self.get(st, addr).await?;
        let r = conn.request(cmd, st.cfg.register_timeout).await;
        if r.is_err() {
            conn.close();
            self.0.remove(addr);
        }
        r
    }

    fn close(self) {
        for c in self.0.into_values() {
            c.close();
        }
    }
}

fn registration(st: &State) -> RemotingCommand {
    let b = RegisterBrokerBody {
        topic_config_serialize_wrapper: lock(&st.topics).wrapper().clone(),
        filter_server_list: Vec::new(),
    };
    let body = body::encode(&b);
    let h = RegisterBrokerRequestHeader {
        broker_name: st.cfg.broker_name.clone(),
        broker_addr: st.addr.to_string(),
        cluster_name: st.cfg.cluster_name.clone(),
        ha_server_addr: Some(st.addr.to_string()),
        broker_id: st.cfg.broker_id,
        heartbeat_timeout_millis: Some(120_000),
        enable_acting_master: Some(false),
        compressed: Some(false),
        body_crc32: Some(body_crc(&body)),
    };
    RemotingCommand::request(RequestCode::RegisterBroker.as_i32(), h.to_ext(), body)
}

async fn register_all(st: &State, links: &mut Links) {
    for addr in &st.cfg.namesrv_addrs {
        let cmd = registration(st);
        match links.call(st, addr, cmd).await {
            Ok(r) if r.code == ResponseCode::Success.as_i32() => {
                tracing::debug!(namesrv = %addr, "registered");
            }
            Ok(r) => {
                tracing::warn!(namesrv = %addr, code = r.code, remark = ?r.remark, "registration refused")
            }
            Err(e) => tracing::warn!(namesrv = %addr, "registration failed: {e}"),
        }
    }
}

async fn unregister_all(st: &State, links: &mut Links) {
    for addr in &st.cfg.namesrv_addrs {
        let h = UnregisterBrokerRequestHeader {
            broker_name: st.cfg.broker_name.clone(),
            broker_addr: st.addr.to_string(),
            cluster_name: st.cfg.cluster_name.clone(),
            broker_id: st.cfg.broker_id,
        };
        let cmd = RemotingCommand::request(
            RequestCode::UnregisterBroker.as_i32(),
            h.to_ext(),
            bytes::Bytes::new(),
        );
        if let Err(e) = links.call(st, addr, cmd).await {
            tracing::warn!(namesrv = %addr, "unregistration failed: {e}");
        }
    }
}

/// The registration task: runs until shutdown, then unregisters.
/// Registers once with every name server (so a started broker is routable at once), and
/// returns the connections for [`run`].
pub(crate) async fn first(st: &State) -> Links {
    let mut links = Links::default();
    if !st.cfg.namesrv_addrs.is_empty() {
        register_all(st, &mut links).await;
    }
    links
}

/// Registers again every `register_interval` and when topics change; unregisters at shutdown.
pub(crate) async fn run(st: Arc<State>, mut links: Links) {
    if st.cfg.namesrv_addrs.is_empty() {
        return;
    }
    let mut shutdown = st.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = st.register_wake.notified() => {}
            _ = tokio::time::sleep(st.cfg.register_interval) => {}
            _ = shutdown.changed() => break,
        }
        register_all(&st, &mut links).await;
    }
    unregister_all(&st, &mut links).await;
    links.close();
}
