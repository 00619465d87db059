//! Maps keyed by an object, as Java's fastjson writes them: `{{"brokerName":"b","queueId":0,
//! "topic":"T"}:{…}}`. That is not standard JSON, so such bodies go through a rewrite: on the
//! way out, object keys that hold a JSON object (serialized as a string by serde) are unquoted;
//! on the way in, object keys that are objects are quoted back into strings.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::MessageQueue;
use crate::error::{ProtocolError, Result};

/// A map keyed by message queue (fastjson's `Map<MessageQueue, V>`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MqMap<V>(pub BTreeMap<MessageQueue, V>);

impl<V: Serialize> Serialize for MqMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (mq, v) in &self.0 {
            let key = serde_json::to_string(mq).map_err(S::Error::custom)?;
            m.serialize_entry(&key, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for MqMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = Option::<BTreeMap<String, V>>::deserialize(d)?.unwrap_or_default();
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let mq: MessageQueue = serde_json::from_str(&k)
                .map_err(|e| de::Error::custom(format!("bad message queue key {k:?}: {e}")))?;
            out.insert(mq, v);
        }
        Ok(Self(out))
    }
}

/// Encodes a body the way fastjson writes it (object keys unquoted).
pub fn encode<T: Serialize>(value: &T) -> bytes::Bytes {
    let standard = serde_json::to_string(value).unwrap_or_default();
    rewrite(&standard, Direction::Unquote)
        .unwrap_or(standard)
        .into_bytes()
        .into()
}

/// Decodes a body that may have object keys (fastjson) or stringified ones.
pub fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    let text = std::str::from_utf8(bytes).map_err(|e| ProtocolError::bad_body(what, e))?;
    let standard = rewrite(text, Direction::Quote).map_err(|e| ProtocolError::bad_body(what, e))?;
    serde_json::from_str(&standard).map_err(|e| ProtocolError::bad_body(what, e))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Standard JSON with stringified object keys → fastjson.
    Unquote,
    /// fastjson → standard JSON.
    Quote,
}

/// The end (exclusive) of the string literal starting at `start` (a `"`).
fn string_end(b: &[u8], start: usize) -> std::result::Result<usize, String> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string".into())
}

/// The end (exclusive) of the object starting at `start` (a `{`).
fn object_end(b: &[u8], start: usize) -> std::result::Result<usize, String> {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = string_end(b, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err("unterminated object".into())
}

fn rewrite(text: &str, dir: Direction) -> std::result::Result<String, String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    // true for an object, false for an array
    let mut stack: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                let end = string_end(b, i)?;
                let token = &text[i..end];
                if expect_key && dir == Direction::Unquote {
                    let key: String = serde_json::from_str(token).map_err(|e| e.to_string())?;
                    if key.starts_with('{') {
                        out.push_str(&key);
                    } else {
                        out.push_str(token);
                    }
                } else {
                    out.push_str(token);
                }
                expect_key = false;
                i = end;
                continue;
            }
            b'{' if expect_key && dir == Direction::Quote => {
                let end = object_end(b, i)?;
                out.push_str(&serde_json::to_string(&text[i..end]).map_err(|e| e.to_string())?);
                expect_key = false;
                i = end;
                continue;
            }
            b'{' => {
                stack.push(true);
                expect_key = true;
            }
            b'[' => {
                stack.push(false);
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = stack.last() == Some(&true),
            b':' => expect_key = false,
            _ => {}
        }
        if !c.is_ascii() {
            return Err("unexpected non-ASCII outside a string".into());
        }
        out.push(char::from(c));
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Table {
        offset_table: MqMap<i64>,
        consume_tps: f64,
    }

    fn mq(t: &str, q: i32) -> MessageQueue {
        MessageQueue {
            broker_name: "b".into(),
            queue_id: q,
            topic: t.into(),
        }
    }

    #[test]
    fn writes_and_reads_fastjson_object_keys() {
        let mut t = Table::default();
        t.offset_table.0.insert(mq("T", 0), 5);
        t.offset_table.0.insert(mq("T", 1), 7);
        t.consume_tps = 1.5;
        let bytes = encode(&t);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(
            text,
            r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:5,{"brokerName":"b","queueId":1,"topic":"T"}:7},"consumeTps":1.5}"#
        );
        assert_eq!(decode::<Table>("t", &bytes).unwrap(), t);
    }

    #[test]
    fn reads_java_output_with_spaces_and_stringified_keys() {
        let java = br#"{ "consumeTps" : 0.0, "offsetTable" : { {"brokerName":"b","queueId":3,"topic":"T\u00e9"} : 9 } }"#;
        let t: Table = decode("t", java).unwrap();
        assert_eq!(t.offset_table.0.get(&mq("T\u{e9}", 3)), Some(&9));
        let standard = br#"{"offsetTable":{"{\"brokerName\":\"b\",\"queueId\":3,\"topic\":\"T\"}":9},"consumeTps":0}"#;
        let t: Table = decode("t", standard).unwrap();
        assert_eq!(t.offset_table.0.get(&mq("T", 3)), Some(&9));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"{{"[..],
            b"{\"a",
            b"{{\"x\":1}",
            b"\xff",
            b"{\"offsetTable\":{{}:1}}",
        ] {
            assert!(decode::<Table>("t", bad).is_err());
        }
    }
}
