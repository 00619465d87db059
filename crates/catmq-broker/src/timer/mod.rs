//! Scheduled delivery: delay levels and delivery at any time (`TIMER_DELIVER_MS`,
//! `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`), up to `timer.max_delay` ahead.
//!
//! A scheduled message is stored at once in [`TIMER_TOPIC`] (queue 0) with its real topic and
//! queue in `REAL_TOPIC` / `REAL_QID` and its due time (broker clock) in `TIMER_OUT_MS`. The
//! timer task indexes each new record of that queue into the [`wheel`], and delivers every
//! due entry by appending the message to its real topic. Delay levels are due times like any
//! other (`now + level's delay`), so retries and `DELAY` sends go the same way.
//!
//! Delivery is at least once: an entry delivered in the instant before a crash may be
//! delivered again after it, never lost.

mod recall;
mod task;
pub mod wheel;

use std::sync::Mutex;

use catmq_common::{properties as props, NewMessage, RecordView};
use hdrhistogram::Histogram;

use crate::state::State;
use crate::topics::{park, unpark, DLQ_PREFIX, TIMER_TOPIC};

pub(crate) use recall::{recall, recall_handle, whereabouts, RecallError};
pub(crate) use task::{ingest, run};
pub use wheel::Wheel;

/// Absolute delivery time (ms since the epoch).
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// Delivery delay in seconds from the broker's receipt.
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
/// Delivery delay in milliseconds from the broker's receipt.
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// The due time the broker decided (set on the scheduled record, kept on delivery).
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";

/// Why a schedule was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn number(key: &str, v: Option<&str>) -> Result<Option<i64>, Refused> {
    v.map(|v| {
        v.trim().parse::<i64>().map_err(|_| {
            Refused(format!(
                "timer message illegal: {key}={v:?} is not a number"
            ))
        })
    })
    .transpose()
}

/// The due time a message asks for (broker clock), if it asks for one: a delay level first,
/// then `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`, `TIMER_DELIVER_MS`. One pass over the properties
/// (this runs for every send).
pub(crate) fn requested_due(st: &State, p: &str, now: i64) -> Result<Option<i64>, Refused> {
    let (mut level, mut sec, mut ms, mut at) = (None, None, None, None);
    for (k, v) in props::iter(p) {
        match k {
            props::DELAY => level = Some(v),
            TIMER_DELAY_SEC => sec = Some(v),
            TIMER_DELAY_MS => ms = Some(v),
            TIMER_DELIVER_MS => at = Some(v),
            _ => {}
        }
    }
    let level = level
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|l| *l > 0);
    if let Some(level) = level {
        let levels = &st.cfg.delay_levels;
        let i = level.min(levels.len()).saturating_sub(1);
        let delay = levels
            .get(i)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        return Ok(Some(now.saturating_add(delay)));
    }
    if let Some(s) = number(TIMER_DELAY_SEC, sec)? {
        return Ok(Some(now.saturating_add(s.saturating_mul(1000))));
    }
    if let Some(ms) = number(TIMER_DELAY_MS, ms)? {
        return Ok(Some(now.saturating_add(ms)));
    }
    number(TIMER_DELIVER_MS, at)
}

/// Rewrites `msg` to wait in the timer when it asks for a later delivery. A due time already
/// reached leaves it as it is (delivered now); one beyond `max_delay` is refused.
pub(crate) fn defer_if_scheduled(st: &State, msg: &mut NewMessage) -> Result<(), Refused> {
    if msg.topic.starts_with(DLQ_PREFIX) || msg.topic == TIMER_TOPIC {
        return Ok(());
    }
    let now = st.clock.now_ms();
    let Some(due) = requested_due(st, &msg.properties, now)? else {
        return Ok(());
    };
    if due <= now {
        return Ok(());
    }
    let max = i64::try_from(st.cfg.timer.max_delay.as_millis()).unwrap_or(i64::MAX);
    if due - now > max {
        return Err(Refused(format!(
            "timer message illegal, the delay time should not be bigger than the max delay {max}ms"
        )));
    }
    park(msg, TIMER_TOPIC, &[(TIMER_OUT_MS, &due.to_string())]);
    Ok(())
}

/// The message to deliver for a scheduled record.
pub(crate) fn released(view: &RecordView<'_>) -> Option<NewMessage> {
    let mut m = view.to_new_message();
    unpark(&mut m)?;
    m.properties = props::update(
        &m.properties,
        &[],
        &[
            props::DELAY,
            TIMER_DELAY_SEC,
            TIMER_DELAY_MS,
            TIMER_DELIVER_MS,
        ],
    );
    Some(m)
}

/// The due time of a scheduled record.
pub(crate) fn due_of(view: &RecordView<'_>) -> Option<i64> {
    props::get(view.properties()?, TIMER_OUT_MS)?.parse().ok()
}

/// Delivery lateness (delivered at − due, ms) since start.
pub(crate) struct Lateness {
    hist: Mutex<Option<Histogram<u64>>>,
}

impl Default for Lateness {
    fn default() -> Self {
        Self {
            hist: Mutex::new(Histogram::new_with_bounds(1, LATENESS_MAX, 3).ok()),
        }
    }
}

/// Lateness above this is recorded as this (one hour).
const LATENESS_MAX: u64 = 3_600_000;

/// A summary of delivery lateness.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LatenessSummary {
    pub delivered: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Lateness {
    pub(crate) fn record(&self, late_ms: i64) {
        let v = u64::try_from(late_ms).unwrap_or(0).min(LATENESS_MAX);
        if let Ok(mut h) = self.hist.lock() {
            if let Some(h) = h.as_mut() {
                let _ = h.record(v);
            }
        }
    }

    pub(crate) fn summary(&self) -> LatenessSummary {
        let Ok(h) = self.hist.lock() else {
            return LatenessSummary::default();
        };
        h.as_ref()
            .map_or_else(LatenessSummary::default, |h| LatenessSummary {
                delivered: h.len(),
                p50: h.value_at_quantile(0.5),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
            })
    }
}
