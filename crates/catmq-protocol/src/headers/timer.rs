//! Scheduled messages: RECALL_MESSAGE (370), the recall handle, and CatMQ's timer lookup.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;

crate::ext_header! {
    /// RECALL_MESSAGE request: cancel a scheduled message before it is due.
    pub struct RecallMessageRequestHeader {
        producer_group: Option<String> = "producerGroup",
        topic: String = "topic",
        recall_handle: String = "recallHandle",
    }
}

crate::ext_header! {
    /// RECALL_MESSAGE response: the unique id of the recalled message.
    pub struct RecallMessageResponseHeader {
        msg_id: String = "msgId",
    }
}

crate::ext_header! {
    /// CATMQ_QUERY_TIMER_MESSAGE request: where the scheduled message `msgId` of `topic` is.
    pub struct QueryTimerMessageRequestHeader {
        topic: String = "topic",
        msg_id: String = "msgId",
    }
}

/// What a recall handle names: Apache RocketMQ 5's `RecallMessageHandle` (version `v1`), the
/// URL-safe Base64 of `v1 <topic> <brokerName> <timestamp> <uniqueId>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallHandle {
    pub topic: String,
    pub broker_name: String,
    /// Due time + 1 as the broker gave it (informative: the broker looks the message up).
    pub timestamp: String,
    pub msg_id: String,
}

impl RecallHandle {
    /// The handle string.
    pub fn encode(&self) -> String {
        let raw = format!(
            "v1 {} {} {} {}",
            self.topic, self.broker_name, self.timestamp, self.msg_id
        );
        URL_SAFE.encode(raw.as_bytes())
    }

    /// Reads a handle (five or more space-separated items after decoding, the first `v1`).
    pub fn decode(handle: &str) -> Result<Self, String> {
        let invalid = || "recall handle is invalid".to_owned();
        let raw = URL_SAFE
            .decode(handle.trim().as_bytes())
            .map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let items: Vec<&str> = raw.split(' ').collect();
        match items.as_slice() {
            ["v1", topic, broker, ts, id, ..] => Ok(Self {
                topic: (*topic).to_owned(),
                broker_name: (*broker).to_owned(),
                timestamp: (*ts).to_owned(),
                msg_id: (*id).to_owned(),
            }),
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_bad_ones_are_refused() {
        let h = RecallHandle {
            topic: "T".into(),
            broker_name: "broker-a".into(),
            timestamp: "1700000000001".into(),
            msg_id: "7F0000010001".into(),
        };
        let s = h.encode();
        assert!(!s.contains('+') && !s.contains('/'));
        assert_eq!(RecallHandle::decode(&s).unwrap(), h);
        assert!(RecallHandle::decode("!!").is_err());
        assert!(RecallHandle::decode(&URL_SAFE.encode("v2 a b c d")).is_err());
        assert!(RecallHandle::decode(&URL_SAFE.encode("v1 a b c")).is_err());
        // A sixth item (newer brokers add the delay) is accepted.
        assert!(RecallHandle::decode(&URL_SAFE.encode("v1 a b c d 5")).is_ok());
    }
}
