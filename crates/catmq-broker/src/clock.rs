//! The broker's clock for timers and transaction check-backs: wall-clock time plus an offset
//! that tests move forward (so a message due in a year can be delivered without waiting a year).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Wall-clock milliseconds plus an adjustable offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Milliseconds since the epoch, as the broker's timers see them.
    pub fn now_ms(&self) -> i64 {
        crate::state::now_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let c = Clock::default();
        let before = c.now_ms();
        c.advance(Duration::from_secs(365 * 86_400));
        assert!(c.now_ms() - before >= 365 * 86_400_000);
    }
}
