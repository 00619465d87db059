//! Admin bodies: topic stats, consume stats, consumer connections, runtime info. The first two
//! are keyed by message queue and travel in fastjson's form (see [`super::fastjson`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fastjson::MqMap;
use super::lenient;
use super::{ConsumeFromWhere, ConsumeType, MessageModel, SubscriptionData};

/// One queue's offsets (GET_TOPIC_STATS_INFO).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicOffset {
    #[serde(deserialize_with = "lenient::i64")]
    pub min_offset: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub max_offset: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub last_update_timestamp: i64,
}

/// GET_TOPIC_STATS_INFO response body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicStatsTable {
    pub offset_table: MqMap<TopicOffset>,
}

/// One queue as a group consumes it (GET_CONSUME_STATS).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    /// The queue's max offset.
    #[serde(deserialize_with = "lenient::i64")]
    pub broker_offset: i64,
    /// The group's committed offset.
    #[serde(deserialize_with = "lenient::i64")]
    pub consumer_offset: i64,
    /// The offset of the group's latest pull.
    #[serde(deserialize_with = "lenient::i64")]
    pub pull_offset: i64,
    /// Store time of the last consumed message (ms), 0 if none.
    #[serde(deserialize_with = "lenient::i64")]
    pub last_timestamp: i64,
}

/// GET_CONSUME_STATS response body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeStats {
    pub offset_table: MqMap<OffsetWrapper>,
    /// Messages per second delivered to the group recently.
    pub consume_tps: f64,
}

impl ConsumeStats {
    /// Messages not yet consumed, over all queues.
    pub fn lag(&self) -> i64 {
        self.offset_table
            .0
            .values()
            .map(|w| (w.broker_offset - w.consumer_offset).max(0))
            .sum()
    }
}

/// One client connection of a group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConnectionInfo {
    #[serde(deserialize_with = "lenient::string")]
    pub client_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub client_addr: String,
    /// Java's `LanguageCode` name (`JAVA`, `CPP`, `RUST`, …).
    #[serde(deserialize_with = "lenient::string")]
    pub language: String,
    #[serde(deserialize_with = "lenient::i32")]
    pub version: i32,
}

/// GET_CONSUMER_CONNECTION_LIST response body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerConnection {
    #[serde(deserialize_with = "lenient::list")]
    pub connection_set: Vec<ConnectionInfo>,
    pub subscription_table: BTreeMap<String, SubscriptionData>,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

/// INVOKE_BROKER_TO_RESET_OFFSET response and RESET_CONSUMER_CLIENT_OFFSET request body: the
/// new offset of each queue.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResetOffsetBody {
    pub offset_table: MqMap<i64>,
}

/// GET_BROKER_RUNTIME_INFO response body: string key → string value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KvTable {
    pub table: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{fastjson, MessageQueue};

    #[test]
    fn consume_stats_round_trip_and_lag() {
        let mut s = ConsumeStats::default();
        let mq = MessageQueue {
            broker_name: "b".into(),
            queue_id: 0,
            topic: "T".into(),
        };
        s.offset_table.0.insert(
            mq,
            OffsetWrapper {
                broker_offset: 10,
                consumer_offset: 4,
                pull_offset: 6,
                last_timestamp: 1,
            },
        );
        assert_eq!(s.lag(), 6);
        let back: ConsumeStats = fastjson::decode("stats", &fastjson::encode(&s)).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn consumer_connection_reads_cpp_style_enums() {
        let c: ConsumerConnection = crate::body::decode(
            "cc",
            br#"{"connectionSet":[{"clientId":"c1","clientAddr":"1.2.3.4:5","language":"CPP","version":"1"}],
                "subscriptionTable":{"T":{"topic":"T","subString":"*"}},"consumeType":1,"messageModel":1,"consumeFromWhere":0}"#,
        )
        .unwrap();
        assert_eq!(c.connection_set[0].version, 1);
        assert_eq!(c.message_model, MessageModel::Clustering);
        assert_eq!(c.consume_type, ConsumeType::ConsumePassively);
    }
}
