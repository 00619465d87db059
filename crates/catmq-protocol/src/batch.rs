//! The SEND_BATCH_MESSAGE body: the producer's messages, concatenated.
//!
//! ```text
//! total size i32 | magic i32 (0) | body CRC i32 (0) | flag i32 | body length i32 + body
//! | properties length i16 + properties
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};

/// One message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// The producer's flag.
    pub flag: i32,
    /// The body (a slice of the request body).
    pub body: Bytes,
    /// The properties string.
    pub properties: String,
}

const FIXED: usize = 4 * 5 + 2;

fn bad(detail: String) -> ProtocolError {
    ProtocolError::bad_body("batch", detail)
}

fn i32_at(b: &[u8], at: usize) -> Result<i32> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| bad(format!("truncated at {at}")))
}

/// Splits a batch body into its messages; at most `max_count` of them.
pub fn decode_batch(data: &Bytes, max_count: usize) -> Result<Vec<BatchEntry>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if out.len() >= max_count {
            return Err(bad(format!("more than {max_count} messages")));
        }
        let total = usize::try_from(i32_at(data, pos)?).unwrap_or(0);
        let end = pos.checked_add(total).filter(|e| *e <= data.len());
        let Some(end) = end.filter(|_| total >= FIXED) else {
            return Err(bad(format!("message at {pos} has a bad size {total}")));
        };
        let flag = i32_at(data, pos + 12)?;
        let blen = usize::try_from(i32_at(data, pos + 16)?)
            .map_err(|_| bad(format!("negative body length at {pos}")))?;
        let body_at = pos + 20;
        let props_len_at = body_at
            .checked_add(blen)
            .filter(|p| p + 2 <= end)
            .ok_or_else(|| bad(format!("body length {blen} overruns message at {pos}")))?;
        let plen = usize::from(u16::from_be_bytes([
            data[props_len_at],
            data[props_len_at + 1],
        ]));
        if props_len_at + 2 + plen != end {
            return Err(bad(format!(
                "field lengths do not add up for message at {pos}"
            )));
        }
        let properties = std::str::from_utf8(&data[props_len_at + 2..end])
            .map_err(|_| bad(format!("properties at {pos} are not UTF-8")))?
            .to_owned();
        out.push(BatchEntry {
            flag,
            body: data.slice(body_at..body_at + blen),
            properties,
        });
        pos = end;
    }
    Ok(out)
}

/// Encodes messages as a batch body.
pub fn encode_batch(entries: &[BatchEntry]) -> Result<Bytes> {
    let mut out = BytesMut::new();
    for e in entries {
        let plen = u16::try_from(e.properties.len())
            .ok()
            .filter(|l| *l <= i16::MAX as u16)
            .ok_or(ProtocolError::TooLarge {
                what: "properties",
                len: e.properties.len(),
                max: i16::MAX as usize,
            })?;
        let total = FIXED + e.body.len() + e.properties.len();
        let too_large = || ProtocolError::TooLarge {
            what: "batch message",
            len: total,
            max: i32::MAX as usize,
        };
        out.put_i32(i32::try_from(total).map_err(|_| too_large())?);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(e.flag);
        out.put_i32(i32::try_from(e.body.len()).map_err(|_| too_large())?);
        out.put_slice(&e.body);
        out.put_u16(plen);
        out.put_slice(e.properties.as_bytes());
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips_and_every_truncation_fails() {
        let entries = vec![
            BatchEntry {
                flag: 1,
                body: Bytes::from_static(b"one"),
                properties: "KEYS\u{1}k1\u{2}".into(),
            },
            BatchEntry {
                flag: 0,
                body: Bytes::new(),
                properties: String::new(),
            },
        ];
        let data = encode_batch(&entries).unwrap();
        assert_eq!(decode_batch(&data, 100).unwrap(), entries);
        assert!(decode_batch(&data, 1).is_err());
        for cut in 1..data.len() {
            let d = data.slice(..cut);
            if let Ok(v) = decode_batch(&d, 100) {
                // Only a cut exactly between messages decodes, to the first message.
                assert_eq!(v, entries[..1].to_vec(), "cut {cut}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_batch_bodies_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode_batch(&Bytes::from(data), 1000);
        }
    }
}
