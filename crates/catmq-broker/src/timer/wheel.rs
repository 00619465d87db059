//! The durable, hierarchical timing wheel: which scheduled message is due when.
//!
//! Entries (due time, commit-log position of the scheduled record, topic id, flags) live in
//! append-only *bucket files* under `<data_dir>/timer/`, one per time span: a minute for due
//! times within the hour, an hour within the day, a day beyond. A coarse bucket is cascaded
//! into the next finer level when its span comes within reach (day → hours a day ahead,
//! hour → minutes an hour ahead), and a minute bucket is loaded into memory a few seconds
//! before it starts; from there entries are delivered in due order. Each delivered or
//! cancelled entry is appended to the bucket's `.done` file, and a bucket whose minute has
//! passed with nothing left is deleted. A cancel is a tombstone entry in the bucket that the
//! original entry reaches by cascading, so it works at any distance.
//!
//! The wheel only indexes what the commit log holds: `checkpoint` says up to which timer-queue
//! offset entries are in bucket files. Re-indexing after a crash may add an entry twice; the
//! copies meet in the same minute bucket and are merged there by position.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes per entry.
const ENTRY: usize = 24;
/// A tombstone: the entry at this position must not be delivered.
const FLAG_CANCEL: u32 = 1;
/// Minute buckets are loaded this long before they start.
pub const LOOKAHEAD_MS: i64 = 2_000;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// A bucket: its level's span and its start (ms, aligned to the span).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    pub span: i64,
    pub start: i64,
}

impl Bucket {
    fn of(due: i64, span: i64) -> Self {
        Self {
            span,
            start: due.div_euclid(span) * span,
        }
    }

    /// The bucket an entry goes to when added at `now`.
    fn for_due(due: i64, now: i64) -> Self {
        let ahead = due.saturating_sub(now);
        let span = if ahead < HOUR {
            MINUTE
        } else if ahead < DAY {
            HOUR
        } else {
            DAY
        };
        Self::of(due, span)
    }

    fn finer(self) -> Option<i64> {
        match self.span {
            DAY => Some(HOUR),
            HOUR => Some(MINUTE),
            _ => None,
        }
    }

    /// When this coarse bucket must be cascaded.
    fn cascade_at(self) -> i64 {
        self.start - if self.span == DAY { DAY } else { HOUR }
    }

    fn file_name(self) -> String {
        format!("{}-{}.tw", self.span / 1000, self.start)
    }

    fn parse(name: &str) -> Option<Self> {
        let (span, start) = name.strip_suffix(".tw")?.split_once('-')?;
        let span = span.parse::<i64>().ok()? * 1000;
        matches!(span, MINUTE | HOUR | DAY).then_some(())?;
        Some(Self {
            span,
            start: start.parse().ok()?,
        })
    }
}

/// One entry of a bucket file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub due: i64,
    pub phys: u64,
    pub topic: u32,
    pub flags: u32,
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.due.to_be_bytes());
        out.extend_from_slice(&self.phys.to_be_bytes());
        out.extend_from_slice(&self.topic.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let due = i64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
        let phys = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        let topic = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
        let flags = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
        Some(Self {
            due,
            phys,
            topic,
            flags,
        })
    }
}

fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    match File::open(path) {
        Ok(mut f) => {
            let mut v = Vec::new();
            f.read_to_end(&mut v)?;
            Ok(v)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Entries of a bucket file (a torn last entry is ignored).
fn read_entries(path: &Path) -> io::Result<Vec<Entry>> {
    Ok(read_all(path)?
        .chunks_exact(ENTRY)
        .filter_map(Entry::decode)
        .collect())
}

fn read_done(path: &Path) -> io::Result<HashSet<u64>> {
    Ok(read_all(path)?
        .chunks_exact(8)
        .filter_map(|c| c.try_into().ok().map(u64::from_be_bytes))
        .collect())
}

/// Result of a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    Cancelled,
    AlreadyCancelled,
    /// Delivered already (or due now).
    TooLate,
}

/// Where a scheduled message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whereabouts {
    Pending,
    Cancelled,
    Delivered,
}

/// The wheel's files and its in-memory part (loaded minute buckets, counts).
#[derive(Debug)]
pub struct Wheel {
    dir: PathBuf,
    topics: Vec<String>,
    topic_ids: HashMap<String, u32>,
    /// Every bucket with a file.
    buckets: HashSet<Bucket>,
    /// Loaded minute buckets → entries of theirs still to deliver.
    loaded: HashMap<i64, usize>,
    /// Entries of loaded buckets still to deliver, in due order.
    heap: BTreeMap<(i64, u64), u32>,
    /// Positions of cancelled entries (all buckets).
    cancelled: HashSet<u64>,
    /// Pending entries per topic id.
    counts: HashMap<u32, u64>,
    /// Buckets written since the last sync.
    dirty: HashSet<PathBuf>,
    /// Timer-queue offset up to which entries are in bucket files.
    ingested: u64,
}

impl Wheel {
    /// Opens (creating) the wheel in `dir` and rebuilds counts and cancels from its files.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let topics: Vec<String> = String::from_utf8_lossy(&read_all(&dir.join("topics"))?)
            .lines()
            .map(str::to_owned)
            .collect();
        let topic_ids = topics
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        let ingested = String::from_utf8_lossy(&read_all(&dir.join("checkpoint"))?)
            .trim()
            .parse()
            .unwrap_or(0);
        let mut w = Self {
            dir,
            topics,
            topic_ids,
            buckets: HashSet::new(),
            loaded: HashMap::new(),
            heap: BTreeMap::new(),
            cancelled: HashSet::new(),
            counts: HashMap::new(),
            dirty: HashSet::new(),
            ingested,
        };
        w.rebuild()?;
        Ok(w)
    }

    fn rebuild(&mut self) -> io::Result<()> {
        for e in fs::read_dir(&self.dir)? {
            if let Some(b) = e?.file_name().to_str().and_then(Bucket::parse) {
                self.buckets.insert(b);
            }
        }
        let mut seen = HashSet::new();
        let mut live = Vec::new();
        for b in &self.buckets {
            let done = read_done(&self.done_path(*b))?;
            for e in read_entries(&self.path(*b))? {
                if e.flags & FLAG_CANCEL != 0 {
                    self.cancelled.insert(e.phys);
                } else if !done.contains(&e.phys) && seen.insert(e.phys) {
                    live.push(e);
                }
            }
        }
        for e in live {
            if !self.cancelled.contains(&e.phys) {
                *self.counts.entry(e.topic).or_default() += 1;
            }
        }
        Ok(())
    }

    fn path(&self, b: Bucket) -> PathBuf {
        self.dir.join(b.file_name())
    }

    fn done_path(&self, b: Bucket) -> PathBuf {
        self.dir.join(format!("{}.done", b.file_name()))
    }

    /// The timer-queue offset up to which entries are indexed.
    pub fn ingested(&self) -> u64 {
        self.ingested
    }

    /// The id of a topic, registered on first use.
    pub fn topic_id(&mut self, topic: &str) -> io::Result<u32> {
        if let Some(id) = self.topic_ids.get(topic) {
            return Ok(*id);
        }
        let id = u32::try_from(self.topics.len()).unwrap_or(u32::MAX);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("topics"))?;
        f.write_all(format!("{topic}\n").as_bytes())?;
        f.sync_data()?;
        self.topics.push(topic.to_owned());
        self.topic_ids.insert(topic.to_owned(), id);
        Ok(id)
    }

    fn append(&mut self, b: Bucket, entries: &[Entry]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(entries.len() * ENTRY);
        for e in entries {
            e.encode(&mut buf);
        }
        let path = self.path(b);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?
            .write_all(&buf)?;
        self.buckets.insert(b);
        self.dirty.insert(path);
        Ok(())
    }

    /// Adds entries (indexed up to timer-queue offset `ingested`).
    pub fn add(&mut self, entries: &[Entry], ingested: u64, now: i64) -> io::Result<()> {
        let mut by_bucket: HashMap<Bucket, Vec<Entry>> = HashMap::new();
        for e in entries {
            by_bucket
                .entry(Bucket::for_due(e.due, now))
                .or_default()
                .push(*e);
        }
        for (b, es) in by_bucket {
            self.append(b, &es)?;
            for e in es {
                if self.cancelled.contains(&e.phys) {
                    continue;
                }
                *self.counts.entry(e.topic).or_default() += 1;
                if let Some(n) = self.loaded.get_mut(&b.start).filter(|_| b.span == MINUTE) {
                    if self.heap.insert((e.due, e.phys), e.topic).is_none() {
                        *n += 1;
                    }
                }
            }
        }
        self.ingested = self.ingested.max(ingested);
        Ok(())
    }

    /// Cancels the entry of the scheduled record at `phys`, due at `due`.
    pub fn cancel(&mut self, due: i64, phys: u64, topic: u32, now: i64) -> io::Result<Cancel> {
        if self.cancelled.contains(&phys) {
            return Ok(Cancel::AlreadyCancelled);
        }
        let minute = Bucket::of(due, MINUTE);
        let in_heap = self.heap.remove(&(due, phys)).is_some();
        if !in_heap && (due <= now || self.loaded.contains_key(&minute.start)) {
            return Ok(Cancel::TooLate);
        }
        let b = if self.loaded.contains_key(&minute.start) {
            minute
        } else {
            Bucket::for_due(due, now)
        };
        let tomb = Entry {
            due,
            phys,
            topic,
            flags: FLAG_CANCEL,
        };
        self.append(b, &[tomb])?;
        self.sync()?;
        self.cancelled.insert(phys);
        if in_heap {
            if let Some(n) = self.loaded.get_mut(&minute.start) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(c) = self.counts.get_mut(&topic) {
            *c = c.saturating_sub(1);
        }
        Ok(Cancel::Cancelled)
    }

    /// Where the entry at `phys` due at `due` is.
    pub fn whereabouts(&self, due: i64, phys: u64, now: i64) -> Whereabouts {
        if self.cancelled.contains(&phys) {
            Whereabouts::Cancelled
        } else if self.heap.contains_key(&(due, phys)) {
            Whereabouts::Pending
        } else if due <= now || self.loaded.contains_key(&Bucket::of(due, MINUTE).start) {
            Whereabouts::Delivered
        } else {
            Whereabouts::Pending
        }
    }

    /// Cascades coarse buckets that came within reach and loads minute buckets about to start.
    pub fn advance(&mut self, now: i64) -> io::Result<()> {
        let mut coarse: Vec<Bucket> = self
            .buckets
            .iter()
            .filter(|b| b.span != MINUTE && b.cascade_at() <= now)
            .copied()
            .collect();
        coarse.sort_by_key(|b| std::cmp::Reverse(b.span));
        for b in coarse {
            self.cascade(b)?;
        }
        let due: Vec<Bucket> = self
            .buckets
            .iter()
            .filter(|b| b.span == MINUTE && b.start <= now + LOOKAHEAD_MS)
            .filter(|b| !self.loaded.contains_key(&b.start))
            .copied()
            .collect();
        for b in due {
            self.load(b)?;
        }
        Ok(())
    }

    fn cascade(&mut self, b: Bucket) -> io::Result<()> {
        let Some(span) = b.finer() else {
            return Ok(());
        };
        let done = read_done(&self.done_path(b))?;
        let mut by_bucket: BTreeMap<Bucket, Vec<Entry>> = BTreeMap::new();
        for e in read_entries(&self.path(b))? {
            if e.flags & FLAG_CANCEL != 0 || !done.contains(&e.phys) {
                by_bucket
                    .entry(Bucket::of(e.due, span))
                    .or_default()
                    .push(e);
            }
        }
        for (fine, es) in by_bucket {
            self.append(fine, &es)?;
            if fine.span == MINUTE && self.loaded.contains_key(&fine.start) {
                self.merge_loaded(fine.start, &es);
            }
        }
        self.sync()?;
        self.remove_files(b)
    }

    fn merge_loaded(&mut self, start: i64, es: &[Entry]) {
        for e in es {
            if e.flags & FLAG_CANCEL == 0
                && !self.cancelled.contains(&e.phys)
                && self.heap.insert((e.due, e.phys), e.topic).is_none()
            {
                if let Some(n) = self.loaded.get_mut(&start) {
                    *n += 1;
                }
            }
        }
    }

    fn load(&mut self, b: Bucket) -> io::Result<()> {
        let done = read_done(&self.done_path(b))?;
        let entries = read_entries(&self.path(b))?;
        let tombs: HashSet<u64> = entries
            .iter()
            .filter(|e| e.flags & FLAG_CANCEL != 0)
            .map(|e| e.phys)
            .collect();
        self.cancelled.extend(&tombs);
        self.loaded.insert(b.start, 0);
        let live: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.flags & FLAG_CANCEL == 0 && !done.contains(&e.phys))
            .collect();
        self.merge_loaded(b.start, &live);
        Ok(())
    }

    /// Entries due at `now`, in due order: (due, position, topic id).
    pub fn due(&self, now: i64, limit: usize) -> Vec<(i64, u64, u32)> {
        self.heap
            .range(..=(now, u64::MAX))
            .take(limit)
            .map(|((d, p), t)| (*d, *p, *t))
            .collect()
    }

    /// The earliest due time of a loaded entry.
    pub fn next_due(&self) -> Option<i64> {
        self.heap.keys().next().map(|(d, _)| *d)
    }

    /// Marks entries delivered; deletes minute buckets that are over and empty.
    pub fn delivered(&mut self, entries: &[(i64, u64, u32)], now: i64) -> io::Result<()> {
        let mut by_bucket: HashMap<i64, Vec<u8>> = HashMap::new();
        for (due, phys, topic) in entries {
            if self.heap.remove(&(*due, *phys)).is_none() {
                continue;
            }
            let start = Bucket::of(*due, MINUTE).start;
            by_bucket
                .entry(start)
                .or_default()
                .extend_from_slice(&phys.to_be_bytes());
            if let Some(n) = self.loaded.get_mut(&start) {
                *n = n.saturating_sub(1);
            }
            if let Some(c) = self.counts.get_mut(topic) {
                *c = c.saturating_sub(1);
            }
        }
        for (start, buf) in by_bucket {
            let b = Bucket {
                span: MINUTE,
                start,
            };
            let path = self.done_path(b);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?
                .write_all(&buf)?;
            self.dirty.insert(path);
        }
        self.drop_finished(now)
    }

    fn drop_finished(&mut self, now: i64) -> io::Result<()> {
        let over: Vec<i64> = self
            .loaded
            .iter()
            .filter(|(start, n)| **n == 0 && **start + MINUTE <= now)
            .map(|(s, _)| *s)
            .collect();
        if over.is_empty() {
            return Ok(());
        }
        self.sync()?;
        for start in over {
            self.loaded.remove(&start);
            self.remove_files(Bucket {
                span: MINUTE,
                start,
            })?;
        }
        Ok(())
    }

    fn remove_files(&mut self, b: Bucket) -> io::Result<()> {
        for p in [self.path(b), self.done_path(b)] {
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            self.dirty.remove(&p);
        }
        self.buckets.remove(&b);
        Ok(())
    }

    /// Makes written entries durable, then the checkpoint.
    pub fn sync(&mut self) -> io::Result<()> {
        for p in self.dirty.drain() {
            match File::open(&p) {
                Ok(f) => f.sync_data()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let tmp = self.dir.join("checkpoint.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(self.ingested.to_string().as_bytes())?;
        f.sync_data()?;
        fs::rename(&tmp, self.dir.join("checkpoint"))?;
        Ok(())
    }

    /// Pending entries per topic name (topics with none left out).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .filter_map(|(id, n)| {
                let name = self.topics.get(usize::try_from(*id).ok()?)?;
                Some((name.clone(), *n))
            })
            .collect()
    }

    /// Topic name of an id.
    pub fn topic_name(&self, id: u32) -> Option<&str> {
        self.topics
            .get(usize::try_from(id).ok()?)
            .map(String::as_str)
    }
}

#[cfg(test)]
#[path = "wheel_test.rs"]
mod tests;
