//! The key index: finds messages by a key (`KEYS`, `UNIQ_KEY`) within a time range.
//!
//! Index files live in `index/`, named by the physical offset of their first entry. Each has two
//! parts:
//! * `<first>.idx`: entries, 28 bytes each, appended in log order: key hash (u64), physical
//!   offset (u64), store timestamp (i64), previous entry with the same slot (u32, index + 1, or 0).
//! * `<first>.slots`: a 64-byte header (magic, slot count, entry count, sealed flag, time and
//!   offset range, CRC) then one u32 per hash slot: the newest entry of that slot (index + 1).
//!   It is rewritten atomically at every checkpoint, so it always agrees with a prefix of the
//!   entries file.
//!
//! The hash is FNV-1a over `topic`, a 0x01 byte and the key, so a lookup can match a different
//! key that happens to share the hash. Callers check every hit against the stored record.

mod feed;
mod file;

use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use feed::{Handed, IndexFeed, PendingKey};
use file::{ActiveIndex, IndexEntry, SealedIndex};

use crate::fsutil;
use crate::Result;

/// A hit: where a message with a matching key hash is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHit {
    pub(crate) phys: u64,
    pub(crate) store_ms: i64,
}

/// Hash of a key within a topic.
pub(crate) fn key_hash(topic: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let step = |h: u64, b: &u8| (h ^ u64::from(*b)).wrapping_mul(PRIME);
    let h = topic.as_bytes().iter().fold(OFFSET, step);
    let h = step(h, &1);
    key.as_bytes().iter().fold(h, step)
}

/// All index files. Lives behind the lock in [`IndexFeed`].
#[derive(Debug)]
pub(crate) struct KeyIndex {
    dir: PathBuf,
    slots: u32,
    capacity: u32,
    sealed: Vec<Arc<SealedIndex>>,
    active: Option<ActiveIndex>,
    /// An empty buffer the feed swaps in for its pending entries.
    spare: Vec<PendingKey>,
}

impl KeyIndex {
    /// Opens the index files under `dir`.
    pub(crate) fn open(dir: PathBuf, slots: u32, capacity: u32) -> Result<Self> {
        fsutil::create_dir(&dir)?;
        let mut sealed = Vec::new();
        let mut active = None;
        let files = fsutil::list_offset_files(&dir, Some("slots"))?;
        let last = files.len().saturating_sub(1);
        for (i, (first, _)) in files.iter().enumerate() {
            let s = SealedIndex::open(&dir, *first)?;
            if i == last && !s.header.sealed {
                active = Some(ActiveIndex::resume(s)?);
            } else {
                sealed.push(Arc::new(s));
            }
        }
        Ok(Self {
            dir,
            slots,
            capacity,
            sealed,
            active,
            spare: Vec::new(),
        })
    }

    /// Adds an entry for a message stored at `phys`.
    pub(crate) fn add(&mut self, hash: u64, phys: u64, store_ms: i64) -> Result<()> {
        if self.active.as_ref().is_some_and(|a| a.is_full()) {
            self.seal_active()?;
        }
        let active = match &mut self.active {
            Some(a) => a,
            None => self.active.insert(ActiveIndex::create(
                &self.dir,
                phys,
                self.slots,
                self.capacity,
            )?),
        };
        active.add(IndexEntry {
            hash,
            phys,
            store_ms,
            prev: 0,
        })
    }

    fn seal_active(&mut self) -> Result<()> {
        if let Some(a) = self.active.take() {
            self.sealed.push(Arc::new(a.seal()?));
        }
        Ok(())
    }

    /// Makes every entry added so far durable (entries, then slots and header).
    pub(crate) fn persist(&mut self) -> Result<()> {
        match &mut self.active {
            Some(a) => a.persist(),
            None => Ok(()),
        }
    }

    /// Hits for `hash` stored within `[begin_ms, end_ms]`, newest first, at most `limit`
    /// entries looked at per file. Sealed files are returned to be searched without the lock.
    pub(crate) fn lookup_active(
        &self,
        hash: u64,
        begin_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<(Vec<IndexHit>, Vec<Arc<SealedIndex>>)> {
        let hits = match &self.active {
            Some(a) if a.overlaps(begin_ms, end_ms) => a.lookup(hash, begin_ms, end_ms, limit)?,
            _ => Vec::new(),
        };
        let sealed = self
            .sealed
            .iter()
            .rev()
            .filter(|s| s.overlaps(begin_ms, end_ms))
            .cloned()
            .collect();
        Ok((hits, sealed))
    }

    /// Recovery: forgets every entry for records at or after `phys_limit`.
    pub(crate) fn truncate_from_phys(&mut self, phys_limit: u64) -> Result<()> {
        loop {
            if let Some(a) = &mut self.active {
                if a.first_phys() >= phys_limit {
                    let a = self.active.take();
                    if let Some(a) = a {
                        a.remove()?;
                    }
                    continue;
                }
                return a.truncate_from_phys(phys_limit);
            }
            let Some(last) = self.sealed.last() else {
                return Ok(());
            };
            if last.header.max_phys < phys_limit {
                return Ok(());
            }
            if let Some(s) = self.sealed.pop() {
                self.active = Some(ActiveIndex::resume(unshare(s)?)?);
            }
        }
    }

    /// Retention: deletes sealed files whose every entry lies before `log_min`.
    pub(crate) fn apply_log_min(&mut self, log_min: u64) -> Result<()> {
        while self
            .sealed
            .first()
            .is_some_and(|s| s.header.max_phys < log_min)
        {
            let s = self.sealed.remove(0);
            s.remove_files()?;
        }
        Ok(())
    }

    /// Number of index files.
    pub(crate) fn file_count(&self) -> usize {
        self.sealed.len() + usize::from(self.active.is_some())
    }
}

fn unshare(s: Arc<SealedIndex>) -> Result<SealedIndex> {
    Arc::try_unwrap(s).or_else(|shared| shared.reopen())
}

/// Searches sealed files (outside the index lock) for `hash`.
pub(crate) fn lookup_sealed(
    files: &[Arc<SealedIndex>],
    hash: u64,
    begin_ms: i64,
    end_ms: i64,
    limit: usize,
) -> Result<Vec<IndexHit>> {
    let mut hits = Vec::new();
    for f in files {
        if hits.len() >= limit {
            break;
        }
        hits.extend(f.lookup(hash, begin_ms, end_ms, limit - hits.len())?);
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_separates_topic_from_key() {
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
        assert_eq!(key_hash("t", "k"), key_hash("t", "k"));
    }

    #[test]
    fn add_lookup_seal_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let mut idx = KeyIndex::open(path.clone(), 8, 5).unwrap();
        for i in 0..12u64 {
            idx.add(
                key_hash("t", &format!("k{}", i % 3)),
                i * 100,
                1000 + i as i64,
            )
            .unwrap();
        }
        assert_eq!(idx.file_count(), 3);
        let find = |idx: &KeyIndex, key: &str| {
            let (mut hits, sealed) = idx
                .lookup_active(key_hash("t", key), 0, i64::MAX, 100)
                .unwrap();
            hits.extend(lookup_sealed(&sealed, key_hash("t", key), 0, i64::MAX, 100).unwrap());
            let mut p: Vec<u64> = hits.iter().map(|h| h.phys).collect();
            p.sort();
            p
        };
        assert_eq!(find(&idx, "k1"), vec![100, 400, 700, 1000]);
        idx.persist().unwrap();
        drop(idx);
        let mut idx = KeyIndex::open(path.clone(), 8, 5).unwrap();
        assert_eq!(find(&idx, "k1"), vec![100, 400, 700, 1000]);
        // Time range filter.
        let (hits, sealed) = idx
            .lookup_active(key_hash("t", "k0"), 1003, 1006, 100)
            .unwrap();
        let mut all: Vec<u64> = hits.iter().map(|h| h.phys).collect();
        all.extend(
            lookup_sealed(&sealed, key_hash("t", "k0"), 1003, 1006, 100)
                .unwrap()
                .iter()
                .map(|h| h.phys),
        );
        all.sort();
        assert_eq!(all, vec![300, 600]);
        // Recovery truncation drops entries at or after a position, across files.
        idx.truncate_from_phys(450).unwrap();
        assert_eq!(find(&idx, "k1"), vec![100, 400]);
        assert_eq!(find(&idx, "k0"), vec![0, 300]);
        idx.add(key_hash("t", "k1"), 460, 2000).unwrap();
        idx.persist().unwrap();
        drop(idx);
        let mut idx = KeyIndex::open(path, 8, 5).unwrap();
        assert_eq!(find(&idx, "k1"), vec![100, 400, 460]);
        idx.apply_log_min(460).unwrap();
        assert_eq!(find(&idx, "k1"), vec![460]);
    }
}
