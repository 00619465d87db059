//! `catmq consume`: prints a topic's messages as a member of a group, until a count is reached
//! or Ctrl-C; offsets are committed on the way out.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use catmq_client::{ConsumeFrom, LitePullConsumer, MessageExt, MessageQueue};
use clap::{Args, ValueEnum};

use super::{parse_time, runtime, ConnArgs};

/// How consumed messages are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line: queue, offset, id, tags, keys, body.
    Text,
    /// One JSON object per line.
    Json,
}

/// `catmq consume` flags.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic to read.
    #[arg(long, short)]
    pub topic: String,
    /// Consumer group.
    #[arg(long, short, default_value = "CATMQ_CLI_CONSUMER")]
    pub group: String,
    /// Tag expression (`*`, `A || B`).
    #[arg(long, default_value = "*")]
    pub expr: String,
    /// Where a group without a committed offset starts: first, last, or a time (ms, -10m).
    #[arg(long, default_value = "last")]
    pub from: String,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn consume_from(s: &str) -> Result<ConsumeFrom> {
    Ok(match s {
        "first" => ConsumeFrom::First,
        "last" => ConsumeFrom::Last,
        t => ConsumeFrom::Timestamp(parse_time(t)?),
    })
}

fn render(m: &MessageExt, format: Format) -> String {
    let body = String::from_utf8_lossy(m.body());
    match format {
        Format::Text => format!(
            "{}#{} offset={} msgId={} tags={} keys={} body={}",
            m.queue.broker_name,
            m.queue.queue_id,
            m.queue_offset,
            m.msg_id,
            m.tags().unwrap_or(""),
            m.message.keys().join(","),
            body
        ),
        Format::Json => serde_json::json!({
            "topic": m.topic(),
            "brokerName": m.queue.broker_name,
            "queueId": m.queue.queue_id,
            "queueOffset": m.queue_offset,
            "msgId": m.msg_id,
            "offsetMsgId": m.offset_msg_id,
            "bornTimestamp": m.born_timestamp,
            "storeTimestamp": m.store_timestamp,
            "reconsumeTimes": m.reconsume_times,
            "properties": m.message.properties,
            "body": body,
        })
        .to_string(),
    }
}

/// Runs `catmq consume`: polls, prints, and commits exactly what it printed.
pub fn run(args: &ConsumeArgs) -> Result<()> {
    let from = consume_from(&args.from)?;
    runtime()?.block_on(async {
        let consumer = LitePullConsumer::builder(args.group.clone())
            .config(args.conn.config())
            .consume_from(from)
            .auto_commit(None)
            .start()
            .await?;
        consumer.subscribe(&args.topic, &args.expr).await?;
        let limit = args.count.unwrap_or(u64::MAX);
        let mut printed = 0u64;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        while printed < limit {
            let msgs = tokio::select! {
                r = consumer.poll(Duration::from_secs(1)) => r?,
                r = &mut ctrl_c => { r?; break; }
            };
            let mut done: BTreeMap<MessageQueue, i64> = BTreeMap::new();
            for m in msgs
                .iter()
                .take(usize::try_from(limit - printed).unwrap_or(usize::MAX))
            {
                println!("{}", render(m, args.format));
                done.insert(m.queue.clone(), m.queue_offset + 1);
                printed += 1;
            }
            let done: Vec<(MessageQueue, i64)> = done.into_iter().collect();
            consumer.commit_offsets(&done).await?;
        }
        consumer.shutdown().await;
        eprintln!("consumed {printed} messages; offsets committed");
        Ok(())
    })
}
