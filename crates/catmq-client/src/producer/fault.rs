//! Latency fault tolerance: a broker whose last send was slow, or failed, is skipped for a
//! while (RocketMQ 5's table: ≥ 550 ms → 2 s, ≥ 1.8 s → 5 s, ≥ 3 s → 6 s, ≥ 5 s → 10 s,
//! ≥ 15 s → 30 s; a failure counts as 10 s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LATENCY_MS: [u64; 7] = [50, 100, 550, 1_800, 3_000, 5_000, 15_000];
const PAUSE_MS: [u64; 7] = [0, 0, 2_000, 5_000, 6_000, 10_000, 30_000];
/// The latency a failed send counts as.
const FAILURE_LATENCY: Duration = Duration::from_secs(10);

/// Which brokers to avoid, and until when.
#[derive(Debug, Default)]
pub(crate) struct LatencyFaults {
    until: Mutex<HashMap<String, Instant>>,
}

fn pause_for(latency: Duration) -> Duration {
    let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    let i = LATENCY_MS.iter().rposition(|&l| ms >= l);
    Duration::from_millis(i.map_or(0, |i| PAUSE_MS[i]))
}

impl LatencyFaults {
    /// Records a send to `broker` that took `latency`, or failed.
    pub(crate) fn record(&self, broker: &str, latency: Duration, failed: bool) {
        let pause = pause_for(if failed { FAILURE_LATENCY } else { latency });
        let Ok(mut g) = self.until.lock() else { return };
        if pause.is_zero() {
            g.remove(broker);
        } else {
            g.insert(broker.to_owned(), Instant::now() + pause);
        }
    }

    /// Whether `broker` may be used now.
    pub(crate) fn available(&self, broker: &str) -> bool {
        let Ok(g) = self.until.lock() else {
            return true;
        };
        g.get(broker).is_none_or(|t| Instant::now() >= *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_and_failing_brokers_are_paused() {
        assert_eq!(pause_for(Duration::from_millis(10)), Duration::ZERO);
        assert_eq!(
            pause_for(Duration::from_millis(600)),
            Duration::from_secs(2)
        );
        assert_eq!(pause_for(Duration::from_secs(20)), Duration::from_secs(30));
        let f = LatencyFaults::default();
        f.record("a", Duration::from_millis(5), false);
        assert!(f.available("a"));
        f.record("a", Duration::ZERO, true);
        assert!(!f.available("a"));
        assert!(f.available("b"));
        f.record("a", Duration::from_millis(1), false);
        assert!(f.available("a"));
    }
}
