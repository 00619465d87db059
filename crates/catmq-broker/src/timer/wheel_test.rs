use super::*;

const T0: i64 = 1_800_000_000_000;

fn entry(due: i64, phys: u64, topic: u32) -> Entry {
    Entry {
        due,
        phys,
        topic,
        flags: 0,
    }
}

/// Advances the wheel second by second from `from` to `to`, delivering as it goes; returns
/// (delivered position, due, delivered at).
fn run(w: &mut Wheel, from: i64, to: i64, step: i64) -> Vec<(u64, i64, i64)> {
    let mut out = Vec::new();
    let mut now = from;
    while now <= to {
        w.advance(now).unwrap();
        let due = w.due(now, usize::MAX);
        out.extend(due.iter().map(|(d, p, _)| (*p, *d, now)));
        w.delivered(&due, now).unwrap();
        now += step;
    }
    out
}

#[test]
fn entries_are_delivered_in_due_order_and_buckets_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wheel::open(dir.path()).unwrap();
    let t = w.topic_id("T").unwrap();
    w.add(
        &[
            entry(T0 + 5_000, 2, t),
            entry(T0 + 1_000, 1, t),
            entry(T0 + 65_000, 3, t),
        ],
        3,
        T0,
    )
    .unwrap();
    assert_eq!(w.counts().get("T"), Some(&3));
    let got = run(&mut w, T0, T0 + 130_000, 500);
    let order: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(order, vec![1, 2, 3]);
    assert!(got.iter().all(|(_, due, at)| at - due < 500 && at >= due));
    assert!(w.counts().is_empty());
    let files = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "tw")
        })
        .count();
    assert_eq!(files, 0, "finished buckets are deleted");
}

#[test]
fn a_year_ahead_cascades_down_and_arrives_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wheel::open(dir.path()).unwrap();
    let t = w.topic_id("Y").unwrap();
    let due = T0 + 365 * DAY + 12_345;
    w.add(&[entry(due, 7, t)], 1, T0).unwrap();
    assert!(dir.path().join(Bucket::of(due, DAY).file_name()).exists());
    assert_eq!(w.whereabouts(due, 7, T0), Whereabouts::Pending);
    // A day before: day bucket → hour buckets; an hour before: hour → minutes.
    w.advance(due - DAY + HOUR).unwrap();
    assert!(dir.path().join(Bucket::of(due, HOUR).file_name()).exists());
    w.advance(due - 30 * MINUTE).unwrap();
    assert!(dir
        .path()
        .join(Bucket::of(due, MINUTE).file_name())
        .exists());
    assert!(w.due(due - 1, 10).is_empty());
    let got = run(&mut w, due - 3_000, due + 1_000, 100);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 7);
    assert!(got[0].2 >= due && got[0].2 - due < 100);
}

#[test]
fn cancel_works_at_any_distance_and_not_after_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wheel::open(dir.path()).unwrap();
    let t = w.topic_id("C").unwrap();
    let far = T0 + 40 * DAY;
    let near = T0 + 10_000;
    w.add(
        &[entry(far, 1, t), entry(near, 2, t), entry(near, 3, t)],
        3,
        T0,
    )
    .unwrap();
    assert_eq!(w.cancel(far, 1, t, T0).unwrap(), Cancel::Cancelled);
    assert_eq!(w.cancel(far, 1, t, T0).unwrap(), Cancel::AlreadyCancelled);
    w.advance(T0).unwrap();
    assert_eq!(w.cancel(near, 2, t, T0).unwrap(), Cancel::Cancelled);
    assert_eq!(w.counts().get("C"), Some(&1));
    let got = run(&mut w, T0, T0 + 12_000, 1_000);
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![3]);
    assert_eq!(w.cancel(near, 3, t, T0 + 12_000).unwrap(), Cancel::TooLate);
    // The far cancel survives a restart and the cascade.
    drop(w);
    let mut w = Wheel::open(dir.path()).unwrap();
    assert_eq!(w.whereabouts(far, 1, T0), Whereabouts::Cancelled);
    let got = run(&mut w, far - 2 * DAY, far + 1_000, 30 * MINUTE);
    assert!(
        got.is_empty(),
        "a cancelled entry is never delivered: {got:?}"
    );
}

#[test]
fn a_restart_keeps_pending_entries_and_forgets_delivered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wheel::open(dir.path()).unwrap();
    let t = w.topic_id("R").unwrap();
    let es: Vec<Entry> = (0..10)
        .map(|i| entry(T0 + 1_000 * i, i as u64, t))
        .collect();
    w.add(&es, 10, T0).unwrap();
    let first = run(&mut w, T0, T0 + 4_500, 500);
    assert_eq!(first.len(), 5);
    w.sync().unwrap();
    drop(w);
    let mut w = Wheel::open(dir.path()).unwrap();
    assert_eq!(w.ingested(), 10);
    assert_eq!(w.counts().get("R"), Some(&5));
    // Re-indexing the same entries after a crash does not deliver anything twice.
    w.add(&es[3..], 10, T0 + 4_600).unwrap();
    let rest = run(&mut w, T0 + 4_600, T0 + 20_000, 500);
    let mut ids: Vec<u64> = rest.iter().map(|g| g.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![5, 6, 7, 8, 9]);
}

#[test]
fn bucket_names_round_trip() {
    for b in [
        Bucket::of(T0, MINUTE),
        Bucket::of(T0, HOUR),
        Bucket::of(T0, DAY),
    ] {
        assert_eq!(Bucket::parse(&b.file_name()), Some(b));
    }
    assert_eq!(Bucket::parse("7-100.tw"), None);
    assert_eq!(Bucket::parse("topics"), None);
}
