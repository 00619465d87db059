//! The checkpoint: the log position before which every consume-queue and index entry is
//! durable. Recovery re-dispatches only the records after it.
//!
//! File `checkpoint`, 32 bytes, big-endian: magic "CCKP" (u32), version (u32), position (u64),
//! written at (ms, i64), clean shutdown (u32), CRC32 of the first 28 bytes (u32). Replaced
//! atomically (temporary file, fsync, rename).

use std::path::Path;

use crate::fsutil;
use crate::Result;

const MAGIC: u32 = 0x4343_4B50;
const VERSION: u32 = 1;
const FILE: &str = "checkpoint";

/// A persisted checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Everything before this log position is in the consume queues and the index on disk.
    pub position: u64,
    /// When it was written (ms).
    pub written_ms: i64,
    /// Whether the store was closed cleanly.
    pub clean: bool,
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        b.extend_from_slice(&MAGIC.to_be_bytes());
        b.extend_from_slice(&VERSION.to_be_bytes());
        b.extend_from_slice(&self.position.to_be_bytes());
        b.extend_from_slice(&self.written_ms.to_be_bytes());
        b.extend_from_slice(&u32::from(self.clean).to_be_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let b: &[u8; 32] = b.try_into().ok()?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        if u32_at(0) != MAGIC || u32_at(4) != VERSION || crc32fast::hash(&b[..28]) != u32_at(28) {
            return None;
        }
        Some(Self {
            position: u64_at(8),
            written_ms: u64_at(16) as i64,
            clean: u32_at(24) != 0,
        })
    }

    /// Reads the checkpoint of the store in `dir`; `None` when missing or damaged (logged).
    pub(crate) fn read(dir: &Path) -> Option<Self> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(b) => {
                let cp = Self::decode(&b);
                if cp.is_none() {
                    tracing::warn!(path = %path.display(), "checkpoint is damaged; recovering from the start of the log");
                }
                cp
            }
            Err(_) => None,
        }
    }

    /// Replaces the checkpoint of the store in `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        fsutil::write_atomic(&dir.join(FILE), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()), None);
        let cp = Checkpoint {
            position: 123_456,
            written_ms: 1_700_000_000_000,
            clean: true,
        };
        cp.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()), Some(cp));
        let path = dir.path().join(FILE);
        let mut b = std::fs::read(&path).unwrap();
        b[10] ^= 1;
        std::fs::write(&path, &b).unwrap();
        assert_eq!(Checkpoint::read(dir.path()), None);
    }
}
