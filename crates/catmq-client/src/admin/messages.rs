//! Admin lookups of messages and offsets: by id, by key, by time range, per-queue lag, and
//! resetting a group's offsets to a point in time.

use bytes::Bytes;
use catmq_common::msgid;
use catmq_protocol::body::{fastjson, ResetOffsetBody};
use catmq_protocol::headers::{
    QueryMessageRequestHeader, ResetOffsetRequestHeader, ViewMessageRequestHeader,
};
use catmq_protocol::{RequestCode, ResponseCode};

use super::Admin;
use crate::consumer::core::{decode_all, offset_at, pull_queue, PullSpec, PullStatus};
use crate::consumer::Subscription;
use crate::error::{ClientError, Result};
use crate::message::{MessageExt, MessageQueue};

/// The group admin tools pull with (reads only; never commits).
pub const TOOLS_GROUP: &str = "TOOLS_CONSUMER";

/// One queue of a group's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLag {
    pub queue: MessageQueue,
    /// The queue's max offset.
    pub broker_offset: i64,
    /// The group's committed offset.
    pub consumer_offset: i64,
    /// Messages not yet consumed.
    pub lag: i64,
    /// Store time of the last consumed message (ms), 0 if none.
    pub last_timestamp: i64,
}

impl Admin {
    /// Per-queue progress of a group on one topic (or all its topics).
    pub async fn lag(&self, group: &str, topic: Option<&str>) -> Result<Vec<QueueLag>> {
        let stats = self.consume_stats(group, topic).await?;
        Ok(stats
            .offset_table
            .0
            .into_iter()
            .map(|(queue, w)| QueueLag {
                queue,
                broker_offset: w.broker_offset,
                consumer_offset: w.consumer_offset,
                lag: (w.broker_offset - w.consumer_offset.max(0)).max(0),
                last_timestamp: w.last_timestamp,
            })
            .collect())
    }

    /// A message by its offset id (the broker's id, as send results report it).
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let (host, offset) = msgid::parse_offset_msg_id(offset_msg_id).map_err(|e| {
            ClientError::Invalid(format!(
                "{offset_msg_id:?} is not an offset message id: {e}"
            ))
        })?;
        let addr = host.to_string();
        let h = ViewMessageRequestHeader {
            offset,
            topic: None,
        };
        let body = self
            .call(&addr, RequestCode::ViewMessageById, h.to_ext())
            .await?;
        let broker = self.broker_name_of(&addr).await;
        decode_all(body, &broker, &addr)?
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::decode(&addr, "empty answer"))
    }

    async fn broker_name_of(&self, addr: &str) -> String {
        match self.brokers(None).await {
            Ok(bs) => bs
                .into_iter()
                .find(|b| b.addr == addr)
                .map_or_else(String::new, |b| b.name),
            Err(_) => String::new(),
        }
    }

    /// Messages of `topic` with key (or unique id) `key` stored in `[begin, end]` (ms), at
    /// most `max` per broker.
    pub async fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        begin: i64,
        end: i64,
        max: i32,
    ) -> Result<Vec<MessageExt>> {
        let route = self.instance.refresh_route(topic).await?;
        let h = QueryMessageRequestHeader {
            topic: topic.to_owned(),
            key: key.to_owned(),
            max_num: max,
            begin_timestamp: begin,
            end_timestamp: end,
        };
        let mut out = Vec::new();
        for (name, addr) in &route.brokers {
            let r = self
                .instance
                .ask(addr, RequestCode::QueryMessage, h.to_ext(), Bytes::new())
                .await?;
            match ResponseCode::from_i32(r.code) {
                Some(ResponseCode::Success) => out.extend(decode_all(r.body, name, addr)?),
                Some(ResponseCode::QueryNotFound) => {}
                _ => return Err(ClientError::refused(addr, &r)),
            }
        }
        out.retain(|m| m.msg_id == key || m.message.keys().contains(&key));
        out.sort_by_key(|m| m.store_timestamp);
        Ok(out)
    }

    /// Messages of `topic` stored in `[begin, end)` (ms), at most `max` in all.
    pub async fn messages_between(
        &self,
        topic: &str,
        begin: i64,
        end: i64,
        max: usize,
    ) -> Result<Vec<MessageExt>> {
        let route = self.instance.refresh_route(topic).await?;
        let sub = Subscription::new(topic, "*");
        let mut out = Vec::new();
        for mq in &route.read_queues {
            let Some(addr) = route.addr(&mq.broker_name) else {
                continue;
            };
            let mut offset = offset_at(&self.instance, addr, mq, begin).await?;
            let stop = offset_at(&self.instance, addr, mq, end).await?;
            while offset < stop && out.len() < max {
                let spec = PullSpec {
                    group: TOOLS_GROUP,
                    mq,
                    offset,
                    max: 32,
                    sub: &sub,
                    suspend: None,
                    commit: None,
                };
                let p = pull_queue(&self.instance, addr, &spec).await?;
                if p.status != PullStatus::Found || p.next <= offset {
                    break;
                }
                out.extend(
                    p.msgs
                        .into_iter()
                        .filter(|m| m.store_timestamp >= begin && m.store_timestamp < end),
                );
                offset = p.next;
            }
        }
        out.sort_by_key(|m| (m.store_timestamp, m.queue_offset));
        out.truncate(max);
        Ok(out)
    }

    /// Moves `group`'s offsets of `topic` to the first message stored at or after `timestamp`
    /// (ms; -1: the end) on every broker; online members drop what they cached and resume
    /// there. `force`: also move offsets forward. Returns the new offsets.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        timestamp: i64,
        force: bool,
    ) -> Result<Vec<(MessageQueue, i64)>> {
        let route = self.instance.refresh_route(topic).await?;
        let h = ResetOffsetRequestHeader {
            topic: topic.to_owned(),
            group: group.to_owned(),
            timestamp,
            is_force: Some(force),
            queue_id: None,
            offset: None,
        };
        let mut out = Vec::new();
        for addr in route.brokers.values() {
            let body = self
                .call(addr, RequestCode::InvokeBrokerToResetOffset, h.to_ext())
                .await?;
            let b: ResetOffsetBody = fastjson::decode("reset offset", &body)
                .map_err(|e| ClientError::decode(addr, e))?;
            out.extend(b.offset_table.0);
        }
        out.sort();
        Ok(out)
    }
}
