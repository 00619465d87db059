//! CatMQ's Rust client, speaking Apache RocketMQ's remoting protocol (binary headers by
//! default), so it works with CatMQ and with RocketMQ brokers alike.
//!
//! * [`Producer`]: sync, async (a spawned future), oneway and batch sends; queue selectors
//!   (hash by key for ordered messages, round robin, custom); retries on another broker and
//!   avoidance of slow or failing brokers; compression over a threshold; send hooks.
//! * [`PushConsumer`]: concurrent or orderly listeners, clustering or broadcasting,
//!   rebalancing, flow control, offsets on the broker or in a local file, retries and dead
//!   letters.
//! * [`LitePullConsumer`]: `poll` with auto or manual commit, seek, pause and resume.
//! * [`Admin`]: topics, groups, stats, lag, connections, message lookups, offset resets.
//!
//! Every call returns a [`ClientError`] that says whether retrying can help.

pub mod admin;
mod compress;
mod config;
pub mod consumer;
mod error;
mod instance;
mod message;
pub mod producer;
mod remote;
mod route;

pub use admin::{Admin, Lateness as TimerLateness, ScheduledMessage, TimerStats};
pub use catmq_protocol::SerializeType;
pub use compress::Compression;
pub use config::{split_addrs, ClientConfig};
pub use consumer::{
    ConsumeContext, ConsumeFrom, ConsumeResult, ConsumerOptions, LitePullConsumer, MessageModel,
    OrderlyResult, PushConsumer,
};
pub use error::{ClientError, Result};
pub use message::{Message, MessageExt, MessageQueue, SendResult, SendStatus};
pub use producer::{Producer, TransactionListener, TransactionSendResult, TransactionState};
pub use route::Route;
