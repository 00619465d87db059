//! Frames: `length i32 | serialize type u8 + header length u24 | header | body`.
//!
//! `length` counts everything after itself. [`decode`] takes one frame off the front of a buffer
//! when it is complete; [`encode`] appends one. Neither does I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::command::{RemotingCommand, SerializeType};
use crate::error::{ProtocolError, Result};
use crate::header::{binary, json};

/// Size limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (the `length` field), default 16 MiB as in Java.
    pub max_frame: usize,
    /// Largest header, default 1 MiB.
    pub max_header: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_header: 1 << 20,
        }
    }
}

/// Where to send an error response to a frame that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    /// The request's opaque.
    pub opaque: i32,
    /// The request's header encoding.
    pub serialize: SerializeType,
}

/// A frame that could not be decoded. The connection must close after it (the stream can no
/// longer be trusted); `reply` says where an error response may go first.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct FrameError {
    /// What was wrong.
    #[source]
    pub error: ProtocolError,
    /// The opaque and encoding, when they could be read; `None` for responses and oneways.
    pub reply: Option<ReplyTo>,
}

/// Takes one complete frame off the front of `buf`. `Ok(None)`: more bytes are needed.
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RemotingCommand>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let max = limits.max_frame;
    let frame_len = usize::try_from(length)
        .ok()
        .filter(|l| (4..=max).contains(l));
    let Some(frame_len) = frame_len else {
        return Err(FrameError {
            error: ProtocolError::FrameLength {
                length: i64::from(length),
                max,
            },
            reply: salvage(&buf[4..]),
        });
    };
    if buf.len() < 4 + frame_len {
        buf.reserve(4 + frame_len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let frame = buf.split_to(frame_len).freeze();
    decode_frame(frame, limits).map(Some)
}

/// Decodes the contents of one frame (everything after the length field).
pub fn decode_frame(frame: Bytes, limits: &Limits) -> Result<RemotingCommand, FrameError> {
    let fail = |error, frame: &Bytes| FrameError {
        error,
        reply: salvage(frame),
    };
    let Some(&[a, b, c, d]) = frame.get(..4) else {
        return Err(FrameError {
            error: ProtocolError::FrameLength {
                length: frame.len() as i64,
                max: limits.max_frame,
            },
            reply: None,
        });
    };
    let mark = u32::from_be_bytes([a, b, c, d]);
    let kind = (mark >> 24) as u8;
    let hlen = (mark & 0x00FF_FFFF) as usize;
    if hlen > frame.len() - 4 || hlen > limits.max_header {
        let e = ProtocolError::HeaderLength {
            length: hlen,
            frame: frame.len(),
            max: limits.max_header,
        };
        return Err(fail(e, &frame));
    }
    let header = &frame[4..4 + hlen];
    let decoded = match SerializeType::from_byte(kind) {
        Some(SerializeType::Json) => json::decode(header),
        Some(SerializeType::RocketMq) => binary::decode(header),
        None => Err(ProtocolError::SerializeType(kind)),
    };
    let mut cmd = decoded.map_err(|e| fail(e, &frame))?;
    cmd.body = frame.slice(4 + hlen..);
    Ok(cmd)
}

/// The opaque of a request whose frame is bad, when the header's first bytes show it.
fn salvage(frame: &[u8]) -> Option<ReplyTo> {
    let mark = frame.get(..4)?;
    let kind = mark[0];
    let header = frame.get(4..)?;
    match SerializeType::from_byte(kind)? {
        SerializeType::RocketMq => {
            let flag = header.get(9..13)?;
            let flag = i32::from_be_bytes([flag[0], flag[1], flag[2], flag[3]]);
            if flag & (crate::FLAG_RESPONSE | crate::FLAG_ONEWAY) != 0 {
                return None;
            }
            binary::salvage_opaque(header).map(|opaque| ReplyTo {
                opaque,
                serialize: SerializeType::RocketMq,
            })
        }
        SerializeType::Json => {
            // A response or a oneway request is never answered, even when it is malformed; a
            // frame whose flag cannot be read is taken for a request, as a missing flag is.
            let flag = json::salvage_flag(header).unwrap_or(0);
            if flag & (crate::FLAG_RESPONSE | crate::FLAG_ONEWAY) != 0 {
                return None;
            }
            json::salvage_opaque(header).map(|opaque| ReplyTo {
                opaque,
                serialize: SerializeType::Json,
            })
        }
    }
}

/// The encoded header of `cmd` in its serialize type.
pub fn encode_header(cmd: &RemotingCommand) -> Result<Vec<u8>> {
    let mut h = Vec::with_capacity(256);
    match cmd.serialize {
        SerializeType::Json => json::encode(cmd, &mut h),
        SerializeType::RocketMq => binary::encode(cmd, &mut h)?,
    }
    Ok(h)
}

/// Appends the frame prefix and header of `cmd` for a body of `body_len` bytes that the caller
/// sends next (a pull response's records straight from the log); `cmd.body` is ignored.
pub fn encode_prefix(cmd: &RemotingCommand, body_len: usize, out: &mut BytesMut) -> Result<()> {
    let header = encode_header(cmd)?;
    if header.len() > 0x00FF_FFFF {
        return Err(ProtocolError::TooLarge {
            what: "header",
            len: header.len(),
            max: 0x00FF_FFFF,
        });
    }
    let total = 4 + header.len() + body_len;
    let length = i32::try_from(total).map_err(|_| ProtocolError::TooLarge {
        what: "frame",
        len: total,
        max: i32::MAX as usize,
    })?;
    out.reserve(8 + header.len());
    out.put_i32(length);
    out.put_u32((u32::from(cmd.serialize.byte()) << 24) | header.len() as u32);
    out.put_slice(&header);
    Ok(())
}

/// Appends the whole frame of `cmd`.
pub fn encode(cmd: &RemotingCommand, out: &mut BytesMut) -> Result<()> {
    encode_prefix(cmd, cmd.body.len(), out)?;
    out.put_slice(&cmd.body);
    Ok(())
}

/// The whole frame of `cmd` as bytes.
pub fn to_bytes(cmd: &RemotingCommand) -> Result<Bytes> {
    let mut out = BytesMut::new();
    encode(cmd, &mut out)?;
    Ok(out.freeze())
}
