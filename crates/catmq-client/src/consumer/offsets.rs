//! Consumer offsets: kept on the brokers for clustering groups, in a local file for
//! broadcasting ones; cached in memory and persisted periodically and on shutdown.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;
use catmq_protocol::headers::{
    OffsetResponseHeader, QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use catmq_protocol::{RequestCode, ResponseCode};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::instance::Instance;
use crate::message::MessageQueue;

/// Where offsets are kept.
pub(crate) enum Backing {
    /// On the broker of each queue.
    Broker,
    /// In this JSON file.
    File(PathBuf),
}

#[derive(Default)]
struct Table {
    offsets: HashMap<MessageQueue, i64>,
    dirty: HashSet<MessageQueue>,
}

pub(crate) struct OffsetStore {
    instance: Instance,
    group: String,
    backing: Backing,
    table: Mutex<Table>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileEntry {
    topic: String,
    broker_name: String,
    queue_id: i32,
    offset: i64,
}

impl OffsetStore {
    pub(crate) fn new(instance: Instance, group: String, backing: Backing) -> Self {
        Self {
            instance,
            group,
            backing,
            table: Mutex::new(Table::default()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached offset of `mq`.
    pub(crate) fn cached(&self, mq: &MessageQueue) -> Option<i64> {
        self.table().offsets.get(mq).copied()
    }

    /// Records progress (`increase_only`: never move backwards).
    pub(crate) fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
        let mut t = self.table();
        let cur = t.offsets.get(mq).copied();
        if increase_only && cur.is_some_and(|c| c >= offset) {
            return;
        }
        if cur != Some(offset) {
            t.offsets.insert(mq.clone(), offset);
            t.dirty.insert(mq.clone());
        }
    }

    /// Forgets `mq` (after it was persisted and handed to another member).
    pub(crate) fn forget(&self, mq: &MessageQueue) {
        let mut t = self.table();
        t.offsets.remove(mq);
        t.dirty.remove(mq);
    }

    /// The committed offset from where it is kept; `None` if the group never committed one.
    pub(crate) async fn read_stored(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        let found = match &self.backing {
            Backing::Broker => self.query_broker(mq).await?,
            Backing::File(path) => read_file(path)
                .await?
                .into_iter()
                .find(|e| {
                    e.topic == mq.topic
                        && e.broker_name == mq.broker_name
                        && e.queue_id == mq.queue_id
                })
                .map(|e| e.offset),
        };
        if let Some(o) = found {
            let mut t = self.table();
            t.offsets.insert(mq.clone(), o);
            t.dirty.remove(mq);
        }
        Ok(found)
    }

    async fn query_broker(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        let addr = self.instance.queue_addr(mq).await?;
        let h = QueryConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            set_zero_if_not_found: Some(false),
        };
        let r = self
            .instance
            .ask(
                &addr,
                RequestCode::QueryConsumerOffset,
                h.to_ext(),
                Bytes::new(),
            )
            .await?;
        match ResponseCode::from_i32(r.code) {
            Some(ResponseCode::Success) => {
                let h = OffsetResponseHeader::from_ext(&r.ext)
                    .map_err(|e| ClientError::decode(&addr, e))?;
                Ok((h.offset >= 0).then_some(h.offset))
            }
            Some(ResponseCode::QueryNotFound) => Ok(None),
            _ => Err(ClientError::refused(&addr, &r)),
        }
    }

    /// Writes changed offsets of `only` (or of every queue) to where they are kept.
    pub(crate) async fn persist(&self, only: Option<&[MessageQueue]>) -> Result<()> {
        let pending: Vec<(MessageQueue, i64)> = {
            let t = self.table();
            t.dirty
                .iter()
                .filter(|mq| only.is_none_or(|o| o.contains(mq)))
                .filter_map(|mq| Some((mq.clone(), *t.offsets.get(mq)?)))
                .collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        match &self.backing {
            Backing::Broker => {
                for (mq, offset) in &pending {
                    self.commit_to_broker(mq, *offset).await?;
                    self.clean(mq, *offset);
                }
            }
            Backing::File(path) => {
                let all: Vec<FileEntry> = {
                    let t = self.table();
                    t.offsets
                        .iter()
                        .map(|(mq, o)| FileEntry {
                            topic: mq.topic.clone(),
                            broker_name: mq.broker_name.clone(),
                            queue_id: mq.queue_id,
                            offset: *o,
                        })
                        .collect()
                };
                write_file(path, &all).await?;
                for (mq, offset) in &pending {
                    self.clean(mq, *offset);
                }
            }
        }
        Ok(())
    }

    fn clean(&self, mq: &MessageQueue, offset: i64) {
        let mut t = self.table();
        if t.offsets.get(mq) == Some(&offset) {
            t.dirty.remove(mq);
        }
    }

    /// Commits one offset to the queue's broker now.
    pub(crate) async fn commit_to_broker(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        let addr = self.instance.queue_addr(mq).await?;
        let h = UpdateConsumerOffsetRequestHeader {
            consumer_group: self.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            commit_offset: offset,
        };
        self.instance
            .call(
                &addr,
                RequestCode::UpdateConsumerOffset,
                h.to_ext(),
                Bytes::new(),
            )
            .await
            .map(drop)
    }
}

async fn read_file(path: &PathBuf) -> Result<Vec<FileEntry>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ClientError::Io {
            what: format!("offset file {} is not valid", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ClientError::Io {
            what: format!("read offset file {}", path.display()),
            source,
        }),
    }
}

async fn write_file(path: &PathBuf, entries: &[FileEntry]) -> Result<()> {
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| ClientError::Io { what, source }
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io("create the directory of"))?;
    }
    let json = serde_json::to_vec_pretty(entries).map_err(|e| ClientError::Io {
        what: "encode offsets".into(),
        source: std::io::Error::other(e),
    })?;
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, json).await.map_err(io("write"))?;
    tokio::fs::rename(&tmp, path).await.map_err(io("replace"))
}
