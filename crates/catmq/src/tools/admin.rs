//! `catmq admin`: mqadmin's daily verbs.

use anyhow::Result;
use catmq_client::admin::QueueLag;
use catmq_client::{Admin, MessageExt};
use catmq_protocol::body::{perm, SubscriptionGroupConfig, TopicConfig};
use clap::{Args, Subcommand};

use super::timer::TimerCommand;

use super::{now_ms, parse_time, runtime, ConnArgs};

/// `catmq admin` flags.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `catmq admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Online consumers of a group.
    Consumers {
        #[arg(long, short)]
        group: String,
    },
    /// Messages by id, key or time range.
    #[command(subcommand)]
    Message(MessageCommand),
    /// Move a group's offsets on a topic to a point in time (ms, -10m, now).
    ResetOffset {
        #[arg(long, short)]
        group: String,
        #[arg(long, short)]
        topic: String,
        #[arg(long)]
        timestamp: String,
        /// Only move offsets backwards.
        #[arg(long)]
        no_force: bool,
    },
    /// Clusters and their brokers.
    Cluster,
    /// Scheduled messages: status, one message, cancel.
    #[command(subcommand)]
    Timer(TimerCommand),
}

/// `catmq admin topic ...`
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (or update it) on every broker of a cluster.
    Create(TopicSpec),
    /// Update a topic's queues or permissions.
    Update(TopicSpec),
    /// List every topic.
    List,
    /// Delete a topic everywhere.
    Delete {
        #[arg(long, short)]
        topic: String,
    },
    /// Brokers and queues of a topic.
    Route {
        #[arg(long, short)]
        topic: String,
    },
    /// Min/max offset of each queue.
    Status {
        #[arg(long, short)]
        topic: String,
    },
}

/// A topic's settings.
#[derive(Debug, Args)]
pub struct TopicSpec {
    #[arg(long, short)]
    pub topic: String,
    /// Read and write queues per broker.
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    /// Permission: 6 read+write, 4 read only, 2 write only.
    #[arg(long, default_value_t = perm::READ_WRITE)]
    pub perm: i32,
    /// Cluster (all clusters when omitted).
    #[arg(long, short)]
    pub cluster: Option<String>,
    /// Mark the topic as ordered.
    #[arg(long)]
    pub order: bool,
}

/// `catmq admin group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create or update a subscription group.
    Create {
        #[arg(long, short)]
        group: String,
        /// Failures before a message goes to the dead-letter topic.
        #[arg(long, default_value_t = 16)]
        retry_max: i32,
        #[arg(long, short)]
        cluster: Option<String>,
        /// Members consume in order.
        #[arg(long)]
        orderly: bool,
    },
    /// List subscription groups.
    List,
    /// Delete a group and its offsets.
    Delete {
        #[arg(long, short)]
        group: String,
    },
    /// Per-queue progress and lag.
    Progress {
        #[arg(long, short)]
        group: String,
        #[arg(long, short)]
        topic: Option<String>,
    },
}

/// `catmq admin message ...`
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// A message by its offset id (offsetMsgId).
    Id {
        #[arg(long)]
        id: String,
    },
    /// Messages by key or unique id.
    Key {
        #[arg(long, short)]
        topic: String,
        #[arg(long)]
        key: String,
        #[arg(long, default_value = "0")]
        begin: String,
        #[arg(long, default_value = "now")]
        end: String,
    },
    /// Messages stored in a time range.
    Time {
        #[arg(long, short)]
        topic: String,
        #[arg(long)]
        begin: String,
        #[arg(long, default_value = "now")]
        end: String,
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
}

fn print_message(m: &MessageExt) {
    println!(
        "{}#{} offset={} msgId={} offsetMsgId={} stored={} tags={} keys={} reconsumeTimes={} body={}",
        m.queue.broker_name,
        m.queue.queue_id,
        m.queue_offset,
        m.msg_id,
        m.offset_msg_id,
        m.store_timestamp,
        m.tags().unwrap_or(""),
        m.message.keys().join(","),
        m.reconsume_times,
        String::from_utf8_lossy(m.body())
    );
}

fn print_lag(lag: &[QueueLag]) {
    println!(
        "{:<32} {:<16} {:>5} {:>12} {:>12} {:>10}",
        "topic", "broker", "queue", "brokerOffset", "consumerOffset", "lag"
    );
    for q in lag {
        println!(
            "{:<32} {:<16} {:>5} {:>12} {:>12} {:>10}",
            q.queue.topic,
            q.queue.broker_name,
            q.queue.queue_id,
            q.broker_offset,
            q.consumer_offset,
            q.lag
        );
    }
    println!("total lag: {}", lag.iter().map(|q| q.lag).sum::<i64>());
}

/// Runs `catmq admin`.
pub fn run(args: &AdminArgs) -> Result<()> {
    runtime()?.block_on(async {
        let admin = Admin::connect(args.conn.config()).await?;
        let r = match &args.command {
            AdminCommand::Topic(t) => topic(&admin, t).await,
            AdminCommand::Group(g) => group(&admin, g).await,
            AdminCommand::Message(m) => message(&admin, m).await,
            AdminCommand::Consumers { group } => consumers(&admin, group).await,
            AdminCommand::ResetOffset {
                group,
                topic,
                timestamp,
                no_force,
            } => {
                let ts = parse_time(timestamp)?;
                for (q, o) in admin.reset_offsets(group, topic, ts, !no_force).await? {
                    println!("{}#{} -> {o}", q.broker_name, q.queue_id);
                }
                Ok(())
            }
            AdminCommand::Cluster => cluster(&admin).await,
            AdminCommand::Timer(t) => super::timer::run(&admin, t).await,
        };
        admin.close();
        r
    })
}

async fn topic(admin: &Admin, cmd: &TopicCommand) -> Result<()> {
    match cmd {
        TopicCommand::Create(s) | TopicCommand::Update(s) => {
            let cfg = TopicConfig {
                topic_name: s.topic.clone(),
                read_queue_nums: s.queues,
                write_queue_nums: s.queues,
                perm: s.perm,
                order: s.order,
                ..TopicConfig::default()
            };
            for b in admin.create_topic(s.cluster.as_deref(), &cfg).await? {
                println!(
                    "topic {} ({} queues, perm {}) on {} {}",
                    s.topic, s.queues, s.perm, b.name, b.addr
                );
            }
        }
        TopicCommand::List => admin.topics().await?.iter().for_each(|t| println!("{t}")),
        TopicCommand::Delete { topic } => {
            admin.delete_topic(topic).await?;
            println!("deleted topic {topic}");
        }
        TopicCommand::Route { topic } => {
            let r = admin.route(topic).await?;
            println!("{}", serde_json::to_string_pretty(&r.data)?);
        }
        TopicCommand::Status { topic } => {
            println!(
                "{:<16} {:>5} {:>12} {:>12} {:>15}",
                "broker", "queue", "minOffset", "maxOffset", "lastUpdated"
            );
            for (q, o) in admin.topic_status(topic).await? {
                println!(
                    "{:<16} {:>5} {:>12} {:>12} {:>15}",
                    q.broker_name, q.queue_id, o.min_offset, o.max_offset, o.last_update_timestamp
                );
            }
        }
    }
    Ok(())
}

async fn group(admin: &Admin, cmd: &GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::Create {
            group,
            retry_max,
            cluster,
            orderly,
        } => {
            let cfg = SubscriptionGroupConfig {
                group_name: group.clone(),
                consume_enable: true,
                consume_broadcast_enable: true,
                consume_from_min_enable: true,
                consume_message_orderly: *orderly,
                notify_consumer_ids_changed_enable: true,
                retry_max_times: *retry_max,
                retry_queue_nums: 1,
                which_broker_when_consume_slowly: 1,
                broker_id: 0,
            };
            for b in admin.create_group(cluster.as_deref(), &cfg).await? {
                println!("group {group} on {} {}", b.name, b.addr);
            }
        }
        GroupCommand::List => {
            for (name, g) in admin.groups().await? {
                println!(
                    "{name} retryMaxTimes={} orderly={} consumeEnable={}",
                    g.retry_max_times, g.consume_message_orderly, g.consume_enable
                );
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(group).await?;
            println!("deleted group {group}");
        }
        GroupCommand::Progress { group, topic } => {
            print_lag(&admin.lag(group, topic.as_deref()).await?)
        }
    }
    Ok(())
}

async fn message(admin: &Admin, cmd: &MessageCommand) -> Result<()> {
    let found = match cmd {
        MessageCommand::Id { id } => vec![admin.view_message(id).await?],
        MessageCommand::Key {
            topic,
            key,
            begin,
            end,
        } => {
            admin
                .query_by_key(topic, key, parse_time(begin)?, parse_time(end)?, 64)
                .await?
        }
        MessageCommand::Time {
            topic,
            begin,
            end,
            max,
        } => {
            admin
                .messages_between(topic, parse_time(begin)?, parse_time(end)?, *max)
                .await?
        }
    };
    found.iter().for_each(print_message);
    eprintln!("{} message(s)", found.len());
    Ok(())
}

async fn consumers(admin: &Admin, group: &str) -> Result<()> {
    let c = admin.consumer_connections(group).await?;
    for conn in &c.connection_set {
        println!(
            "{} {} {} version={}",
            conn.client_id, conn.client_addr, conn.language, conn.version
        );
    }
    for (topic, s) in &c.subscription_table {
        println!("subscription {topic}: {}", s.sub_string);
    }
    println!(
        "model={:?} consumeFrom={:?}",
        c.message_model, c.consume_from_where
    );
    Ok(())
}

async fn cluster(admin: &Admin) -> Result<()> {
    let now = now_ms();
    for b in admin.brokers(None).await? {
        let rt = admin.broker_runtime(&b.addr).await.unwrap_or_default();
        let get = |k: &str| rt.get(k).cloned().unwrap_or_else(|| "-".into());
        println!(
            "cluster={} broker={} addr={} version={} putTps={} msgPutTotal={} uptime={} (at {now})",
            b.cluster,
            b.name,
            b.addr,
            get("brokerVersionDesc"),
            get("putTps"),
            get("msgPutTotalSinceBoot"),
            get("bootTimestamp")
        );
    }
    Ok(())
}
