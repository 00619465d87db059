//! Sync flush with group commit, and the poisoned latch.

use std::sync::Arc;

use catmq_store::{FileStore, MessageStore, StoreError};

use crate::support::*;

#[test]
fn sync_mode_append_is_durable_once_the_waiter_returns() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(sync_cfg(dir.path())).unwrap();
    let r = s.append(&simple("T", 0, 0)).unwrap();
    let waiter = s.flush_waiter();
    waiter.wait_blocking(r.end).unwrap();
    assert!(waiter.flushed() >= r.end);
    assert!(s.stats().flushed >= r.end);
}

#[test]
fn async_waiter_resolves_in_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(sync_cfg(dir.path())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = s.append(&simple("T", 0, 0)).unwrap();
        s.flush_waiter().wait(r.end).await.unwrap();
    });
    assert!(s.stats().flushed >= s.stats().log_end);
}

#[test]
fn concurrent_sync_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = sync_cfg(dir.path());
    c.segment_size = 1 << 20;
    let s = FileStore::open(c).unwrap();
    let before = s.stats().log_fsyncs;
    let threads = 32;
    let per = 20;
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let s = s.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let w = s.flush_waiter();
                for i in 0..per {
                    let r = s.append(&simple("T", (t % 4) as i32, i)).unwrap();
                    w.wait_blocking(r.end).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let fsyncs = s.stats().log_fsyncs - before;
    let appends = (threads * per) as u64;
    assert!(
        fsyncs < appends,
        "{fsyncs} fsyncs for {appends} appends: no group commit"
    );
    let total: usize = (0..4).map(|q| read_all(&s, "T", q).len()).sum();
    assert_eq!(total, threads * per);
}

#[test]
fn concurrent_async_appenders_each_resolve_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = sync_cfg(dir.path());
    c.segment_size = 1 << 20;
    let s = FileStore::open(c).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tasks, per) = (48usize, 25usize);
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let s = s.clone();
                tokio::spawn(async move {
                    let w = s.flush_waiter();
                    for i in 0..per {
                        let r = s.append(&simple("T", (t % 4) as i32, i)).unwrap();
                        if i % 5 == 4 {
                            // Give up on some waits at once: the dropped waiter leaves the queue.
                            let _ = tokio::time::timeout(std::time::Duration::ZERO, w.wait(r.end))
                                .await;
                        }
                        w.wait(r.end).await.unwrap();
                        assert!(w.flushed() >= r.end);
                    }
                })
            })
            .collect();
        // A lost wake-up would hang a task: fail instead.
        let all = futures_join(handles);
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("a waiter was never woken");
    });
    let total: usize = (0..4).map(|q| read_all(&s, "T", q).len()).sum();
    assert_eq!(total, tasks * per);
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        h.await.unwrap();
    }
}

#[test]
fn a_failed_write_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    first_segment_is_dev_full(dir.path());
    let s = FileStore::open(cfg(dir.path())).unwrap();
    let first = s.append(&simple("T", 0, 0)).unwrap_err();
    assert!(matches!(first, StoreError::Io { .. }), "{first}");
    let second = s.append(&simple("T", 0, 1)).unwrap_err();
    assert!(matches!(second, StoreError::Poisoned { .. }), "{second}");
    assert!(second.to_string().contains("No space left"), "{second}");
    // Nothing was published.
    assert_eq!(s.queue_info("T", 0).map(|q| q.max_offset), Some(0));
    assert!(matches!(
        s.flush_waiter().wait_blocking(1),
        Err(StoreError::Poisoned { .. })
    ));
}
