//! The protocol crate's error type.

/// What went wrong decoding or encoding a frame, a header or a body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame's declared length is outside the allowed range.
    #[error("frame length {length} is outside 4..={max}")]
    FrameLength { length: i64, max: usize },
    /// A header's declared length does not fit its frame or passes the limit.
    #[error("header length {length} does not fit a frame of {frame} bytes (limit {max})")]
    HeaderLength {
        length: usize,
        frame: usize,
        max: usize,
    },
    /// The serialize type byte is neither JSON (0) nor ROCKETMQ (1).
    #[error("unknown header serialize type {0}")]
    SerializeType(u8),
    /// The header bytes do not parse.
    #[error("bad {encoding} header: {detail}")]
    BadHeader {
        encoding: &'static str,
        detail: String,
    },
    /// A required header field is absent.
    #[error("missing header field `{0}`")]
    MissingField(&'static str),
    /// A header field has a value of the wrong type.
    #[error("header field `{field}` has a bad value {value:?}: expected {expected}")]
    BadField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A body does not parse.
    #[error("bad {what} body: {detail}")]
    BadBody { what: &'static str, detail: String },
    /// A value is too large to encode.
    #[error("{what} of {len} bytes is too large to encode (limit {max})")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

impl ProtocolError {
    pub(crate) fn bad_header(encoding: &'static str, detail: impl Into<String>) -> Self {
        Self::BadHeader {
            encoding,
            detail: detail.into(),
        }
    }

    pub(crate) fn bad_body(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::BadBody {
            what,
            detail: detail.to_string(),
        }
    }
}

/// Results of this crate.
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;
