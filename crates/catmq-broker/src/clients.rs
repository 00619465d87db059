//! Producer and consumer groups as clients announce them with HEART_BEAT: which connections
//! belong to which group, and each consumer group's subscriptions. A connection that closes, or
//! stays silent longer than the expiry, leaves its groups.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use catmq_protocol::body::{
    ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel, SubscriptionData,
};
use catmq_protocol::LanguageCode;
use catmq_remoting::Connection;

/// One client connection in a group.
#[derive(Debug, Clone)]
pub struct ClientChannel {
    /// The client's id (`ip@pid#…`).
    pub client_id: String,
    /// Its connection to this broker.
    pub conn: Arc<Connection>,
    /// Client language.
    pub language: LanguageCode,
    /// Client version.
    pub version: i32,
    /// Last heartbeat.
    pub last_seen: Instant,
}

/// A consumer group: its settings and subscriptions (as its latest heartbeat said) and members.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
    /// topic → subscription
    pub subscriptions: BTreeMap<String, SubscriptionData>,
    /// connection id → member
    pub channels: HashMap<u64, ClientChannel>,
}

impl ConsumerGroup {
    /// Member client ids, sorted and without duplicates.
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .channels
            .values()
            .map(|c| c.client_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Every group with a live member on this broker.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    producers: HashMap<String, HashMap<u64, ClientChannel>>,
    consumers: HashMap<String, ConsumerGroup>,
}

impl ClientRegistry {
    /// Records a consumer's heartbeat; true if the group's member ids changed.
    pub fn register_consumer(&mut self, data: &ConsumerData, chan: ClientChannel) -> bool {
        let group = self
            .consumers
            .entry(data.group_name.clone())
            .or_insert_with(|| ConsumerGroup {
                consume_type: data.consume_type,
                message_model: data.message_model,
                consume_from_where: data.consume_from_where,
                subscriptions: BTreeMap::new(),
                channels: HashMap::new(),
            });
        group.consume_type = data.consume_type;
        group.message_model = data.message_model;
        group.consume_from_where = data.consume_from_where;
        group.subscriptions = data
            .subscription_data_set
            .iter()
            .map(|s| (s.topic.clone(), s.clone()))
            .collect();
        let before = group.client_ids();
        group.channels.insert(chan.conn.id(), chan);
        before != group.client_ids()
    }

    /// Records a producer's heartbeat.
    pub fn register_producer(&mut self, group: &str, chan: ClientChannel) {
        self.producers
            .entry(group.to_owned())
            .or_default()
            .insert(chan.conn.id(), chan);
    }

    /// Removes a connection from a consumer group; true if the member ids changed.
    pub fn unregister_consumer(&mut self, group: &str, conn_id: u64) -> bool {
        let Some(g) = self.consumers.get_mut(group) else {
            return false;
        };
        let before = g.client_ids();
        g.channels.remove(&conn_id);
        let changed = before != g.client_ids();
        if g.channels.is_empty() {
            self.consumers.remove(group);
        }
        changed
    }

    /// Removes a connection from a producer group.
    pub fn unregister_producer(&mut self, group: &str, conn_id: u64) {
        if let Some(p) = self.producers.get_mut(group) {
            p.remove(&conn_id);
            if p.is_empty() {
                self.producers.remove(group);
            }
        }
    }

    /// Removes a connection everywhere; returns the consumer groups whose members changed.
    pub fn connection_closed(&mut self, conn_id: u64) -> Vec<String> {
        let groups: Vec<String> = self.producers.keys().cloned().collect();
        for g in groups {
            self.unregister_producer(&g, conn_id);
        }
        let groups: Vec<String> = self
            .consumers
            .iter()
            .filter(|(_, g)| g.channels.contains_key(&conn_id))
            .map(|(n, _)| n.clone())
            .collect();
        groups
            .into_iter()
            .filter(|g| self.unregister_consumer(g, conn_id))
            .collect()
    }

    /// Connections silent for longer than `max_idle` at `now`: they are removed, and returned
    /// to be closed, with the consumer groups whose members changed.
    pub fn expire(
        &mut self,
        now: Instant,
        max_idle: Duration,
    ) -> (Vec<Arc<Connection>>, Vec<String>) {
        let stale = |c: &ClientChannel| now.saturating_duration_since(c.last_seen) > max_idle;
        let mut dead: HashMap<u64, Arc<Connection>> = HashMap::new();
        for chan in self
            .producers
            .values()
            .flat_map(|p| p.values())
            .chain(self.consumers.values().flat_map(|g| g.channels.values()))
        {
            if stale(chan) {
                dead.insert(chan.conn.id(), chan.conn.clone());
            }
        }
        let mut changed = Vec::new();
        for id in dead.keys() {
            changed.extend(self.connection_closed(*id));
        }
        changed.sort();
        changed.dedup();
        (dead.into_values().collect(), changed)
    }

    /// A consumer group with live members.
    pub fn consumer_group(&self, group: &str) -> Option<&ConsumerGroup> {
        self.consumers.get(group)
    }

    /// Names of consumer groups with live members.
    pub fn consumer_groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.consumers.keys().cloned().collect();
        v.sort();
        v
    }

    /// The connections of a consumer group.
    pub fn consumer_connections(&self, group: &str) -> Vec<Arc<Connection>> {
        self.consumers
            .get(group)
            .map(|g| g.channels.values().map(|c| c.conn.clone()).collect())
            .unwrap_or_default()
    }

    /// The members of a producer group.
    pub fn producer_channels(&self, group: &str) -> Vec<ClientChannel> {
        self.producers
            .get(group)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn conn_pair() -> (Arc<Connection>, Arc<Connection>) {
        struct Nop;
        impl catmq_remoting::Handler for Nop {
            fn handle(
                &self,
                _: &Arc<Connection>,
                _: catmq_protocol::RemotingCommand,
            ) -> catmq_remoting::Handled {
                catmq_remoting::Handled::NoReply
            }
        }
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let opts = catmq_remoting::ConnectionOptions::default();
        let (a, b) = tokio::join!(Connection::connect(&addr, Arc::new(Nop), opts), l.accept());
        let b = Connection::start(b.unwrap().0, Arc::new(Nop), opts).unwrap();
        (a.unwrap(), b)
    }

    fn chan(id: &str, conn: &Arc<Connection>, at: Instant) -> ClientChannel {
        ClientChannel {
            client_id: id.into(),
            conn: conn.clone(),
            language: LanguageCode::Java,
            version: 1,
            last_seen: at,
        }
    }

    #[tokio::test]
    async fn membership_changes_on_join_leave_close_and_expiry() {
        let (c1, c2) = conn_pair().await;
        let mut r = ClientRegistry::default();
        let t0 = Instant::now();
        let data = ConsumerData {
            group_name: "G".into(),
            subscription_data_set: vec![SubscriptionData {
                topic: "T".into(),
                sub_string: "*".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(r.register_consumer(&data, chan("a", &c1, t0)));
        assert!(!r.register_consumer(&data, chan("a", &c1, t0)));
        assert!(r.register_consumer(&data, chan("b", &c2, t0)));
        r.register_producer("P", chan("a", &c1, t0));
        assert_eq!(r.consumer_group("G").unwrap().client_ids(), vec!["a", "b"]);
        assert!(r
            .consumer_group("G")
            .unwrap()
            .subscriptions
            .contains_key("T"));
        assert!(r.unregister_consumer("G", c2.id()));
        assert_eq!(r.connection_closed(c1.id()), vec!["G".to_string()]);
        assert!(r.consumer_group("G").is_none() && r.producer_channels("P").is_empty());

        r.register_consumer(&data, chan("a", &c1, t0));
        r.register_consumer(&data, chan("b", &c2, t0 + Duration::from_secs(100)));
        let (dead, changed) = r.expire(t0 + Duration::from_secs(130), Duration::from_secs(120));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id(), c1.id());
        assert_eq!(changed, vec!["G".to_string()]);
        assert_eq!(r.consumer_group("G").unwrap().client_ids(), vec!["b"]);
    }
}
