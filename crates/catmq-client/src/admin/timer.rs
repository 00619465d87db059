//! Admin view of scheduled messages: counts per topic and delivery lateness per broker, one
//! scheduled message's due time and state, and cancelling one by its id.

use std::collections::BTreeMap;

use bytes::Bytes;
use catmq_protocol::headers::{
    QueryTimerMessageRequestHeader, RecallHandle, RecallMessageRequestHeader,
};
use catmq_protocol::{RequestCode, ResponseCode};
use serde::Deserialize;

use super::Admin;
use crate::error::{ClientError, Result};

/// Delivery lateness of scheduled messages on one broker, since it started (ms).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Lateness {
    pub delivered: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// One broker's timer: scheduled messages per topic and delivery lateness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerStats {
    pub broker: String,
    pub addr: String,
    /// Topic → messages waiting.
    pub scheduled: BTreeMap<String, u64>,
    pub lateness: Lateness,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TimingCount {
    count: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MetricsBody {
    timing_count: BTreeMap<String, TimingCount>,
    lateness: Lateness,
}

/// Where a scheduled message is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledMessage {
    pub topic: String,
    pub msg_id: String,
    /// When it is (or was) due, broker clock (ms since the epoch).
    pub due_ms: i64,
    /// `PENDING`, `CANCELLED` or `DELIVERED`.
    pub state: String,
    /// The broker's clock when it answered.
    pub now_ms: i64,
    /// When the broker stored it.
    #[serde(default)]
    pub store_timestamp: i64,
    /// The broker that holds it.
    #[serde(skip)]
    pub broker: String,
}

impl Admin {
    /// Every broker's timer statistics.
    pub async fn timer_stats(&self) -> Result<Vec<TimerStats>> {
        let mut out = Vec::new();
        for b in self.brokers(None).await? {
            let body = self
                .call(&b.addr, RequestCode::GetTimerMetrics, Default::default())
                .await?;
            let m: MetricsBody =
                serde_json::from_slice(&body).map_err(|e| ClientError::decode(&b.addr, e))?;
            out.push(TimerStats {
                broker: b.name,
                addr: b.addr,
                scheduled: m
                    .timing_count
                    .into_iter()
                    .map(|(t, c)| (t, c.count))
                    .collect(),
                lateness: m.lateness,
            });
        }
        Ok(out)
    }

    /// The scheduled message `msg_id` (its unique id) of `topic`: due time and state.
    pub async fn scheduled_message(&self, topic: &str, msg_id: &str) -> Result<ScheduledMessage> {
        Ok(self.locate_scheduled(topic, msg_id).await?.0)
    }

    /// The scheduled message and the address of the broker that holds it.
    async fn locate_scheduled(
        &self,
        topic: &str,
        msg_id: &str,
    ) -> Result<(ScheduledMessage, String)> {
        let route = self.instance.refresh_route(topic).await?;
        let h = QueryTimerMessageRequestHeader {
            topic: topic.to_owned(),
            msg_id: msg_id.to_owned(),
        };
        for (name, addr) in &route.brokers {
            let r = self
                .instance
                .ask(
                    addr,
                    RequestCode::CatmqQueryTimerMessage,
                    h.to_ext(),
                    Bytes::new(),
                )
                .await?;
            match ResponseCode::from_i32(r.code) {
                Some(ResponseCode::Success) => {
                    let mut m: ScheduledMessage = serde_json::from_slice(&r.body)
                        .map_err(|e| ClientError::decode(addr, e))?;
                    m.broker = name.clone();
                    return Ok((m, addr.clone()));
                }
                Some(ResponseCode::QueryNotFound) => {}
                _ => return Err(ClientError::refused(addr, &r)),
            }
        }
        Err(ClientError::Invalid(format!(
            "no scheduled message {msg_id} in topic {topic}"
        )))
    }

    /// Cancels the scheduled message `msg_id` of `topic` before it is due.
    pub async fn cancel_scheduled(&self, topic: &str, msg_id: &str) -> Result<()> {
        let (found, addr) = self.locate_scheduled(topic, msg_id).await?;
        let handle = RecallHandle {
            topic: topic.to_owned(),
            broker_name: found.broker,
            timestamp: found.due_ms.saturating_add(1).to_string(),
            msg_id: msg_id.to_owned(),
        };
        let h = RecallMessageRequestHeader {
            producer_group: None,
            topic: topic.to_owned(),
            recall_handle: handle.encode(),
        };
        self.call(&addr, RequestCode::RecallMessage, h.to_ext())
            .await?;
        Ok(())
    }
}
