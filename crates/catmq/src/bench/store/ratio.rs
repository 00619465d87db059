//! `--mode sync-ratio`: how much group commit gains, measured on one store in alternating
//! rounds of one appender and of `--appenders`, so that both sides of each round's ratio see the
//! same disk and the same host (on a shared machine the rate of either can move by half from
//! one minute to the next).

use std::path::Path;

use anyhow::{bail, Result};

use super::append::run_appends;
use super::{open_store, store_config, warm_up, Summary, Workload};
use crate::cli::{FlushArg, StoreBenchArgs};

/// The rates of one round.
#[derive(Debug, Clone, Copy)]
struct Round {
    one: f64,
    many: f64,
}

impl Round {
    fn ratio(self) -> f64 {
        self.many / self.one.max(1e-9)
    }
}

/// Runs the warm-up (with `--appenders`), then `--rounds` rounds of one appender (an OS thread)
/// for `--round-secs`, then `--appenders` (tasks with `--tasks`) for as long.
pub fn sync_ratio_mode(args: &StoreBenchArgs, dir: &Path, summary: &mut Summary) -> Result<()> {
    if args.flush != FlushArg::Sync {
        bail!("--mode sync-ratio measures sync appends: add --flush sync");
    }
    if !(args.round_secs.is_finite() && args.round_secs > 0.0) {
        bail!("--round-secs {} is not a positive number", args.round_secs);
    }
    let store = open_store(store_config(args, dir, args.flush))?;
    warm_up(&store, &Workload::new(args)?, args)?;
    let mut phase_args = args.clone();
    (phase_args.count, phase_args.print_acks) = (None, false);
    phase_args.duration = Some(args.round_secs);
    let mut one_args = phase_args.clone();
    (one_args.appenders, one_args.tasks) = (1, false);
    let mut rounds = Vec::new();
    for i in 1..=args.rounds {
        let one = run_appends(&store, &Workload::new(args)?, &one_args, true)?.phase;
        let many = run_appends(&store, &Workload::new(args)?, &phase_args, true)?.phase;
        let r = Round {
            one: one.msgs_per_sec,
            many: many.msgs_per_sec,
        };
        eprintln!(
            "round {i}: 1 appender {:.0} msgs/s, {} appenders {:.0} msgs/s, ratio {:.1}",
            r.one,
            args.appenders,
            r.many,
            r.ratio()
        );
        summary
            .phases
            .extend([named(one, "one appender"), named(many, "appenders")]);
        rounds.push(r);
    }
    catmq_store::MessageStore::close(&store)?;
    if let Some(note) = verdict(&rounds, args.appenders) {
        summary.notes.push(note);
    }
    Ok(())
}

fn named(mut p: super::Phase, what: &str) -> super::Phase {
    p.name = format!("append, {what}");
    p
}

/// The medians of the rounds, as a note for the summary.
fn verdict(rounds: &[Round], appenders: u32) -> Option<String> {
    let ratios: Vec<f64> = rounds.iter().map(|r| r.ratio()).collect();
    let med = median(&ratios)?;
    let one = median(&rounds.iter().map(|r| r.one).collect::<Vec<_>>())?;
    let many = median(&rounds.iter().map(|r| r.many).collect::<Vec<_>>())?;
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    Some(format!(
        "sync ratio over {} rounds: median {med:.1}x (min {lo:.1}x, max {hi:.1}x); \
         median rates: 1 appender {one:.0} msgs/s, {appenders} appenders {many:.0} msgs/s",
        rounds.len()
    ))
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_the_verdict() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let rounds = [
            Round {
                one: 100.0,
                many: 3000.0,
            },
            Round {
                one: 200.0,
                many: 5000.0,
            },
            Round {
                one: 50.0,
                many: 2000.0,
            },
        ];
        let v = verdict(&rounds, 64).unwrap();
        assert!(v.contains("median 30.0x (min 25.0x, max 40.0x)"), "{v}");
        assert!(
            v.contains("1 appender 100 msgs/s, 64 appenders 3000 msgs/s"),
            "{v}"
        );
    }
}
