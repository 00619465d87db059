//! One multiplexed connection: a reader task, a writer (frames go out from the task that made
//! them; a flush task takes over when the socket is full), a table of pending requests.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use catmq_protocol::frame::{self, FrameError, Limits};
use catmq_protocol::{RemotingCommand, ResponseCode, FLAG_ONEWAY};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::writer::Writer;
use crate::RemotingError;

/// A response: the command and, for large bodies, the body as separate chunks (written after
/// the header without being copied together; `cmd.body` is then ignored).
#[derive(Debug)]
pub struct Reply {
    pub cmd: RemotingCommand,
    pub chunks: Vec<Bytes>,
}

impl From<RemotingCommand> for Reply {
    fn from(cmd: RemotingCommand) -> Self {
        Self {
            cmd,
            chunks: Vec::new(),
        }
    }
}

/// What a handler did with a request.
pub enum Handled {
    /// Answer now.
    Reply(Reply),
    /// Nothing to send (oneway requests).
    NoReply,
    /// Answer when this future completes; the connection reads on meanwhile.
    Later(Pin<Box<dyn Future<Output = Option<Reply>> + Send>>),
}

impl From<RemotingCommand> for Handled {
    fn from(cmd: RemotingCommand) -> Self {
        Self::Reply(cmd.into())
    }
}

/// Serves the requests a peer sends on a connection.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request. Called in arrival order on the connection's reader task: do not
    /// block; return [`Handled::Later`] to wait.
    fn handle(&self, conn: &Arc<Connection>, req: RemotingCommand) -> Handled;

    /// The connection closed.
    fn closed(&self, _conn: &Arc<Connection>) {}
}

/// Connection settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionOptions {
    /// Frame limits for what the peer sends.
    pub limits: Limits,
    /// Bytes queued for writing (while the socket is full) before senders wait.
    pub write_queue_bytes: usize,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            write_queue_bytes: 8 << 20,
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One connection, from either side.
pub struct Connection {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    writer: Arc<Writer>,
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    next_opaque: AtomicI32,
    closed: AtomicBool,
    close_tx: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` and serves the peer's requests with `handler`.
    pub async fn connect(
        addr: &str,
        handler: Arc<dyn Handler>,
        opts: ConnectionOptions,
    ) -> Result<Arc<Self>, RemotingError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| RemotingError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        Self::start(stream, handler, opts).map_err(|source| RemotingError::Connect {
            addr: addr.to_owned(),
            source,
        })
    }

    /// Starts the reader and writer tasks of an established stream.
    pub fn start(
        stream: TcpStream,
        handler: Arc<dyn Handler>,
        opts: ConnectionOptions,
    ) -> std::io::Result<Arc<Self>> {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let (rd, wr) = stream.into_split();
        let writer = Writer::new(wr, opts.write_queue_bytes);
        let (close_tx, close_rx) = tokio::sync::watch::channel(false);
        let conn = Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            local,
            writer: writer.clone(),
            pending: Mutex::new(HashMap::new()),
            next_opaque: AtomicI32::new(1),
            closed: AtomicBool::new(false),
            close_tx,
        });
        tokio::spawn(writer.run(close_rx.clone()));
        tokio::spawn(read_loop(conn.clone(), rd, handler, opts.limits, close_rx));
        Ok(conn)
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// This side's address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the connection (pending requests fail).
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.close_tx.send(true);
            if let Ok(mut p) = self.pending.lock() {
                p.clear();
            }
        }
    }

    fn closed_err(&self) -> RemotingError {
        RemotingError::Closed {
            peer: self.peer.to_string(),
        }
    }

    /// Sends a reply (or any prepared command) without waiting for an answer.
    pub async fn send_reply(&self, reply: Reply) -> Result<(), RemotingError> {
        let mut parts = Vec::with_capacity(2 + reply.chunks.len());
        encode_parts(reply, &mut parts)?;
        self.write(parts).await
    }

    /// Writes whole encoded frames.
    async fn write(&self, parts: Vec<Bytes>) -> Result<(), RemotingError> {
        if self.is_closed() {
            return Err(self.closed_err());
        }
        if self.writer.send(parts).await.is_err() {
            self.close();
            return Err(self.closed_err());
        }
        Ok(())
    }

    /// Sends a oneway request.
    pub async fn oneway(&self, mut cmd: RemotingCommand) -> Result<(), RemotingError> {
        cmd.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.flag |= FLAG_ONEWAY;
        self.send_reply(cmd.into()).await
    }

    /// Sends a request and waits for its response.
    pub async fn request(
        &self,
        mut cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        cmd.opaque = opaque;
        let code = cmd.code;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| self.closed_err())?
            .insert(opaque, tx);
        let sent = self.send_reply(cmd.into()).await;
        if let Err(e) = sent {
            self.forget(opaque);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(self.closed_err()),
            Err(_) => {
                self.forget(opaque);
                Err(RemotingError::Timeout {
                    peer: self.peer.to_string(),
                    timeout,
                    code,
                })
            }
        }
    }

    fn forget(&self, opaque: i32) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&opaque);
        }
    }

    fn complete(&self, resp: RemotingCommand) {
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&resp.opaque));
        match waiter {
            Some(w) => {
                let _ = w.send(resp);
            }
            None => {
                tracing::debug!(peer = %self.peer, opaque = resp.opaque, "response to no pending request")
            }
        }
    }
}

/// Appends a reply's frame (prefix and header, then the body parts) to `parts`.
fn encode_parts(reply: Reply, parts: &mut Vec<Bytes>) -> Result<(), RemotingError> {
    let body_len: usize = if reply.chunks.is_empty() {
        reply.cmd.body.len()
    } else {
        reply.chunks.iter().map(Bytes::len).sum()
    };
    let mut head = BytesMut::new();
    frame::encode_prefix(&reply.cmd, body_len, &mut head)?;
    parts.push(head.freeze());
    if reply.chunks.is_empty() {
        parts.push(reply.cmd.body);
    } else {
        parts.extend(reply.chunks);
    }
    Ok(())
}

async fn read_loop(
    conn: Arc<Connection>,
    mut rd: OwnedReadHalf,
    handler: Arc<dyn Handler>,
    limits: Limits,
    mut close: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // Replies to the frames of one read go out together, in one write.
    let mut replies: Vec<Bytes> = Vec::new();
    'outer: loop {
        loop {
            match frame::decode(&mut buf, &limits) {
                Ok(Some(cmd)) => dispatch(&conn, &handler, cmd, &mut replies),
                Ok(None) => break,
                Err(e) => {
                    flush_replies(&conn, &mut replies).await;
                    reject(&conn, e).await;
                    break 'outer;
                }
            }
            if replies.len() >= REPLY_BATCH_PARTS {
                flush_replies(&conn, &mut replies).await;
            }
        }
        flush_replies(&conn, &mut replies).await;
        let n = tokio::select! {
            r = rd.read_buf(&mut buf) => r,
            _ = close.wait_for(|c| *c) => break,
        };
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    conn.close();
    handler.closed(&conn);
}

/// Replies gathered from one read before they are written, at most (in byte parts).
const REPLY_BATCH_PARTS: usize = 128;

async fn flush_replies(conn: &Connection, replies: &mut Vec<Bytes>) {
    if !replies.is_empty() {
        let _ = conn.write(std::mem::take(replies)).await;
    }
}

/// Hands a request to the handler (its immediate reply is added to `replies`) or a response
/// to its waiter.
fn dispatch(
    conn: &Arc<Connection>,
    handler: &Arc<dyn Handler>,
    cmd: RemotingCommand,
    replies: &mut Vec<Bytes>,
) {
    if cmd.is_response() {
        conn.complete(cmd);
        return;
    }
    let oneway = cmd.is_oneway();
    match handler.handle(conn, cmd) {
        Handled::Reply(r) if !oneway => {
            if let Err(e) = encode_parts(r, replies) {
                tracing::warn!(peer = %conn.peer, error = %e, "reply could not be encoded");
            }
        }
        Handled::Reply(_) | Handled::NoReply => {}
        Handled::Later(fut) => {
            let conn = conn.clone();
            tokio::spawn(async move {
                if let Some(r) = fut.await {
                    if !oneway {
                        let _ = conn.send_reply(r).await;
                    }
                }
            });
        }
    }
}

/// Answers a frame that could not be decoded (when its opaque is known), then the connection
/// closes.
async fn reject(conn: &Arc<Connection>, e: FrameError) {
    tracing::warn!(peer = %conn.peer, error = %e, "bad frame; closing the connection");
    if let Some(to) = e.reply {
        let resp = RemotingCommand::response(to.opaque, to.serialize, ResponseCode::SystemError)
            .with_remark(format!("bad request frame: {}", e.error));
        // Written (or queued) before the close, so it goes out before the socket is shut.
        let _ = conn.send_reply(resp.into()).await;
    }
}
