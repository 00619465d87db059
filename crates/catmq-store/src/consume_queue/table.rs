//! The set of consume queues, by topic and queue id.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::ConsumeQueue;
use crate::fsutil;
use crate::{Result, StoreError};

type Map = HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>;

/// All consume queues of a store.
#[derive(Debug)]
pub(crate) struct QueueTable {
    dir: PathBuf,
    per_file: u64,
    map: RwLock<Map>,
}

impl QueueTable {
    /// Opens every queue found under `dir`.
    pub(crate) fn open(dir: PathBuf, per_file: u64) -> Result<Self> {
        fsutil::create_dir(&dir)?;
        let mut map = Map::new();
        let topics = std::fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
        for t in topics {
            let tpath = t.map_err(|e| StoreError::io("list", &dir, e))?.path();
            let Some(topic) = tpath
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(fsutil::unescape_topic)
            else {
                tracing::warn!(path = %tpath.display(), "ignoring unexpected entry in consumequeue/");
                continue;
            };
            let queues =
                std::fs::read_dir(&tpath).map_err(|e| StoreError::io("list", &tpath, e))?;
            for q in queues {
                let qpath = q.map_err(|e| StoreError::io("list", &tpath, e))?.path();
                let Some(qid) = qpath
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                let cq = ConsumeQueue::open(qpath, topic.clone(), qid, per_file)?;
                map.entry(topic.clone())
                    .or_default()
                    .insert(qid, Arc::new(cq));
            }
        }
        Ok(Self {
            dir,
            per_file,
            map: RwLock::new(map),
        })
    }

    /// The queue, if it exists.
    pub(crate) fn get(&self, topic: &str, qid: i32) -> Option<Arc<ConsumeQueue>> {
        self.map.read().ok()?.get(topic)?.get(&qid).cloned()
    }

    /// The queue, created if missing.
    pub(crate) fn get_or_create(&self, topic: &str, qid: i32) -> Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.get(topic, qid) {
            return Ok(q);
        }
        let mut map = self.map.write().map_err(|_| StoreError::Closed)?;
        let queues = map.entry(topic.to_owned()).or_default();
        if let Some(q) = queues.get(&qid) {
            return Ok(q.clone());
        }
        let dir = self
            .dir
            .join(fsutil::escape_topic(topic))
            .join(qid.to_string());
        let q = Arc::new(ConsumeQueue::open(
            dir,
            topic.to_owned(),
            qid,
            self.per_file,
        )?);
        queues.insert(qid, q.clone());
        Ok(q)
    }

    /// Every queue.
    pub(crate) fn all(&self) -> Vec<Arc<ConsumeQueue>> {
        self.map
            .read()
            .map(|m| m.values().flat_map(|q| q.values().cloned()).collect())
            .unwrap_or_default()
    }

    /// Removes a topic's queues and their files.
    pub(crate) fn remove_topic(&self, topic: &str) -> Result<bool> {
        let removed = self
            .map
            .write()
            .map_err(|_| StoreError::Closed)?
            .remove(topic);
        if removed.is_none() {
            return Ok(false);
        }
        let dir = self.dir.join(fsutil::escape_topic(topic));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove", &dir, e)),
        }
        fsutil::sync_dir(&self.dir)?;
        Ok(true)
    }
}
