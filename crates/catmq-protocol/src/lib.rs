//! Sans-IO codec for Apache RocketMQ's remoting protocol, as spoken by CatMQ's broker, name
//! server and client. No sockets, no async runtime: bytes in, typed values out.
//!
//! ```text
//! frame:   length i32 (bytes after itself) | type u8 | header length u24 | header | body
//! type 0:  JSON header {"code","extFields":{..},"flag","language","opaque","remark","version"}
//! type 1:  binary header: code i16, language u8, version i16, opaque i32, flag i32,
//!          remark (i32 length + UTF-8), extFields (i32 total, then i16 key len, key, i32 value len, value)
//! ```
//!
//! * [`frame`]: [`frame::decode`] / [`frame::encode`] with size [`frame::Limits`]; a bad frame is a
//!   [`frame::FrameError`] that says whether an error response can still be sent.
//! * [`RemotingCommand`]: code, opaque, flags, remark, [`ExtFields`] and body. A response uses
//!   the header encoding of its request.
//! * [`headers`]: typed request and response headers over `extFields`.
//! * [`body`]: the JSON bodies (routes, heartbeats, lock sets, cluster info, stats).

pub mod batch;
pub mod body;
pub mod codes;
mod command;
mod error;
mod ext;
pub mod frame;
mod header;
pub mod headers;

#[cfg(test)]
mod frame_tests;

pub use codes::{LanguageCode, RequestCode, ResponseCode, FLAG_ONEWAY, FLAG_RESPONSE};
pub use command::{RemotingCommand, SerializeType};
pub use error::{ProtocolError, Result};
pub use ext::{ExtFields, ExtValue};
