//! Committed consumer offsets, and the delivery progress of each delay level.
//!
//! Commits land in memory; a background task writes the table (Apache RocketMQ's
//! `consumerOffset.json` shape, `"topic@group" → queue → offset`) whenever it changed, every
//! `offset_persist_interval`. So an offset committed longer than that interval before a crash is
//! on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{persist, Result};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OffsetFile {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// topic → group → queue → offset
type Table = HashMap<String, HashMap<String, BTreeMap<i32, i64>>>;

/// Offsets per (topic, group, queue), saved to a file.
#[derive(Debug)]
pub struct OffsetTable {
    path: PathBuf,
    committed: Mutex<Table>,
    pulled: Mutex<Table>,
    dirty: AtomicBool,
}

fn split_key(k: &str) -> Option<(&str, &str)> {
    k.split_once('@')
}

fn get(t: &Table, topic: &str, group: &str, queue: i32) -> Option<i64> {
    t.get(topic)?.get(group)?.get(&queue).copied()
}

fn put(t: &mut Table, topic: &str, group: &str, queue: i32, offset: i64) {
    let groups = match t.get_mut(topic) {
        Some(g) => g,
        None => t.entry(topic.to_owned()).or_default(),
    };
    let queues = match groups.get_mut(group) {
        Some(q) => q,
        None => groups.entry(group.to_owned()).or_default(),
    };
    queues.insert(queue, offset);
}

impl OffsetTable {
    /// Loads `path` (missing: empty).
    pub fn load(path: PathBuf) -> Result<Self> {
        let file: OffsetFile = persist::load(&path)?.unwrap_or_default();
        let mut t = Table::new();
        for (key, queues) in file.offset_table {
            if let Some((topic, group)) = split_key(&key) {
                for (q, o) in queues {
                    put(&mut t, topic, group, q, o);
                }
            }
        }
        Ok(Self {
            path,
            committed: Mutex::new(t),
            pulled: Mutex::new(Table::new()),
            dirty: AtomicBool::new(false),
        })
    }

    /// The committed offset of a group on a queue.
    pub fn query(&self, group: &str, topic: &str, queue: i32) -> Option<i64> {
        self.committed
            .lock()
            .ok()
            .and_then(|t| get(&t, topic, group, queue))
    }

    /// Commits an offset (it is saved within the persist interval).
    pub fn commit(&self, group: &str, topic: &str, queue: i32, offset: i64) {
        if let Ok(mut t) = self.committed.lock() {
            if get(&t, topic, group, queue) != Some(offset) {
                put(&mut t, topic, group, queue, offset);
                self.dirty.store(true, Ordering::Release);
            }
        }
    }

    /// Records where a group's next pull of a queue starts (not persisted).
    pub fn record_pull(&self, group: &str, topic: &str, queue: i32, next: i64) {
        if let Ok(mut t) = self.pulled.lock() {
            put(&mut t, topic, group, queue, next);
        }
    }

    /// Where a group's next pull of a queue starts, if it pulled since the broker started.
    pub fn pull_offset(&self, group: &str, topic: &str, queue: i32) -> Option<i64> {
        self.pulled
            .lock()
            .ok()
            .and_then(|t| get(&t, topic, group, queue))
    }

    /// Topics a group has committed offsets for.
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        let Ok(t) = self.committed.lock() else {
            return Vec::new();
        };
        let mut v: Vec<String> = t
            .iter()
            .filter(|(_, g)| g.contains_key(group))
            .map(|(topic, _)| topic.clone())
            .collect();
        v.sort();
        v
    }

    /// Groups that have committed offsets on a topic.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let Ok(t) = self.committed.lock() else {
            return Vec::new();
        };
        let mut v: Vec<String> = t
            .get(topic)
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Forgets every offset on a topic.
    pub fn remove_topic(&self, topic: &str) {
        for t in [&self.committed, &self.pulled] {
            if let Ok(mut t) = t.lock() {
                t.remove(topic);
            }
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Forgets every offset of a group.
    pub fn remove_group(&self, group: &str) {
        for t in [&self.committed, &self.pulled] {
            if let Ok(mut t) = t.lock() {
                for groups in t.values_mut() {
                    groups.remove(group);
                }
                t.retain(|_, g| !g.is_empty());
            }
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Writes the table if it changed since the last write.
    pub fn persist(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let file = {
            let Ok(t) = self.committed.lock() else {
                return Ok(());
            };
            let mut f = OffsetFile::default();
            for (topic, groups) in t.iter() {
                for (group, queues) in groups {
                    f.offset_table
                        .insert(format!("{topic}@{group}"), queues.clone());
                }
            }
            f
        };
        persist::save(&self.path, &file).inspect_err(|_| {
            self.dirty.store(true, Ordering::Release);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_a_reload_after_persist() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consumerOffset.json");
        let t = OffsetTable::load(p.clone()).unwrap();
        assert_eq!(t.query("G", "T", 0), None);
        t.commit("G", "T", 0, 5);
        t.commit("G@x", "T", 1, 7);
        t.commit("H", "U", 0, 1);
        t.record_pull("G", "T", 0, 9);
        assert_eq!(t.pull_offset("G", "T", 0), Some(9));
        t.persist().unwrap();
        let t = OffsetTable::load(p.clone()).unwrap();
        assert_eq!(t.query("G", "T", 0), Some(5));
        assert_eq!(t.query("G@x", "T", 1), Some(7));
        assert_eq!(t.topics_of_group("H"), vec!["U".to_string()]);
        assert_eq!(
            t.groups_of_topic("T"),
            vec!["G".to_string(), "G@x".to_string()]
        );
        t.remove_group("G");
        t.remove_topic("U");
        t.persist().unwrap();
        let t = OffsetTable::load(p).unwrap();
        assert_eq!(t.query("G", "T", 0), None);
        assert_eq!(t.query("H", "U", 0), None);
        assert_eq!(t.query("G@x", "T", 1), Some(7));
    }
}
