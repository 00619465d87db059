//! A topic's route as the client uses it: which queues can be written and read, and where each
//! broker is.

use std::collections::HashMap;

use catmq_protocol::body::{perm, MessageQueue, TopicRouteData};

/// Where a topic lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// The route as the name server gave it.
    pub data: TopicRouteData,
    /// Master address by broker name.
    pub brokers: HashMap<String, String>,
    /// Writable queues, ordered by broker name then queue id.
    pub write_queues: Vec<MessageQueue>,
    /// Readable queues, in the same order.
    pub read_queues: Vec<MessageQueue>,
}

impl Route {
    /// The route of `topic` from the name server's answer.
    pub fn new(topic: &str, data: TopicRouteData) -> Self {
        Self::build(topic, data, None)
    }

    /// A route for a topic the name server does not know yet, from the route of the default
    /// topic: the broker creates the topic on the first send, with at most `queue_nums` queues.
    pub fn from_default(topic: &str, data: TopicRouteData, queue_nums: i32) -> Self {
        Self::build(topic, data, Some(queue_nums))
    }

    fn build(topic: &str, mut data: TopicRouteData, cap: Option<i32>) -> Self {
        let brokers: HashMap<String, String> = data
            .broker_datas
            .iter()
            .filter_map(|b| Some((b.broker_name.clone(), b.master_addr()?.to_owned())))
            .collect();
        data.queue_datas
            .sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        let mut write_queues = Vec::new();
        let mut read_queues = Vec::new();
        for q in &data.queue_datas {
            if !brokers.contains_key(&q.broker_name) {
                continue;
            }
            let queues = |n: i32| {
                (0..cap.map_or(n, |c| n.min(c))).map(|id| MessageQueue {
                    topic: topic.to_owned(),
                    broker_name: q.broker_name.clone(),
                    queue_id: id,
                })
            };
            if q.perm & perm::WRITE != 0 {
                write_queues.extend(queues(q.write_queue_nums));
            }
            if q.perm & perm::READ != 0 {
                read_queues.extend(queues(q.read_queue_nums));
            }
        }
        Self {
            data,
            brokers,
            write_queues,
            read_queues,
        }
    }

    /// The master address of `broker_name`.
    pub fn addr(&self, broker_name: &str) -> Option<&str> {
        self.brokers.get(broker_name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catmq_protocol::body::{BrokerData, QueueData};

    fn data() -> TopicRouteData {
        let broker = |n: &str, addr: &str| BrokerData {
            broker_name: n.into(),
            cluster: "C".into(),
            broker_addrs: [("0".to_owned(), addr.to_owned())].into_iter().collect(),
            ..Default::default()
        };
        let queue = |n: &str, p: i32| QueueData {
            broker_name: n.into(),
            perm: p,
            read_queue_nums: 4,
            write_queue_nums: 2,
            topic_sys_flag: 0,
        };
        TopicRouteData {
            broker_datas: vec![broker("b", "h:2"), broker("a", "h:1")],
            queue_datas: vec![queue("b", perm::READ), queue("a", perm::READ_WRITE)],
            ..Default::default()
        }
    }

    #[test]
    fn queues_follow_permissions() {
        let r = Route::new("T", data());
        assert_eq!(r.write_queues.len(), 2);
        assert!(r.write_queues.iter().all(|q| q.broker_name == "a"));
        assert_eq!(r.read_queues.len(), 8);
        assert_eq!(r.read_queues[0].broker_name, "a");
        assert_eq!(r.addr("b"), Some("h:2"));
        let d = Route::from_default("New", data(), 1);
        assert_eq!(d.write_queues.len(), 1);
        assert_eq!(d.write_queues[0].topic, "New");
    }
}
