//! The accept loop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::connection::{Connection, ConnectionOptions, Handler};

/// A running server: its address and a way to stop accepting.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection; waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves `listener` (bound by the caller) with `handler` on the current runtime.
pub fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    opts: ConnectionOptions,
) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut conns: Vec<std::sync::Weak<Connection>> = Vec::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.wait_for(|s| *s) => break,
            };
            match accepted {
                Ok((stream, _)) => match Connection::start(stream, handler.clone(), opts) {
                    Ok(c) => {
                        conns.retain(|w| w.strong_count() > 0);
                        conns.push(Arc::downgrade(&c));
                    }
                    Err(e) => tracing::debug!(error = %e, "connection setup failed"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        for c in conns.iter().filter_map(std::sync::Weak::upgrade) {
            c.close();
        }
    });
    Ok(Server { addr, stop, task })
}
