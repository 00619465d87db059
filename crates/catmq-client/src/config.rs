//! Settings shared by every producer, consumer and admin client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use catmq_protocol::SerializeType;

/// Connection, routing and timing settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Name server addresses (`host:port`); tried in turn.
    pub namesrv_addrs: Vec<String>,
    /// The part of the client id after `@`; a per-process unique name when unset.
    pub instance_name: Option<String>,
    /// The IP this client reports; by default the local address of its first connection.
    pub client_ip: Option<String>,
    /// Header encoding of requests: binary (ROCKETMQ) by default, or JSON.
    pub serialize: SerializeType,
    /// How long a request waits for its response (sends override it with their timeout).
    pub request_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How often routes are fetched again from the name server.
    pub route_refresh_interval: Duration,
    /// How often heartbeats go to every broker of the routes in use.
    pub heartbeat_interval: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            namesrv_addrs: vec!["127.0.0.1:9876".to_owned()],
            instance_name: None,
            client_ip: None,
            serialize: SerializeType::RocketMq,
            request_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            route_refresh_interval: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(30),
        }
    }
}

impl ClientConfig {
    /// Defaults with these name servers (`"a:9876;b:9876"` or `"a:9876,b:9876"`).
    pub fn new(namesrv: &str) -> Self {
        Self {
            namesrv_addrs: split_addrs(namesrv),
            ..Self::default()
        }
    }
}

/// Splits a `;`- or `,`-separated address list.
pub fn split_addrs(list: &str) -> Vec<String> {
    list.split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The setters every builder shares: name servers, client settings and its own options; with
/// `consumer`, also where a new group starts.
macro_rules! builder_settings {
    ($opts:ty) => {
        /// Name servers (`"host:port;host:port"`).
        pub fn namesrv(mut self, addrs: &str) -> Self {
            self.config.namesrv_addrs = $crate::split_addrs(addrs);
            self
        }

        /// All client settings.
        pub fn config(mut self, config: $crate::ClientConfig) -> Self {
            self.config = config;
            self
        }

        /// All of this builder's own settings.
        pub fn options(mut self, opts: $opts) -> Self {
            self.opts = opts;
            self
        }
    };
    ($opts:ty, consumer) => {
        $crate::config::builder_settings!($opts);

        /// Where a group with no committed offset starts.
        pub fn consume_from(mut self, from: $crate::ConsumeFrom) -> Self {
            self.opts.consume_from = from;
            self
        }
    };
}
pub(crate) use builder_settings;

static INSTANCE_SEQ: AtomicU64 = AtomicU64::new(0);

/// A per-process unique instance name: `pid#n`.
pub(crate) fn default_instance_name() -> String {
    let n = INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{}#{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        assert_eq!(split_addrs("a:1; b:2,c:3;"), vec!["a:1", "b:2", "c:3"]);
        assert_eq!(ClientConfig::new("x:9").namesrv_addrs, vec!["x:9"]);
        assert_ne!(default_instance_name(), default_instance_name());
    }
}
