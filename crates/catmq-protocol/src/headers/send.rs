//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320).

use crate::ext::ExtFields;
use crate::Result;

/// The send request header. SEND_MESSAGE carries it under the Java field names; V2 and batch
/// sends under the single letters `a`..`n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageRequestHeader {
    pub producer_group: String,
    pub topic: String,
    pub default_topic: String,
    pub default_topic_queue_nums: i32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: Option<String>,
    pub reconsume_times: Option<i32>,
    pub unit_mode: Option<bool>,
    pub batch: Option<bool>,
    pub max_reconsume_times: Option<i32>,
    pub broker_name: Option<String>,
}

/// (field, V1 name, V2 name)
const NAMES: [(&str, &str); 14] = [
    ("producerGroup", "a"),
    ("topic", "b"),
    ("defaultTopic", "c"),
    ("defaultTopicQueueNums", "d"),
    ("queueId", "e"),
    ("sysFlag", "f"),
    ("bornTimestamp", "g"),
    ("flag", "h"),
    ("properties", "i"),
    ("reconsumeTimes", "j"),
    ("unitMode", "k"),
    ("maxReconsumeTimes", "l"),
    ("batch", "m"),
    ("brokerName", "n"),
];

impl SendMessageRequestHeader {
    /// Reads a SEND_MESSAGE header (Java field names).
    pub fn from_ext(ext: &ExtFields) -> Result<Self> {
        Self::read(ext, |i| NAMES[i].0)
    }

    /// Reads a SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE header (`a`..`n`).
    pub fn from_ext_v2(ext: &ExtFields) -> Result<Self> {
        Self::read(ext, |i| NAMES[i].1)
    }

    fn read(ext: &ExtFields, n: impl Fn(usize) -> &'static str) -> Result<Self> {
        Ok(Self {
            producer_group: ext.optional(n(0))?.unwrap_or_default(),
            topic: ext.required(n(1))?,
            default_topic: ext.optional(n(2))?.unwrap_or_default(),
            default_topic_queue_nums: ext.optional(n(3))?.unwrap_or(4),
            queue_id: ext.required(n(4))?,
            sys_flag: ext.optional(n(5))?.unwrap_or(0),
            born_timestamp: ext.optional(n(6))?.unwrap_or(0),
            flag: ext.optional(n(7))?.unwrap_or(0),
            properties: ext.optional(n(8))?,
            reconsume_times: ext.optional(n(9))?,
            unit_mode: ext.optional(n(10))?,
            max_reconsume_times: ext.optional(n(11))?,
            batch: ext.optional(n(12))?,
            broker_name: ext.optional(n(13))?,
        })
    }

    /// Writes the header under the V2 names (`v2`) or the Java names.
    pub fn to_ext(&self, v2: bool) -> ExtFields {
        let n = |i: usize| if v2 { NAMES[i].1 } else { NAMES[i].0 };
        let mut e = ExtFields::new();
        e.put(n(0), &self.producer_group);
        e.put(n(1), &self.topic);
        e.put(n(2), &self.default_topic);
        e.put(n(3), &self.default_topic_queue_nums);
        e.put(n(4), &self.queue_id);
        e.put(n(5), &self.sys_flag);
        e.put(n(6), &self.born_timestamp);
        e.put(n(7), &self.flag);
        e.put_opt(n(8), &self.properties);
        e.put_opt(n(9), &self.reconsume_times);
        e.put_opt(n(10), &self.unit_mode);
        e.put_opt(n(11), &self.max_reconsume_times);
        e.put_opt(n(12), &self.batch);
        e.put_opt(n(13), &self.broker_name);
        e
    }
}

crate::ext_header! {
    /// The send response header. `msgId` is the offset message id (comma-joined for a batch).
    pub struct SendMessageResponseHeader {
        msg_id: String = "msgId",
        queue_id: i32 = "queueId",
        queue_offset: i64 = "queueOffset",
        transaction_id: Option<String> = "transactionId",
        batch_uniq_id: Option<String> = "batchUniqId",
        msg_region: Option<String> = "MSG_REGION",
        trace_on: Option<String> = "TRACE_ON",
        recall_handle: Option<String> = "recallHandle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_names_carry_the_same_header() {
        let h = SendMessageRequestHeader {
            producer_group: "PG".into(),
            topic: "T".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 2,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            flag: 0,
            properties: Some("TAGS\u{1}A\u{2}".into()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: None,
            broker_name: Some("b".into()),
        };
        let v2 = h.to_ext(true);
        assert_eq!(v2.get("b"), Some("T"));
        assert_eq!(v2.get("e"), Some("2"));
        assert_eq!(SendMessageRequestHeader::from_ext_v2(&v2).unwrap(), h);
        let v1 = h.to_ext(false);
        assert_eq!(v1.get("topic"), Some("T"));
        assert_eq!(SendMessageRequestHeader::from_ext(&v1).unwrap(), h);
    }

    #[test]
    fn a_c_plus_plus_send_header_decodes() {
        // Numbers rendered as strings by the JSON decoder, booleans as "0".
        let ext: ExtFields = [
            ("producerGroup", "PG"),
            ("topic", "T"),
            ("defaultTopic", "TBW102"),
            ("defaultTopicQueueNums", "4"),
            ("queueId", "0"),
            ("sysFlag", "0"),
            ("bornTimestamp", "1"),
            ("flag", "0"),
            ("batch", "0"),
            ("unitMode", "0"),
            ("AccessKey", ""),
        ]
        .into_iter()
        .collect();
        let h = SendMessageRequestHeader::from_ext(&ext).unwrap();
        assert_eq!(
            (h.queue_id, h.batch, h.unit_mode),
            (0, Some(false), Some(false))
        );
        assert!(SendMessageRequestHeader::from_ext_v2(&ext).is_err());
    }
}
