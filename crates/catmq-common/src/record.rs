//! The stored-message record: encoding for the store, and a checked view for readers.
//!
//! The layout is drawn in the crate docs. All integers are big-endian. A record is self-framing
//! (its first four bytes are its size) and self-locating (it carries its own physical offset),
//! which recovery uses to tell a valid record from stray bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

use crate::RecordError;

/// Magic of a record whose topic length is one byte.
pub const MAGIC_V1: u32 = 0xDAA3_20A7;
/// Magic of a record whose topic length is two bytes (topics over 127 bytes).
pub const MAGIC_V2: u32 = 0xDAA3_20AB;
/// Magic of the padding that ends a commit-log segment in Apache RocketMQ.
pub const MAGIC_BLANK: u32 = 0xCBD4_3194;
/// CatMQ only: the first record of a batch whose write has not completed yet. Recovery treats it
/// as the end of the log, so a batch is visible whole or not at all.
pub const MAGIC_PENDING_BATCH: u32 = 0xCA7B_A7C0;

/// Byte offset of the magic within a record.
pub const MAGIC_POS: usize = 4;
/// Byte offset of the queue offset within a record.
pub const QUEUE_OFFSET_POS: usize = 20;
/// Byte offset of the physical offset within a record.
pub const PHYSICAL_OFFSET_POS: usize = 28;
/// Byte offset of the born host within a record.
const BORN_HOST_POS: usize = 48;
/// Largest body a record may carry.
pub const MAX_BODY: usize = i32::MAX as usize / 2;
/// Largest topic (two-byte length).
pub const MAX_TOPIC: usize = i16::MAX as usize;
/// Largest properties string (two-byte length).
pub const MAX_PROPERTIES: usize = i16::MAX as usize;
/// The smallest possible record: IPv4 hosts, empty body, empty topic, no properties.
pub const MIN_RECORD: usize = 84 + 4 + 1 + 2;

/// `sysFlag` bits of a stored message.
pub mod sys_flag {
    /// The body is compressed.
    pub const COMPRESSED: i32 = 0x1;
    /// The message has several tags.
    pub const MULTI_TAGS: i32 = 0x2;
    /// Prepared (half) transactional message.
    pub const TRANSACTION_PREPARED: i32 = 0x4;
    /// Committed transactional message.
    pub const TRANSACTION_COMMIT: i32 = 0x8;
    /// Rolled-back transactional message.
    pub const TRANSACTION_ROLLBACK: i32 = 0xC;
    /// Mask of the transaction bits.
    pub const TRANSACTION_MASK: i32 = 0xC;
    /// The born host is IPv6.
    pub const BORN_HOST_V6: i32 = 0x10;
    /// The store host is IPv6.
    pub const STORE_HOST_V6: i32 = 0x20;
    /// Batch that needs unwrapping.
    pub const NEED_UNWRAP: i32 = 0x40;
    /// Inner batch.
    pub const INNER_BATCH: i32 = 0x80;
}

/// A message as a producer handed it to the broker, before the store stamps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Topic name.
    pub topic: String,
    /// Queue id within the topic.
    pub queue_id: i32,
    /// The producer's user flag.
    pub flag: i32,
    /// The body, as sent (already compressed when `sys_flag` says so).
    pub body: Bytes,
    /// The encoded properties string.
    pub properties: String,
    /// `sysFlag` bits; the host bits are set by encoding from the actual addresses.
    pub sys_flag: i32,
    /// When the producer created the message (ms since the epoch).
    pub born_timestamp: i64,
    /// The producer's address.
    pub born_host: SocketAddr,
    /// How many times the message was consumed and sent back.
    pub reconsume_times: i32,
    /// Offset of the prepared message this one settles (transactions), else 0.
    pub prepared_transaction_offset: i64,
}

/// What the store adds to a message at append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStamp {
    /// Position in the message's consume queue.
    pub queue_offset: i64,
    /// Position of the record in the commit log.
    pub physical_offset: i64,
    /// When the store appended it (ms since the epoch).
    pub store_timestamp: i64,
    /// The broker address that stored it.
    pub store_host: SocketAddr,
}

fn host_len(addr: &SocketAddr) -> usize {
    match addr.ip() {
        IpAddr::V4(_) => 8,
        IpAddr::V6(_) => 20,
    }
}

fn topic_len_width(topic_len: usize) -> usize {
    if topic_len > 127 {
        2
    } else {
        1
    }
}

impl NewMessage {
    /// Checks the field sizes the layout can carry.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.topic.len() > MAX_TOPIC {
            return Err(RecordError::TopicTooLong {
                len: self.topic.len(),
                max: MAX_TOPIC,
            });
        }
        if self.properties.len() > MAX_PROPERTIES {
            return Err(RecordError::PropertiesTooLong {
                len: self.properties.len(),
                max: MAX_PROPERTIES,
            });
        }
        if self.body.len() > MAX_BODY {
            return Err(RecordError::BodyTooLarge {
                len: self.body.len(),
                max: MAX_BODY,
            });
        }
        Ok(())
    }

    /// Size of this message's record when stored by `store_host`.
    pub fn encoded_len(&self, store_host: &SocketAddr) -> usize {
        let topic = self.topic.len();
        48 + host_len(&self.born_host)
            + 8
            + host_len(store_host)
            + 12
            + 4
            + self.body.len()
            + topic_len_width(topic)
            + topic
            + 2
            + self.properties.len()
    }

    /// Byte offset of the store timestamp within this message's record.
    pub fn store_timestamp_pos(&self) -> usize {
        BORN_HOST_POS + host_len(&self.born_host)
    }

    /// Appends the record of this message to `out`; returns the record's size.
    pub fn encode(&self, stamp: &StoreStamp, out: &mut Vec<u8>) -> Result<usize, RecordError> {
        self.validate()?;
        let len = self.encoded_len(&stamp.store_host);
        let size = i32::try_from(len).map_err(|_| RecordError::BadSize { size: len as i64 })?;
        let mut sys_flag = self.sys_flag & !(sys_flag::BORN_HOST_V6 | sys_flag::STORE_HOST_V6);
        if self.born_host.is_ipv6() {
            sys_flag |= sys_flag::BORN_HOST_V6;
        }
        if stamp.store_host.is_ipv6() {
            sys_flag |= sys_flag::STORE_HOST_V6;
        }
        let wide_topic = self.topic.len() > 127;
        out.reserve(len);
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&(if wide_topic { MAGIC_V2 } else { MAGIC_V1 }).to_be_bytes());
        out.extend_from_slice(&body_crc(&self.body).to_be_bytes());
        out.extend_from_slice(&self.queue_id.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        out.extend_from_slice(&stamp.queue_offset.to_be_bytes());
        out.extend_from_slice(&stamp.physical_offset.to_be_bytes());
        out.extend_from_slice(&sys_flag.to_be_bytes());
        out.extend_from_slice(&self.born_timestamp.to_be_bytes());
        put_host(out, &self.born_host);
        out.extend_from_slice(&stamp.store_timestamp.to_be_bytes());
        put_host(out, &stamp.store_host);
        out.extend_from_slice(&self.reconsume_times.to_be_bytes());
        out.extend_from_slice(&self.prepared_transaction_offset.to_be_bytes());
        // Lengths below were checked by validate(); the casts cannot truncate.
        out.extend_from_slice(&(self.body.len() as i32).to_be_bytes());
        out.extend_from_slice(&self.body);
        if wide_topic {
            out.extend_from_slice(&(self.topic.len() as i16).to_be_bytes());
        } else {
            out.push(self.topic.len() as u8);
        }
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(&(self.properties.len() as i16).to_be_bytes());
        out.extend_from_slice(self.properties.as_bytes());
        Ok(len)
    }
}

/// Overwrites the store's fields of an encoded record: its queue offset, physical offset and
/// the store timestamp at `store_ts_pos` (see [`NewMessage::store_timestamp_pos`]). None of them
/// is covered by the body CRC, so a record can be encoded first and placed later.
pub fn restamp(
    record: &mut [u8],
    queue_offset: i64,
    physical_offset: i64,
    store_ts_pos: usize,
    store_timestamp: i64,
) -> Result<(), RecordError> {
    for (pos, v) in [
        (QUEUE_OFFSET_POS, queue_offset),
        (PHYSICAL_OFFSET_POS, physical_offset),
        (store_ts_pos, store_timestamp),
    ] {
        let have = record.len();
        record
            .get_mut(pos..pos + 8)
            .ok_or(RecordError::Truncated {
                need: pos + 8,
                have,
            })?
            .copy_from_slice(&v.to_be_bytes());
    }
    Ok(())
}

/// The body CRC as Apache RocketMQ stores it: CRC32 (IEEE) with the sign bit cleared.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

fn put_host(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&i32::from(addr.port()).to_be_bytes());
}

/// Reads the total-size and magic of the record starting at `buf`, if the first 8 bytes are there.
pub fn peek_header(buf: &[u8]) -> Option<(i32, u32)> {
    let size = i32::from_be_bytes(buf.get(0..4)?.try_into().ok()?);
    let magic = u32::from_be_bytes(buf.get(4..8)?.try_into().ok()?);
    Some((size, magic))
}

/// A checked, borrowed view of one stored record.
///
/// [`RecordView::parse`] checks that the size, magic and every length field agree, so the
/// accessors cannot read out of bounds. The body CRC is checked separately ([`RecordView::crc_ok`]).
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    buf: &'a [u8],
    store_ts_pos: usize,
    reconsume_pos: usize,
    body: (usize, usize),
    topic: (usize, usize),
    props: (usize, usize),
}

fn read_at<const N: usize>(buf: &[u8], pos: usize) -> Result<[u8; N], RecordError> {
    buf.get(pos..pos + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(RecordError::Truncated {
            need: pos + N,
            have: buf.len(),
        })
}

fn i32_at(buf: &[u8], pos: usize) -> Result<i32, RecordError> {
    read_at::<4>(buf, pos).map(i32::from_be_bytes)
}

fn i64_at(buf: &[u8], pos: usize) -> Result<i64, RecordError> {
    read_at::<8>(buf, pos).map(i64::from_be_bytes)
}

fn len_at(buf: &[u8], pos: usize, field: &'static str) -> Result<usize, RecordError> {
    let len = i32_at(buf, pos)?;
    usize::try_from(len).map_err(|_| RecordError::NegativeLength {
        field,
        len: i64::from(len),
    })
}

impl<'a> RecordView<'a> {
    /// Parses the record at the start of `buf` (which may hold more bytes after it).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RecordError> {
        let size = i32_at(buf, 0)?;
        let magic = u32::from_be_bytes(read_at::<4>(buf, MAGIC_POS)?);
        if magic != MAGIC_V1 && magic != MAGIC_V2 {
            return Err(RecordError::BadMagic { magic });
        }
        let total = usize::try_from(size)
            .ok()
            .filter(|s| *s >= MIN_RECORD)
            .ok_or(RecordError::BadSize {
                size: i64::from(size),
            })?;
        if buf.len() < total {
            return Err(RecordError::Truncated {
                need: total,
                have: buf.len(),
            });
        }
        let buf = &buf[..total];
        let sys_flag = i32_at(buf, 36)?;
        let born_len = if sys_flag & sys_flag::BORN_HOST_V6 != 0 {
            20
        } else {
            8
        };
        let store_len = if sys_flag & sys_flag::STORE_HOST_V6 != 0 {
            20
        } else {
            8
        };
        let store_ts_pos = BORN_HOST_POS + born_len;
        let reconsume_pos = store_ts_pos + 8 + store_len;
        let body_len_pos = reconsume_pos + 12;
        let body_len = len_at(buf, body_len_pos, "body")?;
        let body_start = body_len_pos + 4;
        let topic_len_pos =
            body_start
                .checked_add(body_len)
                .ok_or(RecordError::LengthMismatch {
                    total,
                    fields: usize::MAX,
                })?;
        let (topic_len, topic_start) = if magic == MAGIC_V2 {
            let raw = i16::from_be_bytes(read_at::<2>(buf, topic_len_pos)?);
            let len = usize::try_from(raw).map_err(|_| RecordError::NegativeLength {
                field: "topic",
                len: i64::from(raw),
            })?;
            (len, topic_len_pos + 2)
        } else {
            (
                usize::from(read_at::<1>(buf, topic_len_pos)?[0]),
                topic_len_pos + 1,
            )
        };
        let props_len_pos = topic_start + topic_len;
        let raw = i16::from_be_bytes(read_at::<2>(buf, props_len_pos)?);
        let props_len = usize::try_from(raw).map_err(|_| RecordError::NegativeLength {
            field: "properties",
            len: i64::from(raw),
        })?;
        let props_start = props_len_pos + 2;
        let fields = props_start + props_len;
        if fields != total {
            return Err(RecordError::LengthMismatch { total, fields });
        }
        Ok(Self {
            buf,
            store_ts_pos,
            reconsume_pos,
            body: (body_start, body_len),
            topic: (topic_start, topic_len),
            props: (props_start, props_len),
        })
    }

    fn i32(&self, pos: usize) -> i32 {
        i32_at(self.buf, pos).unwrap_or(0)
    }

    fn i64(&self, pos: usize) -> i64 {
        i64_at(self.buf, pos).unwrap_or(0)
    }

    fn slice(&self, (start, len): (usize, usize)) -> &'a [u8] {
        self.buf.get(start..start + len).unwrap_or(&[])
    }

    fn host(&self, pos: usize, v6: bool) -> SocketAddr {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(
                read_at::<16>(self.buf, pos).unwrap_or([0; 16]),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(
                read_at::<4>(self.buf, pos).unwrap_or([0; 4]),
            ))
        };
        let port = self.i32(pos + if v6 { 16 } else { 4 });
        SocketAddr::new(ip, u16::try_from(port).unwrap_or(0))
    }

    /// The whole record.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// Total size of the record.
    pub fn total_size(&self) -> usize {
        self.buf.len()
    }
    /// The stored body CRC.
    pub fn stored_crc(&self) -> i32 {
        self.i32(8)
    }
    /// Whether the body matches its stored CRC.
    pub fn crc_ok(&self) -> bool {
        body_crc(self.body()) == self.stored_crc()
    }
    /// Queue id.
    pub fn queue_id(&self) -> i32 {
        self.i32(12)
    }
    /// User flag.
    pub fn flag(&self) -> i32 {
        self.i32(16)
    }
    /// Queue offset.
    pub fn queue_offset(&self) -> i64 {
        self.i64(20)
    }
    /// Physical offset.
    pub fn physical_offset(&self) -> i64 {
        self.i64(PHYSICAL_OFFSET_POS)
    }
    /// `sysFlag`.
    pub fn sys_flag(&self) -> i32 {
        self.i32(36)
    }
    /// Born timestamp (ms).
    pub fn born_timestamp(&self) -> i64 {
        self.i64(40)
    }
    /// Born host.
    pub fn born_host(&self) -> SocketAddr {
        self.host(BORN_HOST_POS, self.sys_flag() & sys_flag::BORN_HOST_V6 != 0)
    }
    /// Store timestamp (ms).
    pub fn store_timestamp(&self) -> i64 {
        self.i64(self.store_ts_pos)
    }
    /// Store host.
    pub fn store_host(&self) -> SocketAddr {
        self.host(
            self.store_ts_pos + 8,
            self.sys_flag() & sys_flag::STORE_HOST_V6 != 0,
        )
    }
    /// Reconsume times.
    pub fn reconsume_times(&self) -> i32 {
        self.i32(self.reconsume_pos)
    }
    /// Prepared-transaction offset.
    pub fn prepared_transaction_offset(&self) -> i64 {
        self.i64(self.reconsume_pos + 4)
    }
    /// Body bytes.
    pub fn body(&self) -> &'a [u8] {
        self.slice(self.body)
    }
    /// Topic bytes (UTF-8 unless a peer sent otherwise).
    pub fn topic_bytes(&self) -> &'a [u8] {
        self.slice(self.topic)
    }
    /// Topic, if valid UTF-8.
    pub fn topic(&self) -> Option<&'a str> {
        std::str::from_utf8(self.topic_bytes()).ok()
    }
    /// Properties string, if valid UTF-8.
    pub fn properties(&self) -> Option<&'a str> {
        std::str::from_utf8(self.slice(self.props)).ok()
    }
    /// Rebuilds the message as a producer sent it (the store fields dropped).
    pub fn to_new_message(&self) -> NewMessage {
        NewMessage {
            topic: String::from_utf8_lossy(self.topic_bytes()).into_owned(),
            queue_id: self.queue_id(),
            flag: self.flag(),
            body: Bytes::copy_from_slice(self.body()),
            properties: self.properties().unwrap_or_default().to_owned(),
            sys_flag: self.sys_flag(),
            born_timestamp: self.born_timestamp(),
            born_host: self.born_host(),
            reconsume_times: self.reconsume_times(),
            prepared_transaction_offset: self.prepared_transaction_offset(),
        }
    }
}

#[cfg(test)]
#[path = "record_test.rs"]
mod tests;
