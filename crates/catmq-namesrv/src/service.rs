//! Request handling: remoting commands in, route-table operations, responses out.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use catmq_protocol::body::{self, RegisterBrokerBody};
use catmq_protocol::headers::{
    BrokerHeartbeatRequestHeader, DeleteTopicFromNamesrvRequestHeader, GetRouteInfoRequestHeader,
    GetTopicsByClusterRequestHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
    UnregisterBrokerRequestHeader,
};
use catmq_protocol::{ProtocolError, RemotingCommand, RequestCode, ResponseCode};
use catmq_remoting::{Connection, Handled, Handler};

use crate::route_table::{Registration, RouteTable};

/// Wall-clock milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The name server's request handler.
#[derive(Debug, Clone)]
pub struct Service {
    table: Arc<Mutex<RouteTable>>,
}

impl Service {
    pub(crate) fn new(table: Arc<Mutex<RouteTable>>) -> Self {
        Self { table }
    }

    fn with_table<T>(&self, f: impl FnOnce(&mut RouteTable) -> T) -> Option<T> {
        self.table.lock().ok().map(|mut t| f(&mut t))
    }

    /// Answers one request.
    pub fn respond(&self, req: &RemotingCommand) -> RemotingCommand {
        let result = match RequestCode::from_i32(req.code) {
            Some(RequestCode::GetRouteinfoByTopic) => self.route(req),
            Some(RequestCode::RegisterBroker) => self.register(req),
            Some(RequestCode::UnregisterBroker) => self.unregister(req),
            Some(RequestCode::BrokerHeartbeat) => self.heartbeat(req),
            Some(RequestCode::GetBrokerClusterInfo) => {
                Ok(self.ok_body(req, self.with_table(|t| body::encode(&t.cluster_info()))))
            }
            Some(RequestCode::GetAllTopicListFromNameserver) => {
                Ok(self.ok_body(req, self.with_table(|t| body::encode(&t.all_topics()))))
            }
            Some(RequestCode::GetTopicsByCluster) => self.topics_by_cluster(req),
            Some(RequestCode::DeleteTopicInNamesrv) => self.delete_topic(req),
            _ => Ok(RemotingCommand::error_to(
                req,
                ResponseCode::RequestCodeNotSupported,
                format!(
                    "request code {} is not supported by the CatMQ name server",
                    req.code
                ),
            )),
        };
        result.unwrap_or_else(|e| {
            RemotingCommand::error_to(req, ResponseCode::SystemError, format!("bad request: {e}"))
        })
    }

    fn ok_body(&self, req: &RemotingCommand, body: Option<Bytes>) -> RemotingCommand {
        match body {
            Some(b) => RemotingCommand::response_to(req, ResponseCode::Success).with_body(b),
            None => RemotingCommand::error_to(
                req,
                ResponseCode::SystemError,
                "name server state unavailable",
            ),
        }
    }

    fn route(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let h = GetRouteInfoRequestHeader::from_ext(&req.ext)?;
        let route = self.with_table(|t| t.route(&h.topic)).flatten();
        Ok(match route {
            Some(r) => {
                RemotingCommand::response_to(req, ResponseCode::Success).with_body(body::encode(&r))
            }
            None => RemotingCommand::error_to(
                req,
                ResponseCode::TopicNotExist,
                format!(
                    "No topic route info in name server for the topic: {}",
                    h.topic
                ),
            ),
        })
    }

    fn register(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let h = RegisterBrokerRequestHeader::from_ext(&req.ext)?;
        if h.compressed == Some(true) {
            return Ok(RemotingCommand::error_to(
                req,
                ResponseCode::SystemError,
                "compressed registration bodies are not supported; register with JSON",
            ));
        }
        let topics = if req.body.is_empty() {
            Some(Vec::new())
        } else {
            let b: RegisterBrokerBody = body::decode("register broker", &req.body)?;
            Some(
                b.topic_config_serialize_wrapper
                    .topic_config_table
                    .into_values()
                    .collect(),
            )
        };
        let reg = Registration {
            cluster: h.cluster_name,
            broker_name: h.broker_name,
            broker_addr: h.broker_addr,
            broker_id: h.broker_id,
            topics,
            timeout_ms: h.heartbeat_timeout_millis,
            enable_acting_master: h.enable_acting_master.unwrap_or(false),
        };
        let master = self.with_table(|t| t.register(reg, now_ms())).flatten();
        let resp = RegisterBrokerResponseHeader {
            ha_server_addr: master.clone(),
            master_addr: master,
        };
        Ok(RemotingCommand::response_to(req, ResponseCode::Success).with_ext(resp.to_ext()))
    }

    fn unregister(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let h = UnregisterBrokerRequestHeader::from_ext(&req.ext)?;
        self.with_table(|t| t.unregister(&h.broker_name, &h.broker_addr, h.broker_id));
        Ok(RemotingCommand::response_to(req, ResponseCode::Success))
    }

    fn heartbeat(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let h = BrokerHeartbeatRequestHeader::from_ext(&req.ext)?;
        let known = self
            .with_table(|t| t.heartbeat(&h.broker_addr, now_ms()))
            .unwrap_or(false);
        Ok(if known {
            RemotingCommand::response_to(req, ResponseCode::Success)
        } else {
            RemotingCommand::error_to(
                req,
                ResponseCode::SystemError,
                "broker not registered; register first",
            )
        })
    }

    fn topics_by_cluster(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let h = GetTopicsByClusterRequestHeader::from_ext(&req.ext)?;
        Ok(self.ok_body(
            req,
            self.with_table(|t| body::encode(&t.topics_of_cluster(&h.cluster))),
        ))
    }

    fn delete_topic(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let h = DeleteTopicFromNamesrvRequestHeader::from_ext(&req.ext)?;
        self.with_table(|t| t.delete_topic(&h.topic, h.cluster_name.as_deref()));
        Ok(RemotingCommand::response_to(req, ResponseCode::Success))
    }
}

impl Handler for Service {
    fn handle(&self, _conn: &Arc<Connection>, req: RemotingCommand) -> Handled {
        self.respond(&req).into()
    }
}
