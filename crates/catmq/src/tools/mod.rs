//! `catmq produce`, `catmq consume` and `catmq admin`: the client library from the shell.

pub mod admin;
pub mod consume;
pub mod produce;
pub mod timer;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use catmq_client::{ClientConfig, SerializeType};
use clap::Args;

/// How to reach the cluster.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Name servers (host:port, `;`- or `,`-separated).
    #[arg(
        long,
        short = 'n',
        env = "CATMQ_NAMESRV",
        default_value = "127.0.0.1:9876",
        global = true
    )]
    pub namesrv: String,
    /// Send JSON request headers instead of the binary (ROCKETMQ) ones.
    #[arg(long, global = true)]
    pub json_headers: bool,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 3000, global = true)]
    pub timeout_ms: u64,
}

impl ConnArgs {
    /// The client settings these flags describe.
    pub fn config(&self) -> ClientConfig {
        ClientConfig {
            serialize: if self.json_headers {
                SerializeType::Json
            } else {
                SerializeType::RocketMq
            },
            request_timeout: std::time::Duration::from_millis(self.timeout_ms),
            ..ClientConfig::new(&self.namesrv)
        }
    }
}

/// A multi-threaded runtime for a client command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A point in time: milliseconds since the epoch, `now`, or a time ago (`-90s`, `-10m`,
/// `-2h`, `-1d`).
pub fn parse_time(s: &str) -> Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms());
    }
    let (sign, rel) = match (s.strip_prefix('-'), s.strip_prefix('+')) {
        (Some(r), _) => (-1, Some(r)),
        (_, Some(r)) => (1, Some(r)),
        _ => (0, None),
    };
    if let Some(ago) = rel {
        let (n, unit) = ago.split_at(ago.find(|c: char| !c.is_ascii_digit()).unwrap_or(ago.len()));
        let n: i64 = n.parse().with_context(|| format!("bad time {s:?}"))?;
        let ms = match unit {
            "ms" => 1,
            "s" | "" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => bail!("bad time unit {other:?} in {s:?} (use ms, s, m, h or d)"),
        };
        return Ok(now_ms() + sign * n * ms);
    }
    s.parse().with_context(|| {
        format!("bad time {s:?}: use milliseconds since the epoch, now, -10m or +10m")
    })
}

/// A `key=value` pair.
pub fn parse_kv(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("bad property {s:?}: use key=value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_properties() {
        assert_eq!(parse_time("1700000000000").ok(), Some(1_700_000_000_000));
        let ago = parse_time("-10m").unwrap_or(0);
        assert!((now_ms() - ago - 600_000).abs() < 5_000);
        assert!(parse_time("-3x").is_err());
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_kv("a=b=c").ok(), Some(("a".into(), "b=c".into())));
        assert!(parse_kv("=x").is_err());
    }
}
