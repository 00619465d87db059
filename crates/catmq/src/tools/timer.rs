//! `catmq admin timer ...`: scheduled messages per topic and delivery lateness, one scheduled
//! message's due time and state, cancelling one.

use anyhow::Result;
use catmq_client::Admin;
use clap::Subcommand;

/// `catmq admin timer ...`
#[derive(Debug, Subcommand)]
pub enum TimerCommand {
    /// Scheduled messages per topic and delivery lateness, per broker.
    Status,
    /// One scheduled message: due time and state (PENDING, CANCELLED, DELIVERED).
    Show {
        #[arg(long, short)]
        topic: String,
        /// Its message id (the producer's unique id).
        #[arg(long)]
        id: String,
    },
    /// Cancel a scheduled message before it is due.
    Cancel {
        #[arg(long, short)]
        topic: String,
        /// Its message id (the producer's unique id).
        #[arg(long)]
        id: String,
    },
}

fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Runs one `catmq admin timer` command.
pub async fn run(admin: &Admin, cmd: &TimerCommand) -> Result<()> {
    match cmd {
        TimerCommand::Status => {
            for s in admin.timer_stats().await? {
                let total: u64 = s.scheduled.values().sum();
                println!("broker {} ({}): {total} scheduled", s.broker, s.addr);
                for (topic, n) in &s.scheduled {
                    println!("  {topic}: {n}");
                }
                let l = &s.lateness;
                println!(
                    "  delivered {} since start; lateness p50 {} ms, p99 {} ms, max {} ms",
                    l.delivered, l.p50_ms, l.p99_ms, l.max_ms
                );
            }
        }
        TimerCommand::Show { topic, id } => {
            let m = admin.scheduled_message(topic, id).await?;
            println!(
                "{} {} on {}: due {} ({} ms), {}; stored {}",
                m.topic,
                m.msg_id,
                m.broker,
                time(m.due_ms),
                m.due_ms,
                m.state,
                time(m.store_timestamp)
            );
        }
        TimerCommand::Cancel { topic, id } => {
            admin.cancel_scheduled(topic, id).await?;
            println!("cancelled {id} of {topic}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_as_utc() {
        assert_eq!(super::time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
