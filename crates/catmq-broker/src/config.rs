//! Broker settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use catmq_protocol::body::perm;
use catmq_remoting::ConnectionOptions;
use catmq_store::StoreConfig;

/// Apache RocketMQ's 18 delay levels.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// Everything a broker needs to know.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Broker name (the `brokerName` of routes and message queues).
    pub broker_name: String,
    /// Cluster the broker registers in.
    pub cluster_name: String,
    /// 0 for a master.
    pub broker_id: i64,
    /// Metadata (topics, groups, offsets) goes under `<data_dir>/config`.
    pub data_dir: PathBuf,
    /// The message store; its `store_host` is set to the advertised address at start.
    pub store: StoreConfig,
    /// The address clients are told to connect to (default: the listening address, or this
    /// host's outward IPv4 address when listening on all interfaces).
    pub advertised_addr: Option<SocketAddr>,
    /// Name servers to register with (`host:port`).
    pub namesrv_addrs: Vec<String>,
    /// How often the broker re-registers with the name servers.
    pub register_interval: Duration,
    /// How long one registration may take.
    pub register_timeout: Duration,
    /// Create topics on first send when the default topic (`TBW102`) allows it.
    pub auto_create_topic: bool,
    /// Create subscription groups on first use.
    pub auto_create_group: bool,
    /// Queue count of the default topic (upper bound of auto-created topics).
    pub default_topic_queue_nums: i32,
    /// Broker permission bits (`perm`): 6 read+write, 4 read-only, 2 write-only.
    pub broker_permission: i32,
    /// Hold pulls that find nothing until a message arrives (long polling).
    pub long_polling: bool,
    /// Upper bound of a pull's suspension, whatever the client asks.
    pub max_suspend: Duration,
    /// Most messages in one pull response.
    pub max_pull_messages: u32,
    /// Most bytes of messages in one pull response (one message is always sent).
    pub max_pull_bytes: usize,
    /// Most messages in one QUERY_MESSAGE answer.
    pub max_query_messages: usize,
    /// A client that has not sent a heartbeat for this long is dropped.
    pub client_expiry: Duration,
    /// An ordered-consumption queue lock lapses after this long without renewal.
    pub lock_expiry: Duration,
    /// Committed consumer offsets are written to disk this often (when changed).
    pub offset_persist_interval: Duration,
    /// Delay of each level, level 1 first (`1s 5s … 2h`).
    pub delay_levels: Vec<Duration>,
    /// Transport settings.
    pub connection: ConnectionOptions,
    /// Transaction check-backs.
    pub transaction: TransactionConfig,
    /// Scheduled delivery.
    pub timer: TimerConfig,
}

/// How unresolved transactions are checked back.
#[derive(Debug, Clone, Copy)]
pub struct TransactionConfig {
    /// A half message without an outcome is first checked this long after it was stored
    /// (a producer may ask for longer with `CHECK_IMMUNITY_TIME_IN_SECONDS`).
    pub check_delay: Duration,
    /// Then again this often.
    pub check_interval: Duration,
    /// After this many check-backs it is discarded.
    pub check_max: u32,
    /// Discarded half messages are copied to `TRANS_CHECK_MAX_TIME_TOPIC`.
    pub keep_discarded: bool,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        Self {
            check_delay: Duration::from_secs(6),
            check_interval: Duration::from_secs(30),
            check_max: 15,
            keep_discarded: true,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl TransactionConfig {
    pub(crate) fn check_delay_ms(&self) -> i64 {
        millis(self.check_delay)
    }

    pub(crate) fn check_interval_ms(&self) -> i64 {
        millis(self.check_interval).max(1)
    }
}

/// Scheduled delivery settings.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    /// The furthest ahead a message may be scheduled.
    pub max_delay: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            max_delay: Duration::from_secs(2 * 366 * 86_400),
        }
    }
}

impl BrokerConfig {
    /// Defaults for a broker keeping its data under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            broker_name: "broker-a".into(),
            cluster_name: "DefaultCluster".into(),
            broker_id: 0,
            store: StoreConfig::new(data_dir.join("store")),
            data_dir,
            advertised_addr: None,
            namesrv_addrs: Vec::new(),
            register_interval: Duration::from_secs(30),
            register_timeout: Duration::from_secs(6),
            auto_create_topic: true,
            auto_create_group: true,
            default_topic_queue_nums: 8,
            broker_permission: perm::READ_WRITE,
            long_polling: true,
            max_suspend: Duration::from_secs(30),
            max_pull_messages: 32,
            max_pull_bytes: 256 << 10,
            max_query_messages: 64,
            client_expiry: Duration::from_secs(120),
            lock_expiry: Duration::from_secs(60),
            offset_persist_interval: Duration::from_millis(500),
            delay_levels: parse_delay_levels(DEFAULT_DELAY_LEVELS).unwrap_or_default(),
            connection: ConnectionOptions::default(),
            transaction: TransactionConfig::default(),
            timer: TimerConfig::default(),
        }
    }

    /// Where metadata files live.
    pub fn config_dir(&self) -> PathBuf {
        self.data_dir.join("config")
    }

    pub(crate) fn config_file(&self, name: &str) -> PathBuf {
        self.config_dir().join(name)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.broker_name.is_empty() || self.cluster_name.is_empty() {
            return Err("broker and cluster names must not be empty".into());
        }
        if !(1..=1024).contains(&self.default_topic_queue_nums) {
            return Err("default_topic_queue_nums must be 1..=1024".into());
        }
        if self.delay_levels.is_empty() {
            return Err("at least one delay level is needed".into());
        }
        if self.transaction.check_interval.is_zero() {
            return Err("transaction check_interval must be above zero".into());
        }
        if self.max_pull_messages == 0 {
            return Err("max_pull_messages must be at least 1".into());
        }
        Ok(())
    }
}

/// Parses delay levels such as `1s 5s 10s 1m 2h` (units `ms`, `s`, `m`, `h`, `d`).
pub fn parse_delay_levels(spec: &str) -> Result<Vec<Duration>, String> {
    spec.split_whitespace()
        .map(|t| {
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (n, unit) = t.split_at(split);
            let n: u64 = n.parse().map_err(|_| format!("bad delay level {t:?}"))?;
            let ms = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(format!("bad delay level unit in {t:?}")),
            };
            Ok(Duration::from_millis(n.saturating_mul(ms)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_levels_are_rocketmqs() {
        let l = parse_delay_levels(DEFAULT_DELAY_LEVELS).unwrap();
        assert_eq!(l.len(), 18);
        assert_eq!(l[0], Duration::from_secs(1));
        assert_eq!(l[2], Duration::from_secs(10));
        assert_eq!(l[17], Duration::from_secs(7200));
        assert!(parse_delay_levels("1x").is_err());
        assert!(parse_delay_levels("s").is_err());
        assert_eq!(
            parse_delay_levels("250ms 1d").unwrap(),
            vec![Duration::from_millis(250), Duration::from_secs(86400)]
        );
    }
}
