//! The one error type of this crate.

/// A record or id that cannot be encoded or does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Fewer bytes than the layout needs.
    #[error("record truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// The magic number is not one of a stored message.
    #[error("bad magic 0x{magic:08X}")]
    BadMagic { magic: u32 },
    /// The total-size field is impossible.
    #[error("bad record size {size}")]
    BadSize { size: i64 },
    /// The field lengths inside the record do not add up to its total size.
    #[error("field lengths do not add up: total {total}, fields {fields}")]
    LengthMismatch { total: usize, fields: usize },
    /// A negative length field.
    #[error("negative length {len} in field {field}")]
    NegativeLength { field: &'static str, len: i64 },
    /// A topic longer than the layout allows (32767 bytes).
    #[error("topic is {len} bytes, the limit is {max}")]
    TopicTooLong { len: usize, max: usize },
    /// A properties string longer than the layout allows (32767 bytes).
    #[error("properties are {len} bytes, the limit is {max}")]
    PropertiesTooLong { len: usize, max: usize },
    /// A body larger than the layout allows.
    #[error("body is {len} bytes, the limit is {max}")]
    BodyTooLarge { len: usize, max: usize },
    /// A message id that is not hex of the expected shape.
    #[error("malformed message id {id:?}")]
    BadMessageId { id: String },
}
