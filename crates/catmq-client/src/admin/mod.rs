//! The admin client: mqadmin's daily verbs over the remoting protocol.

mod messages;
mod timer;

use std::collections::BTreeMap;

use bytes::Bytes;
use catmq_protocol::body::{
    self, fastjson, ClusterInfo, ConsumeStats, ConsumerConnection, KvTable,
    SubscriptionGroupConfig, SubscriptionGroupWrapper, TopicConfig, TopicList, TopicOffset,
    TopicStatsTable,
};
use catmq_protocol::headers::{
    CreateTopicRequestHeader, DeleteSubscriptionGroupRequestHeader,
    DeleteTopicFromNamesrvRequestHeader, GetConsumeStatsRequestHeader, TopicRequestHeader,
};
use catmq_protocol::{ExtFields, RequestCode, ResponseCode};

pub use messages::QueueLag;
pub use timer::{Lateness, ScheduledMessage, TimerStats};

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::Instance;
use crate::message::MessageQueue;
use crate::producer::check_topic;
use crate::route::Route;

/// A broker master: its name, cluster and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub name: String,
    pub cluster: String,
    pub addr: String,
}

/// Administers a cluster through its name servers and brokers.
pub struct Admin {
    instance: Instance,
}

impl Admin {
    /// Connects (lazily) to the cluster of these name servers.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        Ok(Self {
            instance: Instance::start(config).await?,
        })
    }

    /// Closes the connections.
    pub fn close(&self) {
        self.instance.close();
    }

    async fn call(&self, addr: &str, code: RequestCode, ext: ExtFields) -> Result<Bytes> {
        let r = self.instance.call(addr, code, ext, Bytes::new()).await?;
        Ok(r.body)
    }

    /// Clusters and their brokers (GET_BROKER_CLUSTER_INFO).
    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let r = self
            .instance
            .namesrv_call(
                RequestCode::GetBrokerClusterInfo,
                ExtFields::new(),
                Bytes::new(),
            )
            .await?;
        body::decode("cluster info", &r.body).map_err(|e| ClientError::decode("name server", e))
    }

    /// Every broker master, optionally of one cluster only.
    pub async fn brokers(&self, cluster: Option<&str>) -> Result<Vec<BrokerInfo>> {
        let info = self.cluster_info().await?;
        let mut out: Vec<BrokerInfo> = info
            .broker_addr_table
            .values()
            .filter(|b| cluster.is_none_or(|c| b.cluster == c))
            .filter_map(|b| {
                Some(BrokerInfo {
                    name: b.broker_name.clone(),
                    cluster: b.cluster.clone(),
                    addr: b.master_addr()?.to_owned(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        if out.is_empty() {
            return Err(ClientError::NoRoute {
                topic: String::new(),
                reason: match cluster {
                    Some(c) => format!("no broker in cluster {c}"),
                    None => "no broker registered".into(),
                },
            });
        }
        Ok(out)
    }

    /// A broker's runtime figures (GET_BROKER_RUNTIME_INFO).
    pub async fn broker_runtime(&self, addr: &str) -> Result<BTreeMap<String, String>> {
        let b = self
            .call(addr, RequestCode::GetBrokerRuntimeInfo, ExtFields::new())
            .await?;
        let t: KvTable =
            body::decode("runtime info", &b).map_err(|e| ClientError::decode(addr, e))?;
        Ok(t.table)
    }

    /// Every topic the name servers know.
    pub async fn topics(&self) -> Result<Vec<String>> {
        let r = self
            .instance
            .namesrv_call(
                RequestCode::GetAllTopicListFromNameserver,
                ExtFields::new(),
                Bytes::new(),
            )
            .await?;
        let l: TopicList = body::decode("topic list", &r.body)
            .map_err(|e| ClientError::decode("name server", e))?;
        Ok(l.topic_list.into_iter().collect())
    }

    /// The route of a topic.
    pub async fn route(&self, topic: &str) -> Result<Route> {
        Ok(self.instance.refresh_route(topic).await?.as_ref().clone())
    }

    /// Creates or updates a topic on every master of `cluster` (all clusters when `None`);
    /// returns the brokers changed.
    pub async fn create_topic(
        &self,
        cluster: Option<&str>,
        cfg: &TopicConfig,
    ) -> Result<Vec<BrokerInfo>> {
        check_topic(&cfg.topic_name)?;
        if cfg.read_queue_nums <= 0 || cfg.write_queue_nums <= 0 {
            return Err(ClientError::Invalid("queue counts must be positive".into()));
        }
        let h = CreateTopicRequestHeader {
            topic: cfg.topic_name.clone(),
            default_topic: Some("TBW102".into()),
            read_queue_nums: cfg.read_queue_nums,
            write_queue_nums: cfg.write_queue_nums,
            perm: cfg.perm,
            topic_filter_type: Some("SINGLE_TAG".into()),
            topic_sys_flag: Some(cfg.topic_sys_flag),
            order: Some(cfg.order),
            attributes: None,
        };
        let brokers = self.brokers(cluster).await?;
        for b in &brokers {
            self.call(&b.addr, RequestCode::UpdateAndCreateTopic, h.to_ext())
                .await?;
        }
        self.instance.forget_route(&cfg.topic_name);
        Ok(brokers)
    }

    /// Deletes a topic from every broker that has it and from the name servers.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let h = TopicRequestHeader {
            topic: topic.to_owned(),
        };
        let route = self.instance.refresh_route(topic).await?;
        for addr in route.brokers.values() {
            self.call(addr, RequestCode::DeleteTopicInBroker, h.to_ext())
                .await?;
        }
        let nh = DeleteTopicFromNamesrvRequestHeader {
            topic: topic.to_owned(),
            cluster_name: None,
        };
        for ns in &self.instance.cfg.namesrv_addrs {
            self.call(ns, RequestCode::DeleteTopicInNamesrv, nh.to_ext())
                .await?;
        }
        self.instance.forget_route(topic);
        Ok(())
    }

    /// Min and max offset (and last store time) of every queue of a topic.
    pub async fn topic_status(&self, topic: &str) -> Result<Vec<(MessageQueue, TopicOffset)>> {
        let h = TopicRequestHeader {
            topic: topic.to_owned(),
        };
        let route = self.instance.refresh_route(topic).await?;
        let mut out = Vec::new();
        for addr in route.brokers.values() {
            let b = self
                .call(addr, RequestCode::GetTopicStatsInfo, h.to_ext())
                .await?;
            let t: TopicStatsTable =
                fastjson::decode("topic stats", &b).map_err(|e| ClientError::decode(addr, e))?;
            out.extend(t.offset_table.0);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Creates or updates a subscription group on every master of `cluster`.
    pub async fn create_group(
        &self,
        cluster: Option<&str>,
        cfg: &SubscriptionGroupConfig,
    ) -> Result<Vec<BrokerInfo>> {
        if cfg.group_name.is_empty() {
            return Err(ClientError::Invalid("group name is empty".into()));
        }
        let brokers = self.brokers(cluster).await?;
        let body = body::encode(cfg);
        for b in &brokers {
            self.instance
                .call(
                    &b.addr,
                    RequestCode::UpdateAndCreateSubscriptionGroup,
                    ExtFields::new(),
                    body.clone(),
                )
                .await?;
        }
        Ok(brokers)
    }

    /// Every subscription group, by name (merged over the masters).
    pub async fn groups(&self) -> Result<BTreeMap<String, SubscriptionGroupConfig>> {
        let mut out = BTreeMap::new();
        for b in self.brokers(None).await? {
            let body = self
                .call(
                    &b.addr,
                    RequestCode::GetAllSubscriptionGroupConfig,
                    ExtFields::new(),
                )
                .await?;
            let w: SubscriptionGroupWrapper =
                body::decode("groups", &body).map_err(|e| ClientError::decode(&b.addr, e))?;
            out.extend(w.subscription_group_table);
        }
        Ok(out)
    }

    /// Deletes a subscription group (and its offsets) from every master.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let h = DeleteSubscriptionGroupRequestHeader {
            group_name: group.to_owned(),
            clean_offset: Some(true),
        };
        for b in self.brokers(None).await? {
            self.call(&b.addr, RequestCode::DeleteSubscriptionGroup, h.to_ext())
                .await?;
        }
        Ok(())
    }

    /// A group's progress on one topic (or all its topics): per-queue offsets, merged over
    /// the masters.
    pub async fn consume_stats(&self, group: &str, topic: Option<&str>) -> Result<ConsumeStats> {
        let h = GetConsumeStatsRequestHeader {
            consumer_group: group.to_owned(),
            topic: topic.map(str::to_owned),
        };
        let mut all = ConsumeStats::default();
        for b in self.brokers(None).await? {
            let r = self
                .instance
                .request(
                    &b.addr,
                    catmq_protocol::RemotingCommand::request(
                        RequestCode::GetConsumeStats.as_i32(),
                        h.to_ext(),
                        Bytes::new(),
                    ),
                )
                .await?;
            if r.code == ResponseCode::SubscriptionGroupNotExist.as_i32()
                || r.code == ResponseCode::TopicNotExist.as_i32()
            {
                continue;
            }
            if r.code != 0 {
                return Err(ClientError::refused(&b.addr, &r));
            }
            let s: ConsumeStats = fastjson::decode("consume stats", &r.body)
                .map_err(|e| ClientError::decode(&b.addr, e))?;
            all.offset_table.0.extend(s.offset_table.0);
            all.consume_tps += s.consume_tps;
        }
        Ok(all)
    }

    /// The group's online members (from the first broker that knows them).
    pub async fn consumer_connections(&self, group: &str) -> Result<ConsumerConnection> {
        let h = catmq_protocol::headers::ConsumerGroupRequestHeader {
            consumer_group: group.to_owned(),
        };
        let mut last = None;
        for b in self.brokers(None).await? {
            match self
                .call(&b.addr, RequestCode::GetConsumerConnectionList, h.to_ext())
                .await
            {
                Ok(body) => {
                    return body::decode("connections", &body)
                        .map_err(|e| ClientError::decode(&b.addr, e))
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::Shutdown))
    }
}
