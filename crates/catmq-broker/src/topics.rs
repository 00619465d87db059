//! Topic configs and subscription-group configs, persisted as Apache RocketMQ's `topics.json`
//! and `subscriptionGroup.json` (the same shapes as the admin bodies).

use std::collections::BTreeMap;
use std::path::PathBuf;

use catmq_protocol::body::{
    perm, DataVersion, SubscriptionGroupConfig, SubscriptionGroupWrapper, TopicConfig,
    TopicConfigSerializeWrapper,
};

use catmq_common::{properties as props, NewMessage};
use catmq_store::{escaped_topic_len, MAX_TOPIC_DIR_NAME};

use crate::{persist, Result};

/// The default topic: producers send with `defaultTopic=TBW102` to create topics on first use.
pub const DEFAULT_TOPIC: &str = "TBW102";
/// Where messages wait for their delay level.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Where half (prepared) transactional messages wait for their outcome.
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// The log of transaction outcomes and check-backs (one record per event).
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where half messages go when their check-backs are exhausted (for an operator to inspect).
pub const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Where scheduled messages (any delay or delivery time) wait.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// Prefix of a group's retry topic.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// Prefix of a group's dead-letter topic.
pub const DLQ_PREFIX: &str = "%DLQ%";
/// Longest topic name.
pub const MAX_TOPIC_LEN: usize = 127;

/// Moves `msg` to queue 0 of the internal `topic`, its destination kept in `REAL_TOPIC` /
/// `REAL_QID` (with the `extra` properties).
pub(crate) fn park(msg: &mut NewMessage, topic: &str, extra: &[(&str, &str)]) {
    let queue = msg.queue_id.to_string();
    let mut set = vec![
        (props::REAL_TOPIC, msg.topic.as_str()),
        (props::REAL_QID, &queue),
    ];
    set.extend_from_slice(extra);
    msg.properties = props::update(&msg.properties, &set, &[]);
    msg.topic = topic.to_owned();
    msg.queue_id = 0;
}

/// Points a parked message back at the destination [`park`] kept (the properties stay);
/// `None` when they are missing or unreadable.
pub(crate) fn unpark(msg: &mut NewMessage) -> Option<()> {
    let topic = props::get(&msg.properties, props::REAL_TOPIC)?.to_owned();
    msg.queue_id = props::get(&msg.properties, props::REAL_QID)?.parse().ok()?;
    msg.topic = topic;
    Some(())
}

/// The retry topic of a group.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

/// The dead-letter topic of a group.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// Longest group name (Apache RocketMQ's limit for names).
pub const MAX_GROUP_LEN: usize = 255;

/// Why a topic name is not acceptable, if it is not (Apache RocketMQ's rule: 1–127 characters
/// of `%|a-zA-Z0-9_-`; and few enough `%` for the store's directory name).
pub fn topic_name_error(name: &str) -> Option<String> {
    if name.len() > MAX_TOPIC_LEN {
        return Some(format!(
            "the topic name is longer than {MAX_TOPIC_LEN} characters"
        ));
    }
    name_error("topic", name)
}

/// Why a consumer group name is not acceptable, if it is not: 1–255 characters of
/// `%|a-zA-Z0-9_-`, and short enough for its retry topic to be stored.
pub fn group_name_error(name: &str) -> Option<String> {
    if name.len() > MAX_GROUP_LEN {
        return Some(format!(
            "the group name is longer than {MAX_GROUP_LEN} characters"
        ));
    }
    if let Some(e) = name_error("group", name) {
        return Some(e);
    }
    (escaped_topic_len(RETRY_PREFIX) + escaped_topic_len(name) > MAX_TOPIC_DIR_NAME)
        .then(|| format!("the group name is too long for its retry topic {RETRY_PREFIX}<group> to be stored (at most {MAX_TOPIC_DIR_NAME} bytes, each % counting 3)"))
}

fn name_error(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("the {what} name is empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        let shown: String = name.chars().take(64).collect();
        return Some(format!(
            "the {what} name {shown:?} contains {c:?}; only letters, digits, %, |, _ and - are allowed"
        ));
    }
    (escaped_topic_len(name) > MAX_TOPIC_DIR_NAME).then(|| {
        format!("the {what} name has too many '%' to be stored (at most {MAX_TOPIC_DIR_NAME} bytes, each % counting 3)")
    })
}

/// Whether producers may not send to this topic directly.
pub fn is_system_topic(name: &str) -> bool {
    name == DEFAULT_TOPIC
        || name == SCHEDULE_TOPIC
        || name == TIMER_TOPIC
        || name == CHECK_MAX_TOPIC
        || name.starts_with("RMQ_SYS_")
}

/// Whether a topic holds messages that no consumer may see yet (half messages, transaction
/// bookkeeping, scheduled messages): pulls of it are refused.
pub fn is_hidden_topic(name: &str) -> bool {
    name == HALF_TOPIC || name == OP_TOPIC || name == TIMER_TOPIC || name == SCHEDULE_TOPIC
}

fn bump(v: &mut DataVersion, now_ms: i64) {
    v.counter += 1;
    v.timestamp = now_ms;
}

/// A new topic config.
pub fn topic_config(name: &str, queues: i32, perm: i32) -> TopicConfig {
    TopicConfig {
        topic_name: name.to_owned(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm,
        topic_filter_type: "SINGLE_TAG".into(),
        ..TopicConfig::default()
    }
}

/// Every topic this broker serves.
#[derive(Debug)]
pub struct TopicTable {
    path: PathBuf,
    data: TopicConfigSerializeWrapper,
}

impl TopicTable {
    /// Loads `path` and puts in the system topics: `TBW102` (only when topics may be
    /// auto-created) and the schedule topic.
    pub fn load(
        path: PathBuf,
        auto_create: bool,
        default_queues: i32,
        levels: usize,
    ) -> Result<Self> {
        let data: TopicConfigSerializeWrapper = persist::load(&path)?.unwrap_or_default();
        let mut t = Self { path, data };
        let table = &mut t.data.topic_config_table;
        if auto_create {
            let p = perm::READ_WRITE | perm::INHERIT;
            table.insert(
                DEFAULT_TOPIC.into(),
                topic_config(DEFAULT_TOPIC, default_queues, p),
            );
        } else {
            table.remove(DEFAULT_TOPIC);
        }
        let levels = i32::try_from(levels).unwrap_or(i32::MAX);
        table.insert(
            SCHEDULE_TOPIC.into(),
            topic_config(SCHEDULE_TOPIC, levels, perm::READ_WRITE),
        );
        Ok(t)
    }

    /// A topic's config.
    pub fn get(&self, topic: &str) -> Option<&TopicConfig> {
        self.data.topic_config_table.get(topic)
    }

    /// Records a change: a new data version, and the table saved.
    fn changed(&mut self, now_ms: i64) -> Result<()> {
        bump(&mut self.data.data_version, now_ms);
        persist::save(&self.path, &self.data)
    }

    /// Every topic config, with the version.
    pub fn wrapper(&self) -> &TopicConfigSerializeWrapper {
        &self.data
    }

    /// Adds or replaces a topic and saves the table.
    pub fn upsert(&mut self, cfg: TopicConfig, now_ms: i64) -> Result<()> {
        self.data
            .topic_config_table
            .insert(cfg.topic_name.clone(), cfg);
        self.changed(now_ms)
    }

    /// Removes a topic; false if it was not there.
    pub fn remove(&mut self, topic: &str, now_ms: i64) -> Result<bool> {
        if self.data.topic_config_table.remove(topic).is_none() {
            return Ok(false);
        }
        self.changed(now_ms)?;
        Ok(true)
    }

    /// A topic created by a send with `defaultTopic`: allowed when the default topic exists and
    /// has the INHERIT bit; it gets at most as many queues as the default topic.
    pub fn create_on_send(
        &mut self,
        topic: &str,
        default_topic: &str,
        queues: i32,
        sys_flag: i32,
        now_ms: i64,
    ) -> Result<Option<TopicConfig>> {
        let Some(def) = self.get(default_topic) else {
            return Ok(None);
        };
        if def.perm & perm::INHERIT == 0 {
            return Ok(None);
        }
        let queues = queues.clamp(1, def.write_queue_nums.max(1));
        let mut cfg = topic_config(topic, queues, def.perm & !perm::INHERIT);
        cfg.topic_sys_flag = sys_flag;
        self.upsert(cfg.clone(), now_ms)?;
        tracing::info!(topic, queues, "topic created on first send");
        Ok(Some(cfg))
    }

    /// The config of a retry or dead-letter topic, created with `queues` queues if missing.
    pub fn ensure(&mut self, topic: &str, queues: i32, now_ms: i64) -> Result<(TopicConfig, bool)> {
        if let Some(t) = self.get(topic) {
            return Ok((t.clone(), false));
        }
        let cfg = topic_config(topic, queues.max(1), perm::READ_WRITE);
        self.upsert(cfg.clone(), now_ms)?;
        Ok((cfg, true))
    }

    /// Creates every missing topic of `wanted` (name, queues) with one save of the table;
    /// whether any was created.
    pub fn ensure_all(&mut self, wanted: &[(String, i32)], now_ms: i64) -> Result<bool> {
        let mut created = false;
        for (topic, queues) in wanted {
            if self.get(topic).is_none() {
                let cfg = topic_config(topic, (*queues).max(1), perm::READ_WRITE);
                self.data.topic_config_table.insert(topic.clone(), cfg);
                created = true;
            }
        }
        if created {
            self.changed(now_ms)?;
        }
        Ok(created)
    }
}

/// Subscription groups.
#[derive(Debug)]
pub struct GroupTable {
    path: PathBuf,
    data: SubscriptionGroupWrapper,
}

impl GroupTable {
    /// Loads `path`.
    pub fn load(path: PathBuf) -> Result<Self> {
        let data = persist::load(&path)?.unwrap_or_default();
        Ok(Self { path, data })
    }

    /// A group's config.
    pub fn get(&self, group: &str) -> Option<&SubscriptionGroupConfig> {
        self.data.subscription_group_table.get(group)
    }

    /// Records a change: a new data version, and the table saved.
    fn changed(&mut self, now_ms: i64) -> Result<()> {
        bump(&mut self.data.data_version, now_ms);
        persist::save(&self.path, &self.data)
    }

    /// Every group, with the version.
    pub fn wrapper(&self) -> &SubscriptionGroupWrapper {
        &self.data
    }

    /// A group's config; created with the defaults when `auto_create` allows it.
    pub fn find_or_create(
        &mut self,
        group: &str,
        auto_create: bool,
        now_ms: i64,
    ) -> Result<Option<SubscriptionGroupConfig>> {
        Ok(self.find_or_create_all([group], auto_create, now_ms)?.pop())
    }

    /// The configs of `groups` (those that exist or, with `auto_create`, are created), with one
    /// save of the table for all that are new: a heartbeat may name many.
    pub fn find_or_create_all<'g>(
        &mut self,
        groups: impl IntoIterator<Item = &'g str>,
        auto_create: bool,
        now_ms: i64,
    ) -> Result<Vec<SubscriptionGroupConfig>> {
        let mut found = Vec::new();
        let mut created = false;
        for group in groups {
            if let Some(g) = self.get(group) {
                found.push(g.clone());
            } else if auto_create && !group.is_empty() {
                let cfg = SubscriptionGroupConfig {
                    group_name: group.to_owned(),
                    ..SubscriptionGroupConfig::default()
                };
                self.data
                    .subscription_group_table
                    .insert(group.to_owned(), cfg.clone());
                found.push(cfg);
                created = true;
            }
        }
        if created {
            self.changed(now_ms)?;
        }
        Ok(found)
    }

    /// Adds or replaces a group and saves the table.
    pub fn upsert(&mut self, cfg: SubscriptionGroupConfig, now_ms: i64) -> Result<()> {
        self.data
            .subscription_group_table
            .insert(cfg.group_name.clone(), cfg);
        self.changed(now_ms)
    }

    /// Removes a group; false if it was not there.
    pub fn remove(&mut self, group: &str, now_ms: i64) -> Result<bool> {
        if self.data.subscription_group_table.remove(group).is_none() {
            return Ok(false);
        }
        self.changed(now_ms)?;
        Ok(true)
    }

    /// Group names.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.data.subscription_group_table.keys()
    }
}

/// Topic names in a config table (for topic lists).
pub fn names(table: &BTreeMap<String, TopicConfig>) -> Vec<String> {
    table.keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_rocketmqs_rule() {
        assert!(topic_name_error("Topic_A-1").is_none());
        assert!(topic_name_error("%RETRY%G|x").is_none());
        assert!(topic_name_error("").is_some());
        assert!(topic_name_error("a b").is_some());
        assert!(topic_name_error("é").is_some());
        assert!(topic_name_error(&"x".repeat(128)).is_some());
        // 100 `%` fit in 127 characters but not in a 255-byte directory name.
        assert!(topic_name_error(&"%".repeat(100)).is_some());
        assert!(topic_name_error(&format!("{}{}", "%".repeat(64), "x".repeat(63))).is_none());
        assert!(group_name_error("G_1|a").is_none());
        assert!(group_name_error(&"g".repeat(244)).is_none());
        assert!(
            group_name_error(&"g".repeat(245)).is_some(),
            "retry topic too long"
        );
        assert!(group_name_error(&"%".repeat(90)).is_some());
        assert!(group_name_error("").is_some());
        assert!(group_name_error("a/b").is_some());
        let e = group_name_error(&format!("{}/", "x".repeat(200))).unwrap();
        assert!(e.len() < 200, "the remark does not echo a long name: {e}");
        assert!(is_system_topic("TBW102") && is_system_topic("RMQ_SYS_TRANS_HALF_TOPIC"));
    }

    #[test]
    fn tables_persist_and_auto_create_inherits_the_default_topic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("topics.json");
        let mut t = TopicTable::load(p.clone(), true, 8, 18).unwrap();
        assert_eq!(t.get(SCHEDULE_TOPIC).unwrap().read_queue_nums, 18);
        let c = t
            .create_on_send("New", DEFAULT_TOPIC, 16, 0, 1)
            .unwrap()
            .unwrap();
        assert_eq!((c.write_queue_nums, c.perm), (8, perm::READ_WRITE));
        assert!(t.create_on_send("X", "Nope", 4, 0, 1).unwrap().is_none());
        let (r, created) = t.ensure("%RETRY%G", 1, 2).unwrap();
        assert!(created && r.read_queue_nums == 1);
        assert!(!t.ensure("%RETRY%G", 1, 2).unwrap().1);
        drop(t);
        let mut t = TopicTable::load(p.clone(), false, 8, 18).unwrap();
        assert!(t.get("New").is_some() && t.get(DEFAULT_TOPIC).is_none());
        assert!(t
            .create_on_send("Y", DEFAULT_TOPIC, 4, 0, 3)
            .unwrap()
            .is_none());
        assert!(t.remove("New", 4).unwrap());
        assert!(!t.remove("New", 4).unwrap());

        let gp = dir.path().join("groups.json");
        let mut g = GroupTable::load(gp.clone()).unwrap();
        assert!(g.find_or_create("G", false, 1).unwrap().is_none());
        let c = g.find_or_create("G", true, 1).unwrap().unwrap();
        assert_eq!((c.retry_max_times, c.retry_queue_nums), (16, 1));
        let g = GroupTable::load(gp).unwrap();
        assert_eq!(g.names().collect::<Vec<_>>(), vec!["G"]);
    }
}
