//! `catmq produce`: sends messages given as arguments, or one per line of stdin.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use catmq_client::{Message, Producer};
use clap::Args;

use super::{parse_kv, parse_time, runtime, ConnArgs};

/// `catmq produce` flags.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic to send to.
    #[arg(long, short)]
    pub topic: String,
    /// Tag of every message.
    #[arg(long)]
    pub tags: Option<String>,
    /// Keys of every message (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub keys: Vec<String>,
    /// A user property (repeatable).
    #[arg(long = "property", short = 'p', value_parser = parse_kv)]
    pub properties: Vec<(String, String)>,
    /// Delay level (1..=18) for scheduled delivery.
    #[arg(long)]
    pub delay_level: Option<i32>,
    /// Deliver at this time: ms since the epoch, or +10m / +2h / +30d from now.
    #[arg(long, conflicts_with_all = ["delay", "delay_level"])]
    pub deliver_at: Option<String>,
    /// Deliver this long after the broker stores it (90s, 10m, 2h, 7d).
    #[arg(long, value_parser = parse_delay, conflicts_with = "delay_level")]
    pub delay: Option<Duration>,
    /// Send in order on the queue chosen by this key.
    #[arg(long)]
    pub order_key: Option<String>,
    /// Send the messages this many times.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Highest send rate, messages per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Producer group.
    #[arg(long, default_value = "CATMQ_CLI_PRODUCER")]
    pub group: String,
    /// Print only a summary line, not one line per message.
    #[arg(long)]
    pub summary: bool,
    /// Message bodies; stdin (one per line) when none is given.
    pub messages: Vec<String>,
}

fn bodies(args: &ProduceArgs) -> Result<Vec<String>> {
    if !args.messages.is_empty() {
        return Ok(args.messages.clone());
    }
    std::io::stdin()
        .lock()
        .lines()
        .collect::<std::io::Result<Vec<String>>>()
        .context("reading messages from stdin")
}

fn parse_delay(s: &str) -> Result<Duration> {
    match catmq_broker::parse_delay_levels(s).map_err(anyhow::Error::msg)?[..] {
        [d] => Ok(d),
        _ => anyhow::bail!("one delay, such as 90s or 10m, not {s:?}"),
    }
}

fn message(args: &ProduceArgs, body: &str, deliver_at: Option<i64>) -> Message {
    let mut m = Message::new(args.topic.clone(), body.to_owned());
    if let Some(at) = deliver_at {
        m = m.with_deliver_at(at);
    }
    if let Some(d) = args.delay {
        m = m.with_delay(d);
    }
    if let Some(t) = &args.tags {
        m = m.with_tags(t.clone());
    }
    if !args.keys.is_empty() {
        m = m.with_keys(&args.keys);
    }
    if let Some(l) = args.delay_level {
        m = m.with_delay_level(l);
    }
    for (k, v) in &args.properties {
        m = m.with_property(k.clone(), v.clone());
    }
    m
}

/// Runs `catmq produce`.
pub fn run(args: &ProduceArgs) -> Result<()> {
    let bodies = bodies(args)?;
    let deliver_at = args.deliver_at.as_deref().map(parse_time).transpose()?;
    runtime()?.block_on(async {
        let p = Producer::builder(args.group.clone())
            .config(args.conn.config())
            .start()
            .await?;
        let started = Instant::now();
        let gap = args
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        let mut next = tokio::time::Instant::now();
        let mut sent = 0u64;
        for _ in 0..args.count {
            for body in &bodies {
                if let Some(gap) = gap {
                    tokio::time::sleep_until(next).await;
                    next += gap;
                }
                let m = message(args, body, deliver_at);
                let r = match &args.order_key {
                    Some(k) => p.send_ordered(m, k).await,
                    None => p.send(m).await,
                }
                .with_context(|| format!("sending message {} to topic {}", sent + 1, args.topic))?;
                sent += 1;
                if !args.summary {
                    println!(
                        "msgId={} offsetMsgId={} queue={}#{} offset={} status={:?}",
                        r.msg_id,
                        r.offset_msg_id,
                        r.queue.broker_name,
                        r.queue.queue_id,
                        r.queue_offset,
                        r.status
                    );
                    if let Some(h) = &r.recall_handle {
                        println!("recallHandle={h}");
                    }
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "sent {sent} messages to {} in {secs:.3} s ({:.0} msgs/s)",
            args.topic,
            sent as f64 / secs.max(1e-9)
        );
        p.shutdown().await;
        Ok(())
    })
}
