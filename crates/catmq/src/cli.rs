//! Command-line interface: every subcommand and its flags.
//!
//! Layout (later roles and tools slot in as new variants):
//!
//! ```text
//! catmq server [flags]               name server + broker in one process
//! catmq namesrv [flags]              name server alone
//! catmq broker --namesrv ADDR        broker alone
//! catmq produce -t TOPIC [MSG...]   send messages (or stdin lines)
//! catmq consume -t TOPIC -g GROUP    print messages; commits what it printed
//! catmq admin <topic|group|consumers|message|reset-offset|cluster> ...
//! catmq bench produce|consume|e2e    benchmarks over the wire against a running cluster
//! catmq bench store [flags]          storage benchmark over FileStore (no network)
//! catmq store verify --dir PATH      open (recover) a store and read every queue
//! catmq store dump --dir PATH ...    print one queue's messages
//! ```

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// CatMQ: a RocketMQ-compatible message queue.
#[derive(Debug, Parser)]
#[command(name = "catmq", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a name server and a broker in one process (data under ./catmq-data by default).
    Server(ServerArgs),
    /// Run a name server alone.
    Namesrv(ServerArgs),
    /// Run a broker alone, registering with `--namesrv`.
    Broker(ServerArgs),
    /// Send messages (arguments, or stdin one per line).
    Produce(crate::tools::produce::ProduceArgs),
    /// Print a topic's messages as a member of a group.
    Consume(crate::tools::consume::ConsumeArgs),
    /// Administer the cluster: topics, groups, offsets, messages.
    Admin(crate::tools::admin::AdminArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Offline tools for a store directory (the broker must not be running on it).
    #[command(subcommand)]
    Store(StoreCommand),
}

/// Flags of the server roles (each overrides the config file and `CATMQ_*` variables).
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// TOML config file (reference: config/catmq.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory of the broker.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Name server listen address (server, namesrv).
    #[arg(long)]
    pub namesrv_listen: Option<String>,
    /// Broker listen address (server, broker).
    #[arg(long)]
    pub broker_listen: Option<String>,
    /// Name servers the broker registers with (comma-separated host:port).
    #[arg(long, value_delimiter = ',')]
    pub namesrv: Vec<String>,
    /// Broker name.
    #[arg(long)]
    pub broker_name: Option<String>,
    /// Address clients are told to use for the broker (host:port).
    #[arg(long)]
    pub advertised_addr: Option<String>,
    /// Store durability mode.
    #[arg(long, value_enum)]
    pub flush: Option<FlushArg>,
}

/// `catmq bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Storage benchmark: appends, reads, key lookups or recovery on FileStore directly.
    Store(StoreBenchArgs),
    /// Send messages to a running cluster as fast as possible (or at `--rate`).
    Produce(crate::bench::net::NetArgs),
    /// Consume a topic's backlog from the start with a push consumer.
    Consume(crate::bench::net::NetArgs),
    /// A consumer plus producers at `--rate`: send and send-to-listener latency.
    E2e(crate::bench::net::NetArgs),
    /// Scheduled messages spread over a window, with background traffic: timer ingest rate
    /// and delivery lateness.
    Timer(crate::bench::net::TimerBenchArgs),
    /// Internal: the append phase of `bench store --mode recovery`, run in a child process that
    /// the parent kills with SIGKILL once it prints "done".
    #[command(hide = true)]
    StoreChild(StoreBenchArgs),
}

/// What `bench store` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// Append messages.
    Append,
    /// Append, close, reopen, then read every queue from offset 0.
    Read,
    /// Append, then look messages up by key.
    KeyLookup,
    /// Append in a child process, SIGKILL it, then time the recovery of `FileStore::open`.
    Recovery,
    /// Sync appends on one store in alternating rounds of one appender and of `--appenders`;
    /// prints each round's rates and their ratio, and the medians.
    SyncRatio,
}

impl BenchMode {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Read => "read",
            Self::KeyLookup => "key-lookup",
            Self::Recovery => "recovery",
            Self::SyncRatio => "sync-ratio",
        }
    }
}

/// Durability mode of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushArg {
    /// Acknowledge after the write; fsync every `--flush-interval-ms`.
    Async,
    /// Acknowledge after an fsync covering the append (group commit).
    Sync,
}

impl FlushArg {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Async => "async",
            Self::Sync => "sync",
        }
    }
}

/// Flags of `catmq bench store`.
#[derive(Debug, Clone, Args)]
pub struct StoreBenchArgs {
    /// Store directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = BenchMode::Append)]
    pub mode: BenchMode,
    /// Durability mode of the appends.
    #[arg(long, value_enum, default_value_t = FlushArg::Async)]
    pub flush: FlushArg,
    /// Fsync interval of async flush (ms).
    #[arg(long, default_value_t = 500)]
    pub flush_interval_ms: u64,
    /// Appender threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub appenders: u32,
    /// Run the appenders as async tasks on runtime threads (as the broker does) instead of OS
    /// threads; in sync mode they then await durability instead of blocking.
    #[arg(long)]
    pub tasks: bool,
    /// Runtime threads for `--tasks` (default: one per core, as the broker's runtime).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: Option<u32>,
    /// Body size of each message (bytes; k/m/g suffixes are binary).
    #[arg(long, default_value = "1024", value_parser = parse_size)]
    pub size: u64,
    /// Total messages to append (default 1,000,000 unless only --duration is given).
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop appending after this many seconds (with --count: whichever comes first).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Number of topics (one: `BenchTopic`; more: `BenchTopic-0`, `BenchTopic-1`, ...).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub topics: u32,
    /// Queues per topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub queues: u32,
    /// Messages per append call (all to one queue; calls go round-robin over the queues).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Commit-log segment size (bytes; k/m/g suffixes are binary).
    #[arg(long, default_value = "1g", value_parser = parse_size)]
    pub segment_size: u64,
    /// `--mode append` and `sync-ratio`: append this many messages first, with the same
    /// appenders, untimed.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// `--mode append` and `sync-ratio`: run the store as at steady state under retention: every
    /// segment but the active one is deleted (checked every 10 ms), so with sync flush each new
    /// segment reuses a deleted segment's file. Give a --warmup of more than a segment.
    #[arg(long)]
    pub recycle: bool,
    /// `--mode sync-ratio`: rounds of (one appender, then `--appenders`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rounds: u32,
    /// `--mode sync-ratio`: seconds each side of a round appends.
    #[arg(long, default_value_t = 1.0)]
    pub round_secs: f64,
    /// Checkpoint interval of the store (s). A huge value (e.g. 100000) also makes the byte
    /// trigger unlimited, so recovery replays everything written.
    #[arg(long, default_value_t = 5)]
    pub checkpoint_interval_secs: u64,
    /// Checkpoint after this many log bytes (default 256 MiB, unlimited when the interval is an
    /// hour or more).
    #[arg(long, value_parser = parse_size)]
    pub checkpoint_bytes: Option<u64>,
    /// Random key lookups (`--mode key-lookup`).
    #[arg(long, default_value_t = 10_000)]
    pub lookups: u64,
    /// Drop the OS page cache before reading or recovering (needs root; warm otherwise).
    #[arg(long)]
    pub cold: bool,
    /// `--mode recovery`: checkpoint after the appends, so recovery starts at the end.
    #[arg(long)]
    pub checkpoint_before: bool,
    /// Print `ACK <topic> <queue_id> <queue_offset> <uniq_key>` to stdout for each appended
    /// message once its append (and, with sync flush, its fsync) completed.
    #[arg(long)]
    pub print_acks: bool,
    /// Print the final summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `catmq store ...`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Open a store (running recovery), print what recovery did and read every queue.
    /// Exits non-zero if any read fails or a queue has gaps.
    Verify(VerifyArgs),
    /// Print the messages of one queue, one per line.
    Dump(DumpArgs),
}

/// Where a store is and how it was written.
#[derive(Debug, Clone, Args)]
pub struct StoreLocation {
    /// Store directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Commit-log segment size the store was written with (default: inferred from the segment
    /// file names, else 1 GiB).
    #[arg(long, value_parser = parse_size)]
    pub segment_size: Option<u64>,
}

/// Flags of `catmq store verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreLocation,
}

/// Flags of `catmq store dump`.
#[derive(Debug, Clone, Args)]
pub struct DumpArgs {
    /// The store.
    #[command(flatten)]
    pub store: StoreLocation,
    /// Topic.
    #[arg(long)]
    pub topic: String,
    /// Queue id.
    #[arg(long)]
    pub queue: i32,
    /// First queue offset (default: the queue's min offset).
    #[arg(long)]
    pub from: Option<u64>,
    /// At most this many messages (default: all).
    #[arg(long)]
    pub count: Option<u64>,
}

/// Parses a byte count: a number with an optional binary suffix (k, m, g, t; `KiB`/`KB` alike).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1x").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999t").is_err());
    }

    #[test]
    fn bench_store_defaults() {
        let cli = Cli::try_parse_from(["catmq", "bench", "store"]).unwrap();
        let Command::Bench(BenchCommand::Store(a)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(a.mode, BenchMode::Append);
        assert_eq!(a.flush, FlushArg::Async);
        assert_eq!(
            (a.appenders, a.size, a.batch, a.topics, a.queues),
            (1, 1024, 1, 1, 4)
        );
        assert_eq!(a.segment_size, 1 << 30);
        assert_eq!(a.count, None);
    }
}
