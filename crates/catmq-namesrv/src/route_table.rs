//! The name server's state, with no I/O: registered brokers, their liveness, and the queues each
//! serves per topic. Time is passed in (ms), so expiry is tested without waiting.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use catmq_protocol::body::{
    BrokerData, ClusterInfo, QueueData, TopicConfig, TopicList, TopicRouteData,
};

/// How long a broker may stay silent before it leaves every route (Java: 120 s).
pub const DEFAULT_BROKER_TIMEOUT_MS: i64 = 120_000;

/// One broker process's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: i64,
    /// Its topics; `None` keeps the topics of the previous registration (a heartbeat).
    pub topics: Option<Vec<TopicConfig>>,
    /// Silence after which it expires; `None` for the default.
    pub timeout_ms: Option<i64>,
    pub enable_acting_master: bool,
}

#[derive(Debug, Clone)]
struct Live {
    broker_name: String,
    broker_id: i64,
    cluster: String,
    last_ms: i64,
    timeout_ms: i64,
}

/// Brokers, liveness and topic routes.
#[derive(Debug, Default)]
pub struct RouteTable {
    brokers: BTreeMap<String, BrokerData>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<String, Live>,
    /// topic → broker name → queues.
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a registration at time `now_ms`; returns the master's address for the broker
    /// name (the registering broker's when it is the master).
    pub fn register(&mut self, r: Registration, now_ms: i64) -> Option<String> {
        self.clusters
            .entry(r.cluster.clone())
            .or_default()
            .insert(r.broker_name.clone());
        let bd = self
            .brokers
            .entry(r.broker_name.clone())
            .or_insert_with(|| BrokerData {
                broker_name: r.broker_name.clone(),
                cluster: r.cluster.clone(),
                ..Default::default()
            });
        bd.cluster = r.cluster.clone();
        bd.enable_acting_master = r.enable_acting_master;
        // One address per id: a broker that moved replaces its old address.
        let id = r.broker_id.to_string();
        bd.broker_addrs
            .retain(|k, a| *k == id || *a != r.broker_addr);
        if let Some(old) = bd.broker_addrs.insert(id, r.broker_addr.clone()) {
            if old != r.broker_addr {
                self.live.remove(&old);
            }
        }
        let master = bd.master_addr().map(str::to_owned);
        if let (Some(topics), 0) = (&r.topics, r.broker_id) {
            self.replace_topics(&r.broker_name, topics);
        }
        self.live.insert(
            r.broker_addr.clone(),
            Live {
                broker_name: r.broker_name,
                broker_id: r.broker_id,
                cluster: r.cluster,
                last_ms: now_ms,
                timeout_ms: r
                    .timeout_ms
                    .filter(|t| *t > 0)
                    .unwrap_or(DEFAULT_BROKER_TIMEOUT_MS),
            },
        );
        master
    }

    /// The master's topics become exactly `topics` for this broker name.
    fn replace_topics(&mut self, broker_name: &str, topics: &[TopicConfig]) {
        let names: BTreeSet<&str> = topics.iter().map(|t| t.topic_name.as_str()).collect();
        for (topic, per_broker) in self.topics.iter_mut() {
            if !names.contains(topic.as_str()) {
                per_broker.remove(broker_name);
            }
        }
        for t in topics {
            self.topics.entry(t.topic_name.clone()).or_default().insert(
                broker_name.to_owned(),
                QueueData {
                    broker_name: broker_name.to_owned(),
                    perm: t.perm,
                    read_queue_nums: t.read_queue_nums,
                    topic_sys_flag: t.topic_sys_flag,
                    write_queue_nums: t.write_queue_nums,
                },
            );
        }
        self.topics.retain(|_, b| !b.is_empty());
    }

    /// Keeps a registered broker alive; false when it is not registered (it must register).
    pub fn heartbeat(&mut self, broker_addr: &str, now_ms: i64) -> bool {
        match self.live.get_mut(broker_addr) {
            Some(l) => {
                l.last_ms = now_ms;
                true
            }
            None => false,
        }
    }

    /// Removes a broker process (its address) and, when it was the last of its name, the
    /// name's queues from every topic.
    pub fn unregister(&mut self, broker_name: &str, broker_addr: &str, broker_id: i64) {
        self.live.remove(broker_addr);
        let id = broker_id.to_string();
        let mut gone = false;
        if let Some(bd) = self.brokers.get_mut(broker_name) {
            if bd.broker_addrs.get(&id).map(String::as_str) == Some(broker_addr) {
                bd.broker_addrs.remove(&id);
            }
            gone = bd.broker_addrs.is_empty();
        }
        if gone || broker_id == 0 {
            // Without its master a broker group serves no routes (no slave reads here).
            if let Some(bd) = self.brokers.remove(broker_name) {
                for (id, addr) in &bd.broker_addrs {
                    if id != "0" {
                        self.live.remove(addr);
                    }
                }
                if let Some(names) = self.clusters.get_mut(&bd.cluster) {
                    names.remove(broker_name);
                }
            }
            self.clusters.retain(|_, n| !n.is_empty());
            for per_broker in self.topics.values_mut() {
                per_broker.remove(broker_name);
            }
            self.topics.retain(|_, b| !b.is_empty());
        }
    }

    /// Removes every broker silent for longer than its timeout; returns their addresses.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let dead: Vec<(String, String, i64)> = self
            .live
            .iter()
            .filter(|(_, l)| now_ms - l.last_ms > l.timeout_ms)
            .map(|(a, l)| (a.clone(), l.broker_name.clone(), l.broker_id))
            .collect();
        for (addr, name, id) in &dead {
            tracing::warn!(broker = %name, addr = %addr, "broker expired: no registration or heartbeat within its timeout");
            self.unregister(name, addr, *id);
        }
        dead.into_iter().map(|(a, _, _)| a).collect()
    }

    /// The route of `topic`, or `None` when no live broker serves it.
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let per_broker = self.topics.get(topic)?;
        let queue_datas: Vec<QueueData> = per_broker
            .values()
            .filter(|q| self.brokers.contains_key(&q.broker_name))
            .cloned()
            .collect();
        if queue_datas.is_empty() {
            return None;
        }
        let broker_datas = queue_datas
            .iter()
            .filter_map(|q| self.brokers.get(&q.broker_name).cloned())
            .collect();
        Some(TopicRouteData {
            broker_datas,
            queue_datas,
            ..Default::default()
        })
    }

    /// Every broker by name and broker names by cluster.
    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self.clusters.clone(),
        }
    }

    /// Every topic with a route.
    pub fn all_topics(&self) -> TopicList {
        TopicList {
            broker_addr: None,
            topic_list: self.topics.keys().cloned().collect(),
        }
    }

    /// The topics served by brokers of `cluster`.
    pub fn topics_of_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster);
        let topic_list = self
            .topics
            .iter()
            .filter(|(_, b)| b.keys().any(|n| names.is_some_and(|s| s.contains(n))))
            .map(|(t, _)| t.clone())
            .collect();
        TopicList {
            broker_addr: None,
            topic_list,
        }
    }

    /// Removes `topic` (from the brokers of `cluster` only, when given).
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster.and_then(|c| self.clusters.get(c)) {
            Some(names) => {
                if let Some(b) = self.topics.get_mut(topic) {
                    b.retain(|n, _| !names.contains(n));
                }
            }
            None if cluster.is_some() => {}
            None => {
                self.topics.remove(topic);
            }
        }
        self.topics.retain(|_, b| !b.is_empty());
    }

    /// Addresses of live brokers (for diagnostics).
    pub fn live_brokers(&self) -> Vec<String> {
        let mut v: Vec<String> = self.live.keys().cloned().collect();
        v.sort();
        v
    }

    /// The cluster a live broker address belongs to.
    pub fn cluster_of(&self, addr: &str) -> Option<&str> {
        self.live.get(addr).map(|l| l.cluster.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, queues: i32) -> TopicConfig {
        TopicConfig {
            topic_name: name.into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: 6,
            ..Default::default()
        }
    }

    fn reg(name: &str, addr: &str, id: i64, topics: Option<Vec<TopicConfig>>) -> Registration {
        Registration {
            cluster: "C".into(),
            broker_name: name.into(),
            broker_addr: addr.into(),
            broker_id: id,
            topics,
            timeout_ms: None,
            enable_acting_master: false,
        }
    }

    #[test]
    fn routes_follow_registrations() {
        let mut t = RouteTable::new();
        assert_eq!(
            t.register(
                reg("a", "h:1", 0, Some(vec![topic("T", 4), topic("TBW102", 8)])),
                0
            ),
            Some("h:1".into())
        );
        t.register(reg("b", "h:2", 0, Some(vec![topic("T", 2)])), 0);
        let r = t.route("T").unwrap();
        assert_eq!(r.queue_datas.len(), 2);
        assert_eq!(r.broker_datas.len(), 2);
        assert_eq!(r.broker_datas[0].master_addr(), Some("h:1"));
        assert!(t.route("nope").is_none());
        // A new registration without T removes b's queues of T.
        t.register(reg("b", "h:2", 0, Some(vec![])), 1);
        assert_eq!(t.route("T").unwrap().queue_datas.len(), 1);
        // A heartbeat-style registration keeps the topics.
        t.register(reg("a", "h:1", 0, None), 2);
        assert_eq!(
            t.route("TBW102").unwrap().queue_datas[0].write_queue_nums,
            8
        );
        assert_eq!(t.all_topics().topic_list.len(), 2);
        assert_eq!(t.topics_of_cluster("C").topic_list.len(), 2);
        assert!(t.topics_of_cluster("X").topic_list.is_empty());
        let ci = t.cluster_info();
        assert_eq!(ci.cluster_addr_table["C"].len(), 2);
    }

    #[test]
    fn silent_brokers_expire_and_leave_every_route() {
        let mut t = RouteTable::new();
        t.register(reg("a", "h:1", 0, Some(vec![topic("T", 4)])), 0);
        t.register(reg("b", "h:2", 0, Some(vec![topic("T", 4)])), 0);
        assert!(t.heartbeat("h:2", 100_000));
        assert!(!t.heartbeat("h:9", 100_000));
        assert!(t.expire(DEFAULT_BROKER_TIMEOUT_MS).is_empty());
        assert_eq!(
            t.expire(DEFAULT_BROKER_TIMEOUT_MS + 1),
            vec!["h:1".to_owned()]
        );
        let r = t.route("T").unwrap();
        assert_eq!(r.queue_datas.len(), 1);
        assert_eq!(r.queue_datas[0].broker_name, "b");
        assert!(!t.cluster_info().broker_addr_table.contains_key("a"));
        t.expire(300_000);
        assert!(t.route("T").is_none());
        assert!(t.cluster_info().cluster_addr_table.is_empty());
    }

    #[test]
    fn unregister_and_delete_topic() {
        let mut t = RouteTable::new();
        t.register(
            reg("a", "h:1", 0, Some(vec![topic("T", 4), topic("U", 1)])),
            0,
        );
        t.delete_topic("U", Some("other"));
        assert!(t.route("U").is_some());
        t.delete_topic("U", Some("C"));
        assert!(t.route("U").is_none());
        t.unregister("a", "h:1", 0);
        assert!(t.route("T").is_none());
        assert!(t.live_brokers().is_empty());
    }
}
