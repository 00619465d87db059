//! Server configuration: defaults, then a TOML file, then `CATMQ_*` environment variables, then
//! command-line flags. Every option is documented in `config/catmq.toml` (the reference config,
//! which a test keeps equal to the defaults).
//!
//! The environment variable of an option is `CATMQ_<SECTION>_<KEY>` in upper case
//! (`CATMQ_BROKER_LISTEN`, `CATMQ_STORE_FLUSH`); top-level keys are `CATMQ_<KEY>`
//! (`CATMQ_DATA_DIR`). Lists are comma-separated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use catmq_broker::{parse_delay_levels, BrokerConfig, TimerConfig, TransactionConfig};
use catmq_store::{FlushMode, RetentionConfig};
use serde::{Deserialize, Serialize};

use crate::cli::parse_size;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the broker keeps its store and metadata.
    pub data_dir: PathBuf,
    pub namesrv: NamesrvSection,
    pub broker: BrokerSection,
    pub store: StoreSection,
}

/// `[namesrv]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamesrvSection {
    pub listen: String,
}

/// `[broker]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSection {
    pub listen: String,
    pub advertised_addr: String,
    pub name: String,
    pub cluster: String,
    pub namesrv: Vec<String>,
    pub auto_create_topic: bool,
    pub auto_create_group: bool,
    pub default_topic_queues: i32,
    pub permission: i32,
    pub long_polling: bool,
    pub max_suspend_ms: u64,
    pub max_pull_messages: u32,
    pub max_pull_bytes: String,
    pub delay_levels: String,
    pub client_expiry_secs: u64,
    pub lock_expiry_secs: u64,
    pub offset_persist_ms: u64,
    pub register_interval_secs: u64,
    pub transaction_check_delay_ms: u64,
    pub transaction_check_interval_ms: u64,
    pub transaction_check_max: u32,
    pub transaction_keep_discarded: bool,
    pub timer_max_delay_days: u64,
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    pub flush: String,
    pub flush_interval_ms: u64,
    pub segment_size: String,
    pub max_message_size: String,
    pub retention_hours: u64,
    pub max_disk_ratio: f64,
    pub checkpoint_interval_ms: u64,
    pub recycle_segments: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./catmq-data"),
            namesrv: NamesrvSection::default(),
            broker: BrokerSection::default(),
            store: StoreSection::default(),
        }
    }
}

impl Default for NamesrvSection {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9876".into(),
        }
    }
}

impl Default for BrokerSection {
    fn default() -> Self {
        let b = BrokerConfig::new(".");
        Self {
            listen: "0.0.0.0:10911".into(),
            advertised_addr: String::new(),
            name: b.broker_name,
            cluster: b.cluster_name,
            namesrv: Vec::new(),
            auto_create_topic: b.auto_create_topic,
            auto_create_group: b.auto_create_group,
            default_topic_queues: b.default_topic_queue_nums,
            permission: b.broker_permission,
            long_polling: b.long_polling,
            max_suspend_ms: b.max_suspend.as_millis() as u64,
            max_pull_messages: b.max_pull_messages,
            max_pull_bytes: "256k".into(),
            delay_levels: catmq_broker::DEFAULT_DELAY_LEVELS.into(),
            client_expiry_secs: b.client_expiry.as_secs(),
            lock_expiry_secs: b.lock_expiry.as_secs(),
            offset_persist_ms: b.offset_persist_interval.as_millis() as u64,
            register_interval_secs: b.register_interval.as_secs(),
            transaction_check_delay_ms: b.transaction.check_delay.as_millis() as u64,
            transaction_check_interval_ms: b.transaction.check_interval.as_millis() as u64,
            transaction_check_max: b.transaction.check_max,
            transaction_keep_discarded: b.transaction.keep_discarded,
            timer_max_delay_days: b.timer.max_delay.as_secs() / 86_400,
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            flush: "async".into(),
            flush_interval_ms: 500,
            segment_size: "1g".into(),
            max_message_size: "4m".into(),
            retention_hours: 72,
            max_disk_ratio: 0.85,
            checkpoint_interval_ms: 5000,
            recycle_segments: true,
        }
    }
}

/// Converts an environment value to the TOML type of the option it overrides.
fn env_value(default: &toml::Value, raw: &str, var: &str) -> anyhow::Result<toml::Value> {
    use toml::Value as V;
    Ok(match default {
        V::String(_) => V::String(raw.to_owned()),
        V::Integer(_) => V::Integer(
            raw.trim()
                .parse()
                .with_context(|| format!("{var}: not an integer"))?,
        ),
        V::Float(_) => V::Float(
            raw.trim()
                .parse()
                .with_context(|| format!("{var}: not a number"))?,
        ),
        V::Boolean(_) => V::Boolean(
            raw.trim()
                .parse()
                .with_context(|| format!("{var}: not true/false"))?,
        ),
        V::Array(_) => V::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| V::String(s.to_owned()))
                .collect(),
        ),
        other => bail!(
            "{var}: cannot set a {} from the environment",
            other.type_str()
        ),
    })
}

/// Applies `CATMQ_*` variables from `env` to `table` (keys as in the defaults).
fn overlay_env(
    table: &mut toml::Table,
    defaults: &toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    for (key, default) in defaults {
        if let toml::Value::Table(section) = default {
            let target = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(target) = target else {
                bail!("[{key}] must be a table");
            };
            for (k, d) in section {
                let var = format!("CATMQ_{}_{}", key.to_uppercase(), k.to_uppercase());
                if let Some(raw) = env(&var) {
                    target.insert(k.clone(), env_value(d, &raw, &var)?);
                }
            }
        } else {
            let var = format!("CATMQ_{}", key.to_uppercase());
            if let Some(raw) = env(&var) {
                table.insert(key.clone(), env_value(default, &raw, &var)?);
            }
        }
    }
    Ok(())
}

impl ServerConfig {
    /// Defaults, then `file` (if given), then the environment read through `env`.
    pub fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Self::default()).context("serializing defaults")?;
        overlay_env(&mut table, &defaults, env)?;
        let cfg: Self = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        cfg.broker_config(None)?;
        Ok(cfg)
    }

    /// The broker's settings; `embedded_namesrv` is added to the name servers it registers with.
    pub fn broker_config(
        &self,
        embedded_namesrv: Option<SocketAddr>,
    ) -> anyhow::Result<BrokerConfig> {
        let b = &self.broker;
        let s = &self.store;
        let mut c = BrokerConfig::new(&self.data_dir);
        c.broker_name = b.name.clone();
        c.cluster_name = b.cluster.clone();
        c.advertised_addr = match b.advertised_addr.trim() {
            "" => None,
            a => Some(
                a.parse()
                    .with_context(|| format!("broker.advertised_addr {a:?}"))?,
            ),
        };
        c.namesrv_addrs = embedded_namesrv
            .map(|a| a.to_string())
            .into_iter()
            .collect();
        c.namesrv_addrs.extend(b.namesrv.iter().cloned());
        c.auto_create_topic = b.auto_create_topic;
        c.auto_create_group = b.auto_create_group;
        c.default_topic_queue_nums = b.default_topic_queues;
        c.broker_permission = b.permission;
        c.long_polling = b.long_polling;
        c.max_suspend = Duration::from_millis(b.max_suspend_ms);
        c.max_pull_messages = b.max_pull_messages;
        c.max_pull_bytes = size(&b.max_pull_bytes, "broker.max_pull_bytes")? as usize;
        c.delay_levels = parse_delay_levels(&b.delay_levels).map_err(anyhow::Error::msg)?;
        c.client_expiry = Duration::from_secs(b.client_expiry_secs);
        c.lock_expiry = Duration::from_secs(b.lock_expiry_secs);
        c.offset_persist_interval = Duration::from_millis(b.offset_persist_ms.max(10));
        c.register_interval = Duration::from_secs(b.register_interval_secs.max(1));
        c.transaction = TransactionConfig {
            check_delay: Duration::from_millis(b.transaction_check_delay_ms),
            check_interval: Duration::from_millis(b.transaction_check_interval_ms.max(1)),
            check_max: b.transaction_check_max,
            keep_discarded: b.transaction_keep_discarded,
        };
        c.timer = TimerConfig {
            max_delay: Duration::from_secs(b.timer_max_delay_days.max(1).saturating_mul(86_400)),
        };
        c.store.flush = match s.flush.as_str() {
            "async" => FlushMode::Async {
                interval: Duration::from_millis(s.flush_interval_ms.max(1)),
            },
            "sync" => FlushMode::Sync,
            other => bail!("store.flush must be \"async\" or \"sync\", not {other:?}"),
        };
        c.store.segment_size = size(&s.segment_size, "store.segment_size")?;
        c.store.max_message_size = size(&s.max_message_size, "store.max_message_size")? as usize;
        c.store.checkpoint_interval = Duration::from_millis(s.checkpoint_interval_ms.max(100));
        c.store.recycle_segments = s.recycle_segments;
        c.store.retention = RetentionConfig {
            max_age: (s.retention_hours > 0).then(|| Duration::from_secs(s.retention_hours * 3600)),
            max_disk_ratio: (s.max_disk_ratio > 0.0).then_some(s.max_disk_ratio),
            ..RetentionConfig::default()
        };
        Ok(c)
    }
}

fn size(v: &str, what: &str) -> anyhow::Result<u64> {
    parse_size(v).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_reference_config_is_the_defaults() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/catmq.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        // Every option appears, commented out, with its default value.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = ") || r.starts_with('['))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: ServerConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(parsed, ServerConfig::default());
        assert_eq!(
            ServerConfig::load(Some(&p), &no_env).unwrap(),
            ServerConfig::default()
        );
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "data_dir = \"/d\"\n[broker]\nname = \"b1\"\nnamesrv = [\"x:1\"]\n[store]\nflush = \"sync\"\n").unwrap();
        let env = |k: &str| match k {
            "CATMQ_BROKER_NAME" => Some("b2".to_string()),
            "CATMQ_BROKER_NAMESRV" => Some("a:1, b:2".to_string()),
            "CATMQ_BROKER_LONG_POLLING" => Some("false".to_string()),
            "CATMQ_STORE_MAX_DISK_RATIO" => Some("0.5".to_string()),
            _ => None,
        };
        let c = ServerConfig::load(Some(&p), &env).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/d"));
        assert_eq!(c.broker.name, "b2");
        assert_eq!(c.broker.namesrv, vec!["a:1", "b:2"]);
        assert!(!c.broker.long_polling);
        assert_eq!(c.store.flush, "sync");
        let b = c
            .broker_config(Some("127.0.0.1:9".parse().unwrap()))
            .unwrap();
        assert_eq!(b.namesrv_addrs, vec!["127.0.0.1:9", "a:1", "b:2"]);
        assert_eq!(b.store.flush, FlushMode::Sync);
        assert_eq!(b.store.retention.max_disk_ratio, Some(0.5));

        std::fs::write(&p, "[broker]\nnmae = \"typo\"\n").unwrap();
        assert!(ServerConfig::load(Some(&p), &no_env).is_err());
        let bad = |k: &str| (k == "CATMQ_BROKER_MAX_PULL_MESSAGES").then(|| "many".to_string());
        assert!(ServerConfig::load(None, &bad).is_err());
        let bad = |k: &str| (k == "CATMQ_STORE_FLUSH").then(|| "sometimes".to_string());
        assert!(ServerConfig::load(None, &bad).is_err());
    }
}
