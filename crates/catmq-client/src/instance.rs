//! The shared machinery of one producer, consumer or admin client: the connection pool, the
//! name-server client, the route cache, heartbeats, and the requests brokers send to clients.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use catmq_common::{properties, RecordView};
use catmq_protocol::body::{
    self, fastjson, ConsumerData, HeartbeatData, MessageQueue, ProducerData, ResetOffsetBody,
    TopicRouteData,
};
use catmq_protocol::headers::{
    ConsumerGroupRequestHeader, GetRouteInfoRequestHeader, ResetOffsetRequestHeader,
    UnregisterClientRequestHeader,
};
use catmq_protocol::{ExtFields, RemotingCommand, RequestCode, ResponseCode};
use catmq_remoting::{Connection, Handled, Handler};
use tokio::sync::watch;

use crate::config::{default_instance_name, ClientConfig};
use crate::error::{ClientError, Result};
use crate::producer::{answer_check, TransactionListener};
use crate::remote::Remote;
use crate::route::Route;

/// What the instance needs from a consumer that shares it.
pub(crate) trait ConsumerMember: Send + Sync + 'static {
    /// The group, model and subscriptions, for heartbeats.
    fn consumer_data(&self) -> ConsumerData;
    /// The broker says the group's members changed: rebalance soon.
    fn ids_changed(&self);
    /// An operator reset the group's offsets of `topic`.
    fn reset_offsets(&self, topic: &str, offsets: Vec<(MessageQueue, i64)>);
}

#[derive(Default)]
struct Members {
    producer_groups: HashSet<String>,
    /// Transaction producers' listeners, by group (they answer check-backs).
    checkers: HashMap<String, Arc<dyn TransactionListener>>,
    producer_topics: HashSet<String>,
    consumers: HashMap<String, Weak<dyn ConsumerMember>>,
}

struct CachedRoute {
    route: Arc<Route>,
    /// Built from the default topic's route because the name server does not know the topic.
    provisional: bool,
}

pub(crate) struct Inner {
    pub(crate) cfg: ClientConfig,
    pub(crate) client_id: String,
    pub(crate) ip: IpAddr,
    pub(crate) remote: Remote,
    routes: Mutex<HashMap<String, CachedRoute>>,
    members: Mutex<Members>,
    next_namesrv: AtomicUsize,
    stop: watch::Sender<bool>,
}

/// A handle on the shared machinery; clones share it.
#[derive(Clone)]
pub(crate) struct Instance(pub(crate) Arc<Inner>);

impl std::ops::Deref for Instance {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

struct Inbound(Weak<Inner>);

impl Handler for Inbound {
    fn handle(&self, conn: &Arc<Connection>, req: RemotingCommand) -> Handled {
        let oneway = req.is_oneway();
        let reply = match self.0.upgrade() {
            Some(inner) => inner.on_broker_request(conn, &req),
            None => RemotingCommand::error_to(&req, ResponseCode::SystemError, "client closed"),
        };
        if oneway {
            Handled::NoReply
        } else {
            reply.into()
        }
    }
}

impl Instance {
    /// Builds the instance, finds this host's address, and starts the refresh/heartbeat task.
    pub(crate) async fn start(cfg: ClientConfig) -> Result<Self> {
        if cfg.namesrv_addrs.is_empty() {
            return Err(ClientError::Invalid("no name server address given".into()));
        }
        let (stop, _) = watch::channel(false);
        let instance_name = cfg
            .instance_name
            .clone()
            .unwrap_or_else(default_instance_name);
        let ip: IpAddr = match &cfg.client_ip {
            Some(ip) => ip
                .parse()
                .map_err(|_| ClientError::Invalid(format!("client_ip {ip:?} is not an IP")))?,
            None => probe_local_ip(&cfg.namesrv_addrs, cfg.connect_timeout).await,
        };
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            remote: Remote::new(
                cfg.serialize,
                cfg.connect_timeout,
                Arc::new(Inbound(weak.clone())),
            ),
            client_id: format!("{ip}@{instance_name}"),
            ip,
            cfg,
            routes: Mutex::new(HashMap::new()),
            members: Mutex::new(Members::default()),
            next_namesrv: AtomicUsize::new(0),
            stop,
        });
        tokio::spawn(background(Arc::downgrade(&inner), inner.stop.subscribe()));
        Ok(Self(inner))
    }

    /// Stops the background task and closes every connection.
    pub(crate) fn close(&self) {
        let _ = self.stop.send(true);
        self.remote.close_all();
    }
}

impl Inner {
    /// A request to `addr` with the configured timeout; only a success is `Ok`.
    pub(crate) async fn call(
        &self,
        addr: &str,
        code: RequestCode,
        ext: ExtFields,
        body: Bytes,
    ) -> Result<RemotingCommand> {
        self.remote
            .call(addr, code, ext, body, self.cfg.request_timeout)
            .await
    }

    /// A request to `addr` with the configured timeout; the response may carry any code.
    pub(crate) async fn request(
        &self,
        addr: &str,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand> {
        self.remote
            .request(addr, cmd, self.cfg.request_timeout)
            .await
    }

    /// A request with `code`, `ext` and `body` to `addr` with the configured timeout; the
    /// response may carry any code (for callers that handle more than success).
    pub(crate) async fn ask(
        &self,
        addr: &str,
        code: RequestCode,
        ext: ExtFields,
        body: Bytes,
    ) -> Result<RemotingCommand> {
        self.request(addr, RemotingCommand::request(code.as_i32(), ext, body))
            .await
    }

    /// A request to the name servers, trying each in turn; the response may carry any code.
    pub(crate) async fn namesrv_request(
        &self,
        code: RequestCode,
        ext: ExtFields,
        body: Bytes,
    ) -> Result<RemotingCommand> {
        let addrs = &self.cfg.namesrv_addrs;
        let start = self.next_namesrv.load(Ordering::Relaxed);
        let mut errors = Vec::new();
        for i in 0..addrs.len() {
            let idx = (start + i) % addrs.len();
            let cmd = RemotingCommand::request(code.as_i32(), ext.clone(), body.clone());
            match self.request(&addrs[idx], cmd).await {
                Ok(r) => {
                    self.next_namesrv.store(idx, Ordering::Relaxed);
                    return Ok(r);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(ClientError::NoNameServer {
            tried: errors.join("; "),
        })
    }

    /// A successful name-server answer, or the refusal as an error.
    pub(crate) async fn namesrv_call(
        &self,
        code: RequestCode,
        ext: ExtFields,
        body: Bytes,
    ) -> Result<RemotingCommand> {
        let r = self.namesrv_request(code, ext, body).await?;
        if r.code != 0 {
            let addr = self.cfg.namesrv_addrs.join(";");
            return Err(ClientError::refused(&addr, &r));
        }
        Ok(r)
    }

    /// The route of `topic` from the name server, `None` if it does not know the topic.
    pub(crate) async fn fetch_route(&self, topic: &str) -> Result<Option<TopicRouteData>> {
        let h = GetRouteInfoRequestHeader {
            topic: topic.to_owned(),
            ..Default::default()
        };
        let r = self
            .namesrv_request(RequestCode::GetRouteinfoByTopic, h.to_ext(), Bytes::new())
            .await?;
        if r.code == ResponseCode::TopicNotExist.as_i32() {
            return Ok(None);
        }
        if r.code != 0 {
            return Err(ClientError::refused("name server", &r));
        }
        body::decode("route", &r.body)
            .map(Some)
            .map_err(|e| ClientError::decode("name server", e))
    }

    /// The route of `topic` (cached; fetched when missing).
    pub(crate) async fn route(&self, topic: &str) -> Result<Arc<Route>> {
        if let Some(r) = self.cached_route(topic) {
            return Ok(r);
        }
        self.refresh_route(topic).await
    }

    fn cached_route(&self, topic: &str) -> Option<Arc<Route>> {
        let g = self.routes.lock().ok()?;
        g.get(topic).map(|c| c.route.clone())
    }

    /// Fetches the route of `topic` again.
    pub(crate) async fn refresh_route(&self, topic: &str) -> Result<Arc<Route>> {
        match self.fetch_route(topic).await? {
            Some(data) => Ok(self.store_route(topic, Route::new(topic, data), false)),
            None => Err(ClientError::NoRoute {
                topic: topic.to_owned(),
                reason: "the name server does not know it".into(),
            }),
        }
    }

    fn store_route(&self, topic: &str, route: Route, provisional: bool) -> Arc<Route> {
        let route = Arc::new(route);
        if let Ok(mut g) = self.routes.lock() {
            g.insert(
                topic.to_owned(),
                CachedRoute {
                    route: route.clone(),
                    provisional,
                },
            );
        }
        route
    }

    /// The route to send to `topic`: its own, or (for a topic the broker will create on the
    /// first send) one built from `default_topic`'s route.
    pub(crate) async fn send_route(
        &self,
        topic: &str,
        default_topic: &str,
        queue_nums: i32,
    ) -> Result<Arc<Route>> {
        if let Some(r) = self.cached_route(topic) {
            return Ok(r);
        }
        // First use (or after a forget): keep this topic's route fresh from now on.
        self.note_producer_topic(topic);
        if let Some(data) = self.fetch_route(topic).await? {
            return Ok(self.store_route(topic, Route::new(topic, data), false));
        }
        match self.fetch_route(default_topic).await? {
            Some(data) => {
                Ok(self.store_route(topic, Route::from_default(topic, data, queue_nums), true))
            }
            None => Err(ClientError::NoRoute {
                topic: topic.to_owned(),
                reason: format!(
                    "the name server knows neither it nor the default topic {default_topic}"
                ),
            }),
        }
    }

    /// Drops a cached route so the next use fetches it again.
    pub(crate) fn forget_route(&self, topic: &str) {
        if let Ok(mut g) = self.routes.lock() {
            g.remove(topic);
        }
    }

    fn note_producer_topic(&self, topic: &str) {
        if let Ok(mut m) = self.members.lock() {
            m.producer_topics.insert(topic.to_owned());
        }
    }

    pub(crate) fn add_producer(&self, group: &str, checker: Option<Arc<dyn TransactionListener>>) {
        if let Ok(mut m) = self.members.lock() {
            m.producer_groups.insert(group.to_owned());
            if let Some(c) = checker {
                m.checkers.insert(group.to_owned(), c);
            }
        }
    }

    pub(crate) fn add_consumer(&self, group: &str, member: Weak<dyn ConsumerMember>) {
        if let Ok(mut m) = self.members.lock() {
            m.consumers.insert(group.to_owned(), member);
        }
    }

    fn consumer(&self, group: &str) -> Option<Arc<dyn ConsumerMember>> {
        self.members.lock().ok()?.consumers.get(group)?.upgrade()
    }

    fn consumers(&self) -> Vec<Arc<dyn ConsumerMember>> {
        match self.members.lock() {
            Ok(m) => m.consumers.values().filter_map(Weak::upgrade).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Every topic whose route this instance keeps fresh.
    fn topics_in_use(&self) -> Vec<String> {
        let mut topics: HashSet<String> = match self.members.lock() {
            Ok(m) => m.producer_topics.clone(),
            Err(_) => HashSet::new(),
        };
        for c in self.consumers() {
            topics.extend(
                c.consumer_data()
                    .subscription_data_set
                    .into_iter()
                    .map(|s| s.topic),
            );
        }
        topics.into_iter().collect()
    }

    /// Master addresses of every broker in the cached routes.
    pub(crate) fn broker_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = match self.routes.lock() {
            Ok(g) => g
                .values()
                .flat_map(|c| c.route.brokers.values().cloned())
                .collect(),
            Err(_) => Vec::new(),
        };
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// The master address of `broker_name`, from any cached route.
    pub(crate) fn addr_of(&self, broker_name: &str) -> Option<String> {
        let g = self.routes.lock().ok()?;
        g.values()
            .find_map(|c| c.route.addr(broker_name).map(str::to_owned))
    }

    /// The master address of a queue's broker: from any cached route, else from the topic's
    /// route fetched again.
    pub(crate) async fn queue_addr(&self, mq: &MessageQueue) -> Result<String> {
        if let Some(a) = self.addr_of(&mq.broker_name) {
            return Ok(a);
        }
        let route = self.refresh_route(&mq.topic).await?;
        route
            .addr(&mq.broker_name)
            .map(str::to_owned)
            .ok_or_else(|| ClientError::NoRoute {
                topic: mq.topic.clone(),
                reason: format!("broker {} is not in the route", mq.broker_name),
            })
    }

    /// Fetches the route of every topic in use again.
    pub(crate) async fn refresh_routes(&self) {
        for topic in self.topics_in_use() {
            match self.fetch_route(&topic).await {
                Ok(Some(data)) => {
                    let fresh = Route::new(&topic, data);
                    let changed = self.cached_route(&topic).is_none_or(|r| *r != fresh);
                    if changed {
                        self.store_route(&topic, fresh, false);
                    }
                }
                Ok(None) => {
                    let provisional = self
                        .routes
                        .lock()
                        .ok()
                        .and_then(|g| g.get(&topic).map(|c| c.provisional));
                    if provisional == Some(false) {
                        tracing::warn!(%topic, "the name server no longer knows topic; keeping its last route");
                    }
                }
                Err(e) => tracing::debug!(%topic, error = %e, "route refresh failed"),
            }
        }
    }

    fn heartbeat_data(&self) -> HeartbeatData {
        let producers = match self.members.lock() {
            Ok(m) => m.producer_groups.iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        HeartbeatData {
            client_id: self.client_id.clone(),
            producer_data_set: producers
                .into_iter()
                .map(|group_name| ProducerData { group_name })
                .collect(),
            consumer_data_set: self.consumers().iter().map(|c| c.consumer_data()).collect(),
            ..Default::default()
        }
    }

    /// Sends a heartbeat to every broker of the routes in use.
    pub(crate) async fn heartbeat(&self) {
        let data = self.heartbeat_data();
        if data.producer_data_set.is_empty() && data.consumer_data_set.is_empty() {
            return;
        }
        let body = body::encode(&data);
        for addr in self.broker_addrs() {
            let r = self
                .call(
                    &addr,
                    RequestCode::HeartBeat,
                    ExtFields::new(),
                    body.clone(),
                )
                .await;
            if let Err(e) = r {
                tracing::debug!(%addr, error = %e, "heartbeat failed");
            }
        }
    }

    /// Tells every broker this client left `producer_group` / `consumer_group`.
    pub(crate) async fn unregister(
        &self,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) {
        if let Ok(mut m) = self.members.lock() {
            if let Some(g) = producer_group {
                m.producer_groups.remove(g);
                m.checkers.remove(g);
            }
            if let Some(g) = consumer_group {
                m.consumers.remove(g);
            }
        }
        let h = UnregisterClientRequestHeader {
            client_id: self.client_id.clone(),
            producer_group: producer_group.map(str::to_owned),
            consumer_group: consumer_group.map(str::to_owned),
        };
        for addr in self.broker_addrs() {
            let r = self
                .call(
                    &addr,
                    RequestCode::UnregisterClient,
                    h.to_ext(),
                    Bytes::new(),
                )
                .await;
            if let Err(e) = r {
                tracing::debug!(%addr, error = %e, "unregister failed");
            }
        }
    }

    fn on_broker_request(&self, conn: &Arc<Connection>, req: &RemotingCommand) -> RemotingCommand {
        match RequestCode::from_i32(req.code) {
            Some(RequestCode::CheckTransactionState) => self.on_check(conn, req),
            Some(RequestCode::NotifyConsumerIdsChanged) => {
                if let Ok(h) = ConsumerGroupRequestHeader::from_ext(&req.ext) {
                    if let Some(c) = self.consumer(&h.consumer_group) {
                        c.ids_changed();
                    }
                }
                RemotingCommand::response_to(req, ResponseCode::Success)
            }
            Some(RequestCode::ResetConsumerClientOffset) => self.on_reset_offset(req),
            _ => {
                tracing::debug!(
                    code = req.code,
                    "request from a broker that this client does not serve"
                );
                RemotingCommand::error_to(
                    req,
                    ResponseCode::RequestCodeNotSupported,
                    format!("the CatMQ client does not serve request code {}", req.code),
                )
            }
        }
    }

    /// A check-back: the listener of the half message's group (`PGROUP`) answers it.
    fn on_check(&self, conn: &Arc<Connection>, req: &RemotingCommand) -> RemotingCommand {
        let group = RecordView::parse(&req.body)
            .ok()
            .and_then(|v| properties::get(v.properties()?, properties::PGROUP).map(str::to_owned))
            .unwrap_or_default();
        let listener = self
            .members
            .lock()
            .ok()
            .and_then(|m| m.checkers.get(&group).cloned());
        let Some(listener) = listener else {
            tracing::debug!(%group, "check-back for a group without a transaction listener here");
            return RemotingCommand::error_to(
                req,
                ResponseCode::SystemError,
                format!("no transaction producer of group {group:?} in this client"),
            );
        };
        match answer_check(conn.clone(), req, listener, group, self.cfg.serialize) {
            Ok(()) => RemotingCommand::response_to(req, ResponseCode::Success),
            Err(e) => RemotingCommand::error_to(req, ResponseCode::SystemError, e.to_string()),
        }
    }

    fn on_reset_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let parsed = ResetOffsetRequestHeader::from_ext(&req.ext)
            .map_err(|e| e.to_string())
            .and_then(|h| {
                let b: ResetOffsetBody =
                    fastjson::decode("reset offset", &req.body).map_err(|e| e.to_string())?;
                Ok((h, b))
            });
        match parsed {
            Ok((h, b)) => {
                if let Some(c) = self.consumer(&h.group) {
                    c.reset_offsets(&h.topic, b.offset_table.0.into_iter().collect());
                }
                RemotingCommand::response_to(req, ResponseCode::Success)
            }
            Err(e) => RemotingCommand::error_to(req, ResponseCode::SystemError, e),
        }
    }
}

/// This host's address as the name servers see it: the local end of a connection to one.
async fn probe_local_ip(addrs: &[String], timeout: Duration) -> IpAddr {
    for addr in addrs {
        let probe = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await;
        if let Ok(Ok(s)) = probe {
            if let Ok(local) = s.local_addr() {
                return local.ip();
            }
        }
    }
    IpAddr::from([127, 0, 0, 1])
}

async fn background(inner: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let Some((route_every, hb_every)) = inner
        .upgrade()
        .map(|i| (i.cfg.route_refresh_interval, i.cfg.heartbeat_interval))
    else {
        return;
    };
    let mut route_tick = tokio::time::interval(route_every.max(Duration::from_millis(10)));
    let mut hb_tick = tokio::time::interval(hb_every.max(Duration::from_millis(10)));
    route_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    hb_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = route_tick.tick() => {
                let Some(i) = inner.upgrade() else { return };
                i.refresh_routes().await;
            }
            _ = hb_tick.tick() => {
                let Some(i) = inner.upgrade() else { return };
                i.heartbeat().await;
            }
        }
    }
}
