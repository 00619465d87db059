//! `RemotingCommand`: one request or response, header fields plus body.

use bytes::Bytes;

use crate::codes::{LanguageCode, ResponseCode, CATMQ_VERSION, FLAG_ONEWAY, FLAG_RESPONSE};
use crate::ext::ExtFields;

/// How a command's header is encoded (the high byte of the frame's second int).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    /// A JSON object (what every client understands).
    #[default]
    Json,
    /// The compact "ROCKETMQ" binary layout.
    RocketMq,
}

impl SerializeType {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Json => 0,
            Self::RocketMq => 1,
        }
    }

    /// The type with this wire byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }
}

/// One command: a request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code, or response code for responses.
    pub code: i32,
    /// The sender's language.
    pub language: LanguageCode,
    /// The sender's `MQVersion` ordinal.
    pub version: i32,
    /// Request id; a response copies its request's.
    pub opaque: i32,
    /// [`FLAG_RESPONSE`], [`FLAG_ONEWAY`].
    pub flag: i32,
    /// Human-readable text (errors).
    pub remark: Option<String>,
    /// The typed header, as strings.
    pub ext: ExtFields,
    /// The body.
    pub body: Bytes,
    /// The header encoding it arrived in, or is to be sent in.
    pub serialize: SerializeType,
}

impl RemotingCommand {
    /// A request with this code, header and body (JSON header, language RUST).
    pub fn request(code: i32, ext: ExtFields, body: Bytes) -> Self {
        Self {
            code,
            language: LanguageCode::Rust,
            version: CATMQ_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext,
            body,
            serialize: SerializeType::Json,
        }
    }

    /// A response to the request with this opaque, in this header encoding.
    pub fn response(opaque: i32, serialize: SerializeType, code: ResponseCode) -> Self {
        Self {
            code: code.as_i32(),
            language: LanguageCode::Java,
            version: CATMQ_VERSION,
            opaque,
            flag: FLAG_RESPONSE,
            remark: None,
            ext: ExtFields::new(),
            body: Bytes::new(),
            serialize,
        }
    }

    /// The response to `req`: same opaque and header encoding, response flag set.
    pub fn response_to(req: &RemotingCommand, code: ResponseCode) -> Self {
        Self::response(req.opaque, req.serialize, code)
    }

    /// An error response to `req` with a remark.
    pub fn error_to(req: &RemotingCommand, code: ResponseCode, remark: impl Into<String>) -> Self {
        Self::response_to(req, code).with_remark(remark)
    }

    /// Sets the remark.
    #[must_use]
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    /// Sets the header fields.
    #[must_use]
    pub fn with_ext(mut self, ext: ExtFields) -> Self {
        self.ext = ext;
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether this is a oneway request (never answered).
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// The response code, when this is a response with a known one.
    pub fn response_code(&self) -> Option<ResponseCode> {
        ResponseCode::from_i32(self.code)
    }
}
