//! HEART_BEAT body: a client's producer and consumer groups with their subscriptions.

use serde::{Deserialize, Serialize};

use super::lenient::{self, java_enum};

java_enum! {
    /// How a consumer gets messages.
    ConsumeType, "consume type" {
        /// Pull consumer.
        ConsumeActively = "CONSUME_ACTIVELY",
        /// Push consumer.
        ConsumePassively = "CONSUME_PASSIVELY",
        /// POP consumer.
        ConsumePop = "CONSUME_POP",
    }
}

java_enum! {
    /// Clustering (each message to one member) or broadcasting (to every member).
    MessageModel, "message model" {
        Broadcasting = "BROADCASTING",
        Clustering = "CLUSTERING",
    }
}

java_enum! {
    /// Where a group with no committed offset starts.
    ConsumeFromWhere, "consume from where" {
        ConsumeFromLastOffset = "CONSUME_FROM_LAST_OFFSET",
        ConsumeFromLastOffsetAndFromMinWhenBootFirst = "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
        ConsumeFromMinOffset = "CONSUME_FROM_MIN_OFFSET",
        ConsumeFromMaxOffset = "CONSUME_FROM_MAX_OFFSET",
        ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET",
        ConsumeFromTimestamp = "CONSUME_FROM_TIMESTAMP",
    }
}

/// One subscription: a topic and a tag expression (`*`, `A || B`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    #[serde(deserialize_with = "lenient::bool")]
    pub class_filter_mode: bool,
    #[serde(deserialize_with = "lenient::i32_list")]
    pub code_set: Vec<i32>,
    #[serde(deserialize_with = "lenient::string")]
    pub expression_type: String,
    #[serde(deserialize_with = "lenient::string")]
    pub sub_string: String,
    #[serde(deserialize_with = "lenient::i64")]
    pub sub_version: i64,
    #[serde(deserialize_with = "lenient::list")]
    pub tags_set: Vec<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub topic: String,
}

/// A consumer group as one client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    pub consume_from_where: ConsumeFromWhere,
    pub consume_type: ConsumeType,
    #[serde(deserialize_with = "lenient::string")]
    pub group_name: String,
    pub message_model: MessageModel,
    #[serde(deserialize_with = "lenient::list")]
    pub subscription_data_set: Vec<SubscriptionData>,
    #[serde(deserialize_with = "lenient::bool")]
    pub unit_mode: bool,
}

/// A producer group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    #[serde(deserialize_with = "lenient::string")]
    pub group_name: String,
}

/// The heartbeat of one client.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatData {
    #[serde(rename = "clientID", deserialize_with = "lenient::string")]
    pub client_id: String,
    #[serde(deserialize_with = "lenient::list")]
    pub consumer_data_set: Vec<ConsumerData>,
    #[serde(deserialize_with = "lenient::i32")]
    pub heartbeat_fingerprint: i32,
    #[serde(deserialize_with = "lenient::list")]
    pub producer_data_set: Vec<ProducerData>,
    #[serde(deserialize_with = "lenient::bool")]
    pub without_sub: bool,
}

/// GET_CONSUMER_LIST_BY_GROUP response body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerListBody {
    #[serde(deserialize_with = "lenient::list")]
    pub consumer_id_list: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    #[test]
    fn java_heartbeat_decodes() {
        let j = r#"{"clientID":"10.0.0.5@12345#1","heartbeatFingerprint":0,"withoutSub":false,
          "producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"PID_X"}],
          "consumerDataSet":[{"groupName":"GID_X","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",
            "consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","unitMode":false,
            "subscriptionDataSet":[{"topic":"TopicTest","subString":"TagA || TagB","tagsSet":["TagA","TagB"],
              "codeSet":[2598919,2598920],"subVersion":1700000000000,"expressionType":"TAG","classFilterMode":false}]}]}"#;
        let h: HeartbeatData = body::decode("heartbeat", j.as_bytes()).unwrap();
        assert_eq!(h.client_id, "10.0.0.5@12345#1");
        assert_eq!(h.producer_data_set.len(), 2);
        let c = &h.consumer_data_set[0];
        assert_eq!(c.consume_type, ConsumeType::ConsumePassively);
        assert_eq!(c.message_model, MessageModel::Clustering);
        assert_eq!(c.subscription_data_set[0].code_set, vec![2598919, 2598920]);
        let back: HeartbeatData = body::decode("heartbeat", &body::encode(&h)).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn c_plus_plus_heartbeat_with_ordinals_decodes() {
        let j = r#"{"clientID":"c","consumerDataSet":[{"groupName":"G","consumeType":1,"messageModel":1,
            "consumeFromWhere":0,"subscriptionDataSet":[{"topic":"T","subString":"*","subVersion":"17"}]}],
            "producerDataSet":null}"#;
        let h: HeartbeatData = body::decode("heartbeat", j.as_bytes()).unwrap();
        let c = &h.consumer_data_set[0];
        assert_eq!(c.consume_type, ConsumeType::ConsumePassively);
        assert_eq!(c.message_model, MessageModel::Clustering);
        assert_eq!(
            c.consume_from_where,
            ConsumeFromWhere::ConsumeFromLastOffset
        );
        assert_eq!(c.subscription_data_set[0].sub_version, 17);
        assert!(h.producer_data_set.is_empty());
        assert!(body::decode::<HeartbeatData>(
            "heartbeat",
            br#"{"consumerDataSet":[{"consumeType":9}]}"#
        )
        .is_err());
    }
}
