//! GET_ROUTEINFO_BY_TOPIC body: which brokers serve a topic, with how many queues.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient;

/// Topic permission bits.
pub mod perm {
    /// Priority (unused).
    pub const PRIORITY: i32 = 0x8;
    /// Readable.
    pub const READ: i32 = 0x4;
    /// Writable.
    pub const WRITE: i32 = 0x2;
    /// Inherited (unused).
    pub const INHERIT: i32 = 0x1;
    /// Read and write.
    pub const READ_WRITE: i32 = READ | WRITE;
}

/// One broker group: its name, cluster and addresses by broker id (`"0"` is the master).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    pub broker_addrs: BTreeMap<String, String>,
    #[serde(deserialize_with = "lenient::string")]
    pub broker_name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub cluster: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub enable_acting_master: bool,
}

impl BrokerData {
    /// The master's address.
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get("0").map(String::as_str)
    }
}

/// A topic's queues on one broker group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    #[serde(deserialize_with = "lenient::string")]
    pub broker_name: String,
    #[serde(deserialize_with = "lenient::i32")]
    pub perm: i32,
    #[serde(deserialize_with = "lenient::i32")]
    pub read_queue_nums: i32,
    #[serde(deserialize_with = "lenient::i32")]
    pub topic_sys_flag: i32,
    #[serde(deserialize_with = "lenient::i32")]
    pub write_queue_nums: i32,
}

/// The route of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    #[serde(deserialize_with = "lenient::list")]
    pub broker_datas: Vec<BrokerData>,
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    #[serde(deserialize_with = "lenient::list")]
    pub queue_datas: Vec<QueueData>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    #[test]
    fn route_json_is_compact_and_standard() {
        let r = TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: [("0".to_owned(), "127.0.0.1:10911".to_owned())].into(),
                broker_name: "broker-a".into(),
                cluster: "DefaultCluster".into(),
                enable_acting_master: false,
            }],
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                perm: 6,
                read_queue_nums: 4,
                topic_sys_flag: 0,
                write_queue_nums: 4,
            }],
            ..Default::default()
        };
        let json = body::encode(&r);
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        let back: TopicRouteData = body::decode("route", &json).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.broker_datas[0].master_addr(), Some("127.0.0.1:10911"));
    }
}
