//! One index file: the active one (slots in memory, entries appended) and sealed ones (read
//! with positioned reads).

use std::path::{Path, PathBuf};

use super::IndexHit;
use crate::fsutil::{self, DataFile};
use crate::{Result, StoreError};

const MAGIC: u32 = 0x4349_4458; // "CIDX"
const VERSION: u32 = 1;
const HEADER: usize = 64;
const ENTRY: usize = 28;
const TAIL_CAP: usize = 1024;
/// Longest chain walked in one file, so a hot key cannot stall a lookup for long.
const MAX_WALK: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) hash: u64,
    pub(crate) phys: u64,
    pub(crate) store_ms: i64,
    pub(crate) prev: u32,
}

impl IndexEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash.to_be_bytes());
        out.extend_from_slice(&self.phys.to_be_bytes());
        out.extend_from_slice(&self.store_ms.to_be_bytes());
        out.extend_from_slice(&self.prev.to_be_bytes());
    }

    fn decode(b: &[u8; ENTRY]) -> Self {
        let u64_at = |i: usize| {
            u64::from_be_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        Self {
            hash: u64_at(0),
            phys: u64_at(8),
            store_ms: i64::from_be_bytes(u64_at(16).to_be_bytes()),
            prev: u32::from_be_bytes([b[24], b[25], b[26], b[27]]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) slots: u32,
    pub(crate) capacity: u32,
    pub(crate) count: u32,
    pub(crate) sealed: bool,
    pub(crate) min_ms: i64,
    pub(crate) max_ms: i64,
    pub(crate) first_phys: u64,
    pub(crate) max_phys: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER] {
        let mut b = Vec::with_capacity(HEADER);
        b.extend_from_slice(&MAGIC.to_be_bytes());
        b.extend_from_slice(&VERSION.to_be_bytes());
        b.extend_from_slice(&self.slots.to_be_bytes());
        b.extend_from_slice(&self.capacity.to_be_bytes());
        b.extend_from_slice(&self.count.to_be_bytes());
        b.extend_from_slice(&u32::from(self.sealed).to_be_bytes());
        b.extend_from_slice(&self.min_ms.to_be_bytes());
        b.extend_from_slice(&self.max_ms.to_be_bytes());
        b.extend_from_slice(&self.first_phys.to_be_bytes());
        b.extend_from_slice(&self.max_phys.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        let mut out = [0u8; HEADER];
        out.copy_from_slice(&b);
        out
    }

    fn decode(b: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            what: "index header",
            path: path.to_path_buf(),
            pos: 0,
            detail: detail.into(),
        };
        if b.len() < HEADER {
            return Err(corrupt("short header"));
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        if u32_at(0) != MAGIC || u32_at(4) != VERSION {
            return Err(corrupt("bad magic or version"));
        }
        if crc32fast::hash(&b[..60]) != u32_at(60) {
            return Err(corrupt("header CRC mismatch"));
        }
        let h = Self {
            slots: u32_at(8),
            capacity: u32_at(12),
            count: u32_at(16),
            sealed: u32_at(20) != 0,
            min_ms: u64_at(24) as i64,
            max_ms: u64_at(32) as i64,
            first_phys: u64_at(40),
            max_phys: u64_at(48),
        };
        if h.slots == 0 || h.slots > 1 << 28 {
            return Err(corrupt("slot count out of range"));
        }
        Ok(h)
    }

    fn overlaps(&self, begin_ms: i64, end_ms: i64) -> bool {
        self.count > 0 && self.min_ms <= end_ms && self.max_ms >= begin_ms
    }
}

fn paths(dir: &Path, first: u64) -> (PathBuf, PathBuf) {
    let name = fsutil::offset_name(first);
    (
        dir.join(format!("{name}.idx")),
        dir.join(format!("{name}.slots")),
    )
}

fn read_entry(file: &DataFile, idx: u32) -> Result<IndexEntry> {
    let mut b = [0u8; ENTRY];
    let n = file.read_at(&mut b, u64::from(idx) * ENTRY as u64)?;
    if n < ENTRY {
        return Err(StoreError::Corrupt {
            what: "index entry",
            path: file.path.clone(),
            pos: u64::from(idx) * ENTRY as u64,
            detail: "short read".into(),
        });
    }
    Ok(IndexEntry::decode(&b))
}

/// Walks one slot's chain; `get` returns the entry at an index.
fn walk(
    head: u32,
    count: u32,
    hash: u64,
    (begin_ms, end_ms): (i64, i64),
    limit: usize,
    mut get: impl FnMut(u32) -> Result<IndexEntry>,
) -> Result<Vec<IndexHit>> {
    let mut hits = Vec::new();
    let mut next = head;
    let mut walked = 0;
    while next != 0 && next <= count && hits.len() < limit && walked < MAX_WALK {
        let e = get(next - 1)?;
        if e.hash == hash && e.store_ms >= begin_ms && e.store_ms <= end_ms {
            hits.push(IndexHit {
                phys: e.phys,
                store_ms: e.store_ms,
            });
        }
        // Chains only point backwards; anything else is corruption, so stop.
        if e.prev >= next {
            break;
        }
        next = e.prev;
        walked += 1;
    }
    Ok(hits)
}

/// An index file that takes no more entries.
#[derive(Debug)]
pub(crate) struct SealedIndex {
    dir: PathBuf,
    pub(crate) header: Header,
    entries: DataFile,
    slots: DataFile,
}

impl SealedIndex {
    pub(crate) fn open(dir: &Path, first: u64) -> Result<Self> {
        let (idx, slots_path) = paths(dir, first);
        let slots = DataFile::open_rw(&slots_path)?;
        let mut b = [0u8; HEADER];
        slots.read_at(&mut b, 0)?;
        let header = Header::decode(&b, &slots_path)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            header,
            entries: DataFile::open_rw(&idx)?,
            slots,
        })
    }

    pub(crate) fn reopen(&self) -> Result<Self> {
        Self::open(&self.dir, self.header.first_phys)
    }

    pub(crate) fn overlaps(&self, begin_ms: i64, end_ms: i64) -> bool {
        self.header.overlaps(begin_ms, end_ms)
    }

    pub(crate) fn lookup(
        &self,
        hash: u64,
        begin_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<IndexHit>> {
        let slot = hash % u64::from(self.header.slots);
        let mut b = [0u8; 4];
        self.slots.read_at(&mut b, HEADER as u64 + slot * 4)?;
        let head = u32::from_be_bytes(b);
        walk(
            head,
            self.header.count,
            hash,
            (begin_ms, end_ms),
            limit,
            |i| read_entry(&self.entries, i),
        )
    }

    pub(crate) fn remove_files(&self) -> Result<()> {
        fsutil::remove_file(&self.entries.path)?;
        fsutil::remove_file(&self.slots.path)?;
        fsutil::sync_dir(&self.dir)
    }
}

/// The index file that takes new entries.
#[derive(Debug)]
pub(crate) struct ActiveIndex {
    dir: PathBuf,
    header: Header,
    slots: Vec<u32>,
    entries: DataFile,
    slots_path: PathBuf,
    /// Entries below this index are written to the entries file.
    written: u32,
    tail: Vec<IndexEntry>,
}

impl ActiveIndex {
    pub(crate) fn create(dir: &Path, first_phys: u64, slots: u32, capacity: u32) -> Result<Self> {
        let (idx, slots_path) = paths(dir, first_phys);
        let entries = DataFile::open_rw(&idx)?;
        entries.truncate(0)?;
        let header = Header {
            slots,
            capacity,
            count: 0,
            sealed: false,
            min_ms: i64::MAX,
            max_ms: i64::MIN,
            first_phys,
            max_phys: first_phys,
        };
        let mut a = Self {
            dir: dir.to_path_buf(),
            header,
            slots: vec![0; slots as usize],
            entries,
            slots_path,
            written: 0,
            tail: Vec::new(),
        };
        a.persist()?;
        Ok(a)
    }

    pub(crate) fn resume(s: SealedIndex) -> Result<Self> {
        let mut raw = vec![0u8; s.header.slots as usize * 4];
        let n = s.slots.read_at(&mut raw, HEADER as u64)?;
        if n < raw.len() {
            return Err(StoreError::Corrupt {
                what: "index slots",
                path: s.slots.path.clone(),
                pos: HEADER as u64,
                detail: "short slot table".into(),
            });
        }
        let slots = raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let header = Header {
            sealed: false,
            ..s.header
        };
        Ok(Self {
            dir: s.dir,
            header,
            slots,
            slots_path: s.slots.path,
            entries: s.entries,
            written: header.count,
            tail: Vec::new(),
        })
    }

    pub(crate) fn first_phys(&self) -> u64 {
        self.header.first_phys
    }

    pub(crate) fn is_full(&self) -> bool {
        self.header.count >= self.header.capacity
    }

    pub(crate) fn overlaps(&self, begin_ms: i64, end_ms: i64) -> bool {
        self.header.overlaps(begin_ms, end_ms)
    }

    fn slot(&self, hash: u64) -> usize {
        usize::try_from(hash % self.slots.len() as u64).unwrap_or(0)
    }

    pub(crate) fn add(&mut self, mut e: IndexEntry) -> Result<()> {
        let slot = self.slot(e.hash);
        e.prev = self.slots[slot];
        self.tail.push(e);
        self.header.count += 1;
        self.slots[slot] = self.header.count;
        self.header.min_ms = self.header.min_ms.min(e.store_ms);
        self.header.max_ms = self.header.max_ms.max(e.store_ms);
        self.header.max_phys = self.header.max_phys.max(e.phys);
        if self.tail.len() >= TAIL_CAP {
            self.write_tail()?;
        }
        Ok(())
    }

    fn write_tail(&mut self) -> Result<()> {
        if self.tail.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(self.tail.len() * ENTRY);
        self.tail.iter().for_each(|e| e.encode(&mut buf));
        self.entries
            .write_at(&buf, u64::from(self.written) * ENTRY as u64)?;
        self.written = self.header.count;
        self.tail.clear();
        Ok(())
    }

    fn entry(&self, idx: u32) -> Result<IndexEntry> {
        if idx >= self.written {
            if let Some(e) = self.tail.get((idx - self.written) as usize) {
                return Ok(*e);
            }
        }
        read_entry(&self.entries, idx)
    }

    /// Writes and fsyncs the entries, then atomically replaces the slots file.
    pub(crate) fn persist(&mut self) -> Result<()> {
        self.write_tail()?;
        self.entries.sync_data()?;
        let mut buf = Vec::with_capacity(HEADER + self.slots.len() * 4);
        buf.extend_from_slice(&self.header.encode());
        self.slots
            .iter()
            .for_each(|s| buf.extend_from_slice(&s.to_be_bytes()));
        fsutil::write_atomic(&self.slots_path, &buf)
    }

    pub(crate) fn lookup(
        &self,
        hash: u64,
        begin_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<IndexHit>> {
        let head = self.slots[self.slot(hash)];
        walk(
            head,
            self.header.count,
            hash,
            (begin_ms, end_ms),
            limit,
            |i| self.entry(i),
        )
    }

    pub(crate) fn truncate_from_phys(&mut self, phys_limit: u64) -> Result<()> {
        while self.header.count > 0 {
            let idx = self.header.count - 1;
            let e = self.entry(idx)?;
            if e.phys < phys_limit {
                self.header.max_phys = e.phys;
                break;
            }
            let slot = self.slot(e.hash);
            if self.slots[slot] == idx + 1 {
                self.slots[slot] = e.prev;
            }
            self.header.count = idx;
        }
        if self.written > self.header.count {
            self.written = self.header.count;
        }
        let keep = (self.header.count - self.written) as usize;
        self.tail.truncate(keep);
        self.persist()
    }

    pub(crate) fn seal(mut self) -> Result<SealedIndex> {
        self.header.sealed = true;
        self.persist()?;
        SealedIndex::open(&self.dir, self.header.first_phys)
    }

    pub(crate) fn remove(self) -> Result<()> {
        fsutil::remove_file(&self.entries.path)?;
        fsutil::remove_file(&self.slots_path)?;
        fsutil::sync_dir(&self.dir)
    }
}
