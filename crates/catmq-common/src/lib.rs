//! Shared domain types of CatMQ. No I/O, no async runtime.
//!
//! * [`record`]: the stored-message record (Apache RocketMQ's `MessageExt` layout), which is at once
//!   the commit-log record and the body of a pull response, so a pull can be served straight from
//!   the log without re-encoding.
//! * [`properties`]: the `key\x01value\x02` properties string and the property names that matter.
//! * [`tags`]: the Java `String.hashCode` of a tag, stored in each consume-queue entry.
//! * [`msgid`]: offset message ids (store host + physical offset as upper-case hex).
//!
//! ```text
//! offset size field
//!      0    4 total size (includes itself)
//!      4    4 magic 0xDAA320A7 (topic length 1 byte) or 0xDAA320AB (topic length 2 bytes)
//!      8    4 body CRC32 & 0x7FFFFFFF
//!     12    4 queue id
//!     16    4 flag
//!     20    8 queue offset
//!     28    8 physical offset
//!     36    4 sysFlag
//!     40    8 born timestamp (ms)
//!     48  8|20 born host (IPv4 + port i32, or IPv6 when sysFlag 0x10)
//!      …    8 store timestamp (ms)
//!      …  8|20 store host (IPv6 when sysFlag 0x20)
//!      …    4 reconsume times
//!      …    8 prepared-transaction offset
//!      …  4+n body length + body
//!      …  1|2+t topic length + topic
//!      …  2+p properties length + properties
//! ```

pub mod error;
pub mod msgid;
pub mod properties;
pub mod record;
pub mod tags;

pub use error::RecordError;
pub use record::{NewMessage, RecordView, StoreStamp};
