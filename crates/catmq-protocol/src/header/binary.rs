//! The "ROCKETMQ" binary header (serialize type 1).
//!
//! ```text
//! code i16 | language u8 | version i16 | opaque i32 | flag i32
//! remark: length i32 + UTF-8 (0 = none)
//! extFields: total length i32, then { key length i16, key, value length i32, value }*
//! ```

use crate::codes::LanguageCode;
use crate::command::{RemotingCommand, SerializeType};
use crate::error::{ProtocolError, Result};
use crate::ext::ExtFields;

const ENC: &str = "ROCKETMQ";

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| {
                ProtocolError::bad_header(
                    ENC,
                    format!(
                        "{what}: need {n} bytes at {}, have {}",
                        self.pos,
                        self.b.len().saturating_sub(self.pos)
                    ),
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn i16(&mut self, what: &str) -> Result<i16> {
        let s = self.take(2, what)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        let s = self.take(4, what)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn len(&mut self, n: i64, what: &str) -> Result<usize> {
        usize::try_from(n)
            .map_err(|_| ProtocolError::bad_header(ENC, format!("{what}: negative length {n}")))
    }

    fn string(&mut self, n: usize, what: &str) -> Result<String> {
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| ProtocolError::bad_header(ENC, format!("{what} is not UTF-8")))
    }
}

/// Decodes a binary header; the body is set by the caller.
pub(crate) fn decode(bytes: &[u8]) -> Result<RemotingCommand> {
    let mut r = Reader { b: bytes, pos: 0 };
    let code = i32::from(r.i16("code")?);
    let lang = r.take(1, "language")?[0];
    let version = i32::from(r.i16("version")?);
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;
    let n = r.i32("remark length")?;
    let n = r.len(i64::from(n), "remark")?;
    let remark = if n == 0 {
        None
    } else {
        Some(r.string(n, "remark")?)
    };
    let n = r.i32("extFields length")?;
    let n = r.len(i64::from(n), "extFields")?;
    let ext_bytes = r.take(n, "extFields")?;
    let ext = decode_ext(ext_bytes)?;
    Ok(RemotingCommand {
        code,
        language: LanguageCode::from_i32(i32::from(lang)).unwrap_or(LanguageCode::Other),
        version,
        opaque,
        flag,
        remark,
        ext,
        body: bytes::Bytes::new(),
        serialize: SerializeType::RocketMq,
    })
}

fn decode_ext(bytes: &[u8]) -> Result<ExtFields> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut ext = ExtFields::new();
    while r.pos < bytes.len() {
        let kl = r.i16("key length")?;
        let kl = r.len(i64::from(kl), "key")?;
        let key = r.string(kl, "key")?;
        let vl = r.i32("value length")?;
        let vl = r.len(i64::from(vl), "value")?;
        let value = r.string(vl, "value")?;
        ext.push(key, value);
    }
    Ok(ext)
}

/// Encodes the header of `cmd`. Fails when the code, a key or the version does not fit.
pub(crate) fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) -> Result<()> {
    let too_large =
        |what: &'static str, len: usize, max: usize| ProtocolError::TooLarge { what, len, max };
    let code = i16::try_from(cmd.code).map_err(|_| {
        too_large(
            "binary header code",
            cmd.code.unsigned_abs() as usize,
            i16::MAX as usize,
        )
    })?;
    let version = i16::try_from(cmd.version).unwrap_or(i16::MAX);
    out.extend_from_slice(&code.to_be_bytes());
    out.push(u8::try_from(cmd.language.as_i32()).unwrap_or(7));
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&cmd.opaque.to_be_bytes());
    out.extend_from_slice(&cmd.flag.to_be_bytes());
    let remark = cmd.remark.as_deref().unwrap_or("");
    let rl = i32::try_from(remark.len())
        .map_err(|_| too_large("remark", remark.len(), i32::MAX as usize))?;
    out.extend_from_slice(&rl.to_be_bytes());
    out.extend_from_slice(remark.as_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    for (k, v) in cmd.ext.iter() {
        let kl = i16::try_from(k.len())
            .map_err(|_| too_large("extFields key", k.len(), i16::MAX as usize))?;
        let vl = i32::try_from(v.len())
            .map_err(|_| too_large("extFields value", v.len(), i32::MAX as usize))?;
        out.extend_from_slice(&kl.to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&vl.to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    let ext_len = out.len() - len_at - 4;
    let el =
        i32::try_from(ext_len).map_err(|_| too_large("extFields", ext_len, i32::MAX as usize))?;
    out[len_at..len_at + 4].copy_from_slice(&el.to_be_bytes());
    Ok(())
}

/// The opaque of a binary header, from its first bytes.
pub(crate) fn salvage_opaque(bytes: &[u8]) -> Option<i32> {
    let b = bytes.get(5..9)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
