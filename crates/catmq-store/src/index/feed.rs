//! [`IndexFeed`]: the key index behind its lock, fed in the background.
//!
//! The append path does not update the index itself. It hands each message's key hashes to
//! the feed (a short append to a vector under a lock nothing slow holds) and the indexer thread
//! adds them to the index in batches, on another core. Anyone who reads the index (a lookup, a
//! checkpoint, retention) first adds what is pending, under the index lock, so the index is
//! never seen behind the log: a message is findable by key as soon as its append returns.
//!
//! Batches go into the index in log order: they are taken from the pending list only while the
//! index lock is held. The pending list is bounded: an appender that finds it full adds it to
//! the index itself.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::KeyIndex;
use crate::{Result, StoreError};

/// One index entry waiting to be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingKey {
    pub(crate) hash: u64,
    pub(crate) phys: u64,
    pub(crate) store_ms: i64,
}

/// The indexer is woken when this many entries are pending.
const WAKE_AT: usize = 16 * 1024;
/// An appender that finds this many entries pending adds them to the index itself.
const MAX_PENDING: usize = 64 * 1024;
/// How long the indexer lets entries gather once some arrived.
const LINGER: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
struct Pending {
    entries: Vec<PendingKey>,
    /// The indexer waits for the first entry (not lingering).
    idle: bool,
    stopped: bool,
}

/// The key index and the entries not yet added to it.
#[derive(Debug)]
pub(crate) struct IndexFeed {
    index: Mutex<KeyIndex>,
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// What an appender should do after handing entries over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    /// The indexer will add them.
    Queued,
    /// Too much is pending: add it to the index now ([`IndexFeed::current`]).
    CatchUp,
}

impl IndexFeed {
    pub(crate) fn new(index: KeyIndex) -> Self {
        Self {
            index: Mutex::new(index),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
        }
    }

    /// Hands entries, in log order, to the indexer.
    pub(crate) fn hand_over(&self, keys: impl Iterator<Item = PendingKey>) -> Result<Handed> {
        let mut p = self.pending.lock().map_err(|_| StoreError::Closed)?;
        let before = p.entries.len();
        p.entries.extend(keys);
        let len = p.entries.len();
        let wake = (p.idle && len > before) || (before < WAKE_AT && len >= WAKE_AT);
        drop(p);
        if wake {
            self.wake.notify_one();
        }
        Ok(if len >= MAX_PENDING {
            Handed::CatchUp
        } else {
            Handed::Queued
        })
    }

    /// The index with every entry handed over so far added to it.
    pub(crate) fn current(&self) -> Result<MutexGuard<'_, KeyIndex>> {
        let mut index = self.index.lock().map_err(|_| StoreError::Closed)?;
        let batch = {
            let mut p = self.pending.lock().map_err(|_| StoreError::Closed)?;
            let spare = std::mem::take(&mut index.spare);
            std::mem::replace(&mut p.entries, spare)
        };
        let added = batch
            .iter()
            .try_for_each(|k| index.add(k.hash, k.phys, k.store_ms));
        index.spare = batch;
        index.spare.clear();
        added.map(|()| index)
    }

    /// Waits until there is a batch worth adding, or the feed is stopped (returns false).
    pub(crate) fn wait_for_work(&self) -> bool {
        let Ok(mut p) = self.pending.lock() else {
            return false;
        };
        loop {
            if p.stopped {
                return false;
            }
            if p.entries.len() >= WAKE_AT {
                return true;
            }
            if !p.entries.is_empty() {
                return match self.wake.wait_timeout(p, LINGER) {
                    Ok((p, _)) => !p.stopped,
                    Err(_) => false,
                };
            }
            p.idle = true;
            p = match self.wake.wait(p) {
                Ok(p) => p,
                Err(_) => return false,
            };
            p.idle = false;
        }
    }

    /// Makes [`IndexFeed::wait_for_work`] return false from now on.
    pub(crate) fn stop(&self) {
        if let Ok(mut p) = self.pending.lock() {
            p.stopped = true;
        }
        self.wake.notify_all();
    }

    /// Number of entries not yet added.
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.lock().map(|p| p.entries.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::key_hash;

    fn feed(dir: &std::path::Path) -> IndexFeed {
        IndexFeed::new(KeyIndex::open(dir.join("index"), 64, 1_000).unwrap())
    }

    fn key(i: u64) -> PendingKey {
        PendingKey {
            hash: key_hash("T", &format!("k{i}")),
            phys: i * 100,
            store_ms: 1_000 + i as i64,
        }
    }

    #[test]
    fn handed_over_entries_are_found_before_the_indexer_runs() {
        let dir = tempfile::tempdir().unwrap();
        let f = feed(dir.path());
        assert_eq!(f.hand_over((0..10).map(key)).unwrap(), Handed::Queued);
        assert_eq!(f.pending_len(), 10);
        let index = f.current().unwrap();
        let (hits, _) = index.lookup_active(key(7).hash, 0, i64::MAX, 8).unwrap();
        assert_eq!(hits.iter().map(|h| h.phys).collect::<Vec<_>>(), vec![700]);
        drop(index);
        assert_eq!(f.pending_len(), 0);
    }

    #[test]
    fn a_full_pending_list_asks_the_appender_to_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let f = IndexFeed::new(KeyIndex::open(dir.path().join("i"), 64, 1 << 20).unwrap());
        assert_eq!(
            f.hand_over((0..MAX_PENDING as u64 - 1).map(key)).unwrap(),
            Handed::Queued
        );
        assert_eq!(f.hand_over((0..1).map(key)).unwrap(), Handed::CatchUp);
        drop(f.current().unwrap());
        assert_eq!(f.pending_len(), 0);
    }

    #[test]
    fn the_indexer_wakes_for_work_and_for_stop() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::sync::Arc::new(feed(dir.path()));
        let worker = {
            let f = f.clone();
            std::thread::spawn(move || {
                let mut rounds = 0;
                while f.wait_for_work() {
                    drop(f.current().unwrap());
                    rounds += 1;
                }
                rounds
            })
        };
        f.hand_over((0..3).map(key)).unwrap();
        while f.pending_len() > 0 {
            std::thread::yield_now();
        }
        f.stop();
        assert!(worker.join().unwrap() >= 1);
        let index = f.current().unwrap();
        let (hits, _) = index.lookup_active(key(2).hash, 0, i64::MAX, 8).unwrap();
        assert_eq!(hits.len(), 1);
    }
}
