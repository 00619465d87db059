//! The writing side of a connection. A frame is written at once by the task that produced it
//! when nothing is waiting to go out (no hand-off to another task, one syscall); when the
//! socket is full, what is left is queued and the connection's flush task writes it, in order,
//! as the socket drains. Senders wait while more than the queue limit is pending.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{watch, Notify};

/// How long a closing connection keeps trying to write what was queued before it closed.
const CLOSE_DRAIN: Duration = Duration::from_secs(5);
/// Byte slices handed to one vectored write, at most.
const MAX_SLICES: usize = 256;

struct Queue {
    /// `None` once the connection closed and its queue was written or abandoned.
    half: Option<Arc<OwnedWriteHalf>>,
    parts: VecDeque<Bytes>,
    bytes: usize,
    /// The flush task owns the queue: new frames go behind it, not straight to the socket.
    flushing: bool,
}

/// The write half of a connection and the frames queued for it.
pub(crate) struct Writer {
    q: Mutex<Queue>,
    /// Work for the flush task.
    kick: Notify,
    /// The queue shrank (or the connection closed).
    drained: Notify,
    /// Senders wait while more than this many bytes are queued.
    limit: usize,
}

/// The socket was closed or failed.
#[derive(Debug)]
pub(crate) struct WriteClosed;

impl Writer {
    /// A writer for `half`; `run` must be spawned as the connection's flush task.
    pub(crate) fn new(half: OwnedWriteHalf, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            q: Mutex::new(Queue {
                half: Some(Arc::new(half)),
                parts: VecDeque::new(),
                bytes: 0,
                flushing: false,
            }),
            kick: Notify::new(),
            drained: Notify::new(),
            limit: limit.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `parts` (one or more whole frames) now if the socket takes them, else queues
    /// what is left; waits while the queue is over its limit.
    pub(crate) async fn send(&self, parts: Vec<Bytes>) -> Result<(), WriteClosed> {
        if self.submit(parts)? {
            self.wait_below_limit().await;
        }
        Ok(())
    }

    /// Returns whether the queue is now over its limit.
    fn submit(&self, parts: Vec<Bytes>) -> Result<bool, WriteClosed> {
        let mut q = self.lock();
        let Some(half) = q.half.clone() else {
            return Err(WriteClosed);
        };
        let mut parts: VecDeque<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        if !q.flushing {
            write_available(&half, &mut parts).map_err(|_| WriteClosed)?;
            if parts.is_empty() {
                return Ok(false);
            }
            q.flushing = true;
            self.kick.notify_one();
        }
        q.bytes += parts.iter().map(Bytes::len).sum::<usize>();
        q.parts.extend(parts);
        Ok(q.bytes > self.limit)
    }

    async fn wait_below_limit(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let q = self.lock();
                if q.bytes <= self.limit || q.half.is_none() {
                    return;
                }
            }
            drained.await;
        }
    }

    /// The flush task: writes queued frames as the socket drains; once the connection closes,
    /// writes what is still queued (for a while) and shuts the socket's write side.
    pub(crate) async fn run(self: Arc<Self>, mut close: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                biased;
                _ = close.wait_for(|c| *c) => break,
                _ = self.kick.notified() => {}
            }
            let failed = tokio::select! {
                r = self.drain() => r.is_err(),
                _ = close.wait_for(|c| *c) => false,
            };
            if failed {
                break;
            }
        }
        let _ = tokio::time::timeout(CLOSE_DRAIN, self.drain()).await;
        let half = {
            let mut q = self.lock();
            q.parts.clear();
            q.bytes = 0;
            q.half.take()
        };
        // Dropping the last handle of the write half shuts down the socket's write side.
        drop(half);
        self.drained.notify_waiters();
    }

    /// Writes the queue out; returns when it is empty.
    async fn drain(&self) -> std::io::Result<()> {
        loop {
            let half = {
                let mut q = self.lock();
                if q.parts.is_empty() {
                    q.flushing = false;
                    drop(q);
                    self.drained.notify_waiters();
                    return Ok(());
                }
                match q.half.clone() {
                    Some(h) => h,
                    None => return Err(ErrorKind::NotConnected.into()),
                }
            };
            half.writable().await?;
            let mut q = self.lock();
            let written = write_available(&half, &mut q.parts)?;
            q.bytes = q.bytes.saturating_sub(written);
            let below = q.bytes <= self.limit;
            drop(q);
            if below {
                self.drained.notify_waiters();
            }
        }
    }
}

/// Writes from the front of `parts` until they are all written or the socket is full; returns
/// the bytes written.
fn write_available(half: &OwnedWriteHalf, parts: &mut VecDeque<Bytes>) -> std::io::Result<usize> {
    let mut written = 0;
    while !parts.is_empty() {
        let slices: Vec<IoSlice<'_>> = parts
            .iter()
            .take(MAX_SLICES)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = match half.try_write_vectored(&slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(written),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        written += n;
        while n > 0 {
            let Some(front) = parts.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                parts.pop_front();
            } else {
                let _ = front.split_to(n);
                n = 0;
            }
        }
    }
    Ok(written)
}
