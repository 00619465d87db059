//! Messages to send, messages received, and what a send returns.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use catmq_common::record::sys_flag;
use catmq_common::{msgid, properties, RecordView};
pub use catmq_protocol::body::MessageQueue;

use crate::compress;
use crate::error::{ClientError, Result};

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Destination topic.
    pub topic: String,
    /// Payload.
    pub body: Bytes,
    /// Free-form flag stored with the message.
    pub flag: i32,
    /// Properties: tags, keys, delay level, user properties.
    pub properties: BTreeMap<String, String>,
}

impl Message {
    /// A message for `topic` with `body`.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            body: body.into(),
            ..Self::default()
        }
    }

    /// Sets the tag (what consumers filter on).
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.properties
            .insert(properties::TAGS.to_owned(), tags.into());
        self
    }

    /// Sets the keys (indexed for lookups), replacing earlier ones.
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        self.properties
            .insert(properties::KEYS.to_owned(), joined.join(" "));
        self
    }

    /// Sets a user property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Delivers the message after delay level `level` (1..=18: 1s 5s 10s 30s 1m ... 2h).
    pub fn with_delay_level(mut self, level: i32) -> Self {
        self.properties
            .insert(properties::DELAY.to_owned(), level.to_string());
        self
    }

    /// Delivers the message at `epoch_ms` (ms since the epoch, compared with the broker's
    /// clock; a time already passed means now). The send result carries a recall handle.
    pub fn with_deliver_at(mut self, epoch_ms: i64) -> Self {
        self.properties
            .insert(TIMER_DELIVER_MS.to_owned(), epoch_ms.to_string());
        self
    }

    /// Delivers the message `delay` after the broker stores it.
    pub fn with_delay(mut self, delay: std::time::Duration) -> Self {
        let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.properties
            .insert(TIMER_DELAY_MS.to_owned(), ms.to_string());
        self
    }

    /// The tag, if any.
    pub fn tags(&self) -> Option<&str> {
        self.property(properties::TAGS)
    }

    /// The keys, if any.
    pub fn keys(&self) -> Vec<&str> {
        self.property(properties::KEYS)
            .map(|k| k.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    /// A property.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// The delay level, if set.
    pub fn delay_level(&self) -> Option<i32> {
        self.property(properties::DELAY)
            .and_then(|d| d.parse().ok())
    }

    pub(crate) fn encoded_properties(&self) -> String {
        properties::encode(self.properties.iter())
    }
}

/// A message as consumed: the message plus where and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    /// Topic, body (decompressed), flag and properties.
    pub message: Message,
    /// The producer's unique id (`UNIQ_KEY`), or the offset id when absent.
    pub msg_id: String,
    /// The broker's id: store host + commit-log position.
    pub offset_msg_id: String,
    /// The queue it was read from.
    pub queue: MessageQueue,
    /// Its offset in that queue.
    pub queue_offset: i64,
    /// Its position in the broker's commit log.
    pub commit_log_offset: i64,
    /// System flags as stored.
    pub sys_flag: i32,
    /// When the producer created it (ms).
    pub born_timestamp: i64,
    /// The producer's address.
    pub born_host: SocketAddr,
    /// When the broker stored it (ms).
    pub store_timestamp: i64,
    /// The broker's address.
    pub store_host: SocketAddr,
    /// How many times it was consumed and failed before.
    pub reconsume_times: i32,
}

impl MessageExt {
    /// Decodes one stored record read from `broker_name` (decompressing the body).
    pub fn decode(record: &[u8], broker_name: &str, addr: &str) -> Result<Self> {
        let v = RecordView::parse(record).map_err(|e| ClientError::decode(addr, e))?;
        let props = v.properties().unwrap_or("");
        let properties: BTreeMap<String, String> = properties::iter(props)
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let topic = v
            .topic()
            .ok_or_else(|| ClientError::decode(addr, "topic is not UTF-8"))?
            .to_owned();
        let body = if v.sys_flag() & sys_flag::COMPRESSED != 0 {
            compress::decompress(v.body(), v.sys_flag())
                .map_err(|e| ClientError::decode(addr, e))?
        } else {
            Bytes::copy_from_slice(v.body())
        };
        let offset_msg_id = msgid::offset_msg_id(v.store_host(), v.physical_offset());
        let msg_id = properties
            .get(properties::UNIQ_KEY)
            .cloned()
            .unwrap_or_else(|| offset_msg_id.clone());
        Ok(Self {
            queue: MessageQueue {
                topic: topic.clone(),
                broker_name: broker_name.to_owned(),
                queue_id: v.queue_id(),
            },
            message: Message {
                topic,
                body,
                flag: v.flag(),
                properties,
            },
            msg_id,
            offset_msg_id,
            queue_offset: v.queue_offset(),
            commit_log_offset: v.physical_offset(),
            sys_flag: v.sys_flag(),
            born_timestamp: v.born_timestamp(),
            born_host: v.born_host(),
            store_timestamp: v.store_timestamp(),
            store_host: v.store_host(),
            reconsume_times: v.reconsume_times(),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.message.topic
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.message.body
    }

    /// The tag, if any.
    pub fn tags(&self) -> Option<&str> {
        self.message.tags()
    }

    /// A property.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.message.property(key)
    }

    /// The size that counts for flow control.
    pub(crate) fn size(&self) -> usize {
        self.message.body.len()
    }
}

/// Whether the broker stored the message as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored (and flushed / replicated as configured).
    SendOk,
    /// Stored, but the sync flush did not finish in time.
    FlushDiskTimeout,
    /// Stored, but the slave did not confirm in time.
    FlushSlaveTimeout,
    /// Stored, but no slave is available.
    SlaveNotAvailable,
}

/// What a send returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// Stored as asked, or with a caveat.
    pub status: SendStatus,
    /// The unique id (`UNIQ_KEY`); comma-separated for a batch.
    pub msg_id: String,
    /// The broker's offset id; comma-separated for a batch.
    pub offset_msg_id: String,
    /// The queue it went to.
    pub queue: MessageQueue,
    /// Its offset in that queue (the first one for a batch).
    pub queue_offset: i64,
    /// The broker's region, when it reports one.
    pub region: Option<String>,
    /// For a scheduled message: the handle that cancels it ([`crate::Producer::recall`]).
    pub recall_handle: Option<String>,
}

/// Property: absolute delivery time (ms since the epoch).
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// Property: delivery delay in ms from the broker's receipt.
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

static UNIQ_SEQ: AtomicU16 = AtomicU16::new(0);

/// A new unique message id: 32 upper-case hex digits (IPv4 of `ip`, pid, a random word, ms
/// since the start of the month, a counter), the shape RocketMQ clients use.
pub(crate) fn new_uniq_id(ip: std::net::IpAddr) -> String {
    let ip4 = match ip {
        std::net::IpAddr::V4(v) => v.octets(),
        std::net::IpAddr::V6(v) => {
            let o = v.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let pid = std::process::id() as u16;
    let salt = (now as u32).rotate_left(13) ^ std::process::id().wrapping_mul(2_654_435_761);
    let ms_of_month = ((now / 1_000_000) % (31 * 86_400_000)) as u32;
    let seq = UNIQ_SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:02X}{:02X}{:02X}{:02X}{pid:04X}{salt:08X}{ms_of_month:08X}{seq:04X}",
        ip4[0], ip4[1], ip4[2], ip4[3]
    )
}

/// Queues 0..n of topic `T` on broker `b`, for unit tests.
#[cfg(test)]
pub(crate) fn test_queues(n: i32) -> Vec<MessageQueue> {
    (0..n)
        .map(|i| MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: i,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_properties() {
        let m = Message::new("T", "hi")
            .with_tags("A")
            .with_keys(["k1", "k2"])
            .with_property("p", "v")
            .with_delay_level(3);
        assert_eq!(m.tags(), Some("A"));
        assert_eq!(m.keys(), vec!["k1", "k2"]);
        assert_eq!(m.property("p"), Some("v"));
        assert_eq!(m.delay_level(), Some(3));
        let enc = m.encoded_properties();
        assert_eq!(properties::get(&enc, "KEYS"), Some("k1 k2"));
    }

    #[test]
    fn uniq_ids_are_32_hex_and_distinct() {
        let ip = "10.1.2.3"
            .parse()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let a = new_uniq_id(ip);
        let b = new_uniq_id(ip);
        assert_eq!(a.len(), 32);
        assert!(a.starts_with("0A010203"));
        assert_ne!(a, b);
    }
}
