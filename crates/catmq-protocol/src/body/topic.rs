//! Topic and subscription-group configs, and the broker registration body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient;

/// A topic's configuration on a broker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    pub attributes: BTreeMap<String, String>,
    #[serde(deserialize_with = "lenient::bool")]
    pub order: bool,
    #[serde(deserialize_with = "lenient::i32")]
    pub perm: i32,
    #[serde(deserialize_with = "lenient::i32")]
    pub read_queue_nums: i32,
    #[serde(deserialize_with = "lenient::string")]
    pub topic_filter_type: String,
    #[serde(deserialize_with = "lenient::string")]
    pub topic_name: String,
    #[serde(deserialize_with = "lenient::i32")]
    pub topic_sys_flag: i32,
    #[serde(deserialize_with = "lenient::i32")]
    pub write_queue_nums: i32,
}

/// A version stamp of a broker's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    #[serde(deserialize_with = "lenient::i64")]
    pub counter: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub state_version: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub timestamp: i64,
}

/// Every topic config of a broker (GET_ALL_TOPIC_CONFIG body, and inside registrations).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    pub data_version: DataVersion,
    pub topic_config_table: BTreeMap<String, TopicConfig>,
}

/// REGISTER_BROKER body (uncompressed JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisterBrokerBody {
    #[serde(deserialize_with = "lenient::list")]
    pub filter_server_list: Vec<String>,
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
}

/// A subscription group's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    #[serde(deserialize_with = "lenient::i64")]
    pub broker_id: i64,
    #[serde(deserialize_with = "lenient::bool")]
    pub consume_broadcast_enable: bool,
    #[serde(deserialize_with = "lenient::bool")]
    pub consume_enable: bool,
    #[serde(deserialize_with = "lenient::bool")]
    pub consume_from_min_enable: bool,
    #[serde(deserialize_with = "lenient::bool")]
    pub consume_message_orderly: bool,
    #[serde(deserialize_with = "lenient::string")]
    pub group_name: String,
    #[serde(deserialize_with = "lenient::bool")]
    pub notify_consumer_ids_changed_enable: bool,
    #[serde(deserialize_with = "lenient::i32")]
    pub retry_max_times: i32,
    #[serde(deserialize_with = "lenient::i32")]
    pub retry_queue_nums: i32,
    #[serde(deserialize_with = "lenient::i64")]
    pub which_broker_when_consume_slowly: i64,
}

impl Default for SubscriptionGroupConfig {
    /// Java's defaults: consume enabled, clustering, 1 retry queue, 16 retries.
    fn default() -> Self {
        Self {
            broker_id: 0,
            consume_broadcast_enable: true,
            consume_enable: true,
            consume_from_min_enable: true,
            consume_message_orderly: false,
            group_name: String::new(),
            notify_consumer_ids_changed_enable: true,
            retry_max_times: 16,
            retry_queue_nums: 1,
            which_broker_when_consume_slowly: 1,
        }
    }
}

/// Every subscription group of a broker (GET_ALL_SUBSCRIPTIONGROUP_CONFIG body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupWrapper {
    pub data_version: DataVersion,
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
}
