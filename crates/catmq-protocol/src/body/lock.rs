//! LOCK_BATCH_MQ / UNLOCK_BATCH_MQ bodies, and the message queue triple.

use serde::{Deserialize, Serialize};

use super::lenient;

/// A queue: topic, broker name and queue id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    #[serde(deserialize_with = "lenient::string")]
    pub broker_name: String,
    #[serde(deserialize_with = "lenient::i32")]
    pub queue_id: i32,
    #[serde(deserialize_with = "lenient::string")]
    pub topic: String,
}

/// LOCK_BATCH_MQ and UNLOCK_BATCH_MQ request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchRequestBody {
    #[serde(deserialize_with = "lenient::string")]
    pub client_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub consumer_group: String,
    #[serde(deserialize_with = "lenient::list")]
    pub mq_set: Vec<MessageQueue>,
    #[serde(deserialize_with = "lenient::bool")]
    pub only_this_broker: bool,
}

/// LOCK_BATCH_MQ response body: the queues the client now holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet", deserialize_with = "lenient::list")]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}
