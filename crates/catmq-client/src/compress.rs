//! Body compression (sysFlag bit 0x1, type in bits 8..=10: 0 legacy zlib, 1 LZ4, 2 ZSTD,
//! 3 ZLIB), as RocketMQ clients write it: zlib streams, LZ4 frames, zstd frames.

use std::io::Read;

use bytes::Bytes;
use catmq_common::record::sys_flag;

/// Largest body a decompression may produce.
const MAX_DECOMPRESSED: u64 = 256 << 20;

const TYPE_SHIFT: i32 = 8;
const TYPE_MASK: i32 = 0x7 << TYPE_SHIFT;

/// A compression algorithm for bodies over the producer's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// zlib (what every RocketMQ client can read).
    #[default]
    Zlib,
    /// LZ4 frames.
    Lz4,
    /// Zstandard frames.
    Zstd,
}

impl Compression {
    /// The sysFlag bits that announce this algorithm (with the COMPRESSED bit).
    pub fn sys_flag(self) -> i32 {
        let kind = match self {
            Self::Lz4 => 1,
            Self::Zstd => 2,
            Self::Zlib => 3,
        };
        sys_flag::COMPRESSED | (kind << TYPE_SHIFT)
    }
}

/// Compresses `body` (`level` 0..=9 for zlib, 1..=19 for zstd; ignored by LZ4).
pub fn compress(body: &[u8], kind: Compression, level: u32) -> std::io::Result<Bytes> {
    use std::io::Write;
    let out = match kind {
        Compression::Zlib => {
            let mut enc = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(body.len() / 2),
                flate2::Compression::new(level.min(9)),
            );
            enc.write_all(body)?;
            enc.finish()?
        }
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(body.len() / 2));
            enc.write_all(body)?;
            enc.finish().map_err(std::io::Error::other)?
        }
        Compression::Zstd => zstd::stream::encode_all(body, level.clamp(1, 19) as i32)?,
    };
    Ok(Bytes::from(out))
}

/// Decompresses a body stored with `flags` (a record's sysFlag).
pub fn decompress(body: &[u8], flags: i32) -> Result<Bytes, String> {
    let kind = (flags & TYPE_MASK) >> TYPE_SHIFT;
    let reader: Box<dyn Read + '_> = match kind {
        0 | 3 => Box::new(flate2::read::ZlibDecoder::new(body)),
        1 => Box::new(lz4_flex::frame::FrameDecoder::new(body)),
        2 => Box::new(zstd::stream::read::Decoder::new(body).map_err(|e| e.to_string())?),
        other => {
            return Err(format!(
                "unknown compression type {other} in sysFlag {flags:#x}"
            ))
        }
    };
    let mut out = Vec::with_capacity(body.len() * 3);
    reader
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt compressed body: {e}"))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(format!(
            "compressed body expands past {MAX_DECOMPRESSED} bytes"
        ));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 7) as u8).collect();
        for kind in [Compression::Zlib, Compression::Lz4, Compression::Zstd] {
            let c = compress(&body, kind, 5).unwrap_or_default();
            assert!(c.len() < body.len() / 4, "{kind:?}");
            let d = decompress(&c, kind.sys_flag());
            assert_eq!(d.as_deref(), Ok(&body[..]), "{kind:?}");
        }
        // Legacy zlib: COMPRESSED without a type.
        let c = compress(&body, Compression::Zlib, 5).unwrap_or_default();
        assert_eq!(decompress(&c, 1).as_deref(), Ok(&body[..]));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decompress(b"not compressed", 1).is_err());
        assert!(decompress(b"x", 1 | (6 << 8)).is_err());
    }
}
