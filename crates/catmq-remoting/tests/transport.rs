//! Transport tests over real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use catmq_protocol::frame::{self, Limits};
use catmq_protocol::{ExtFields, RemotingCommand, ResponseCode, SerializeType};
use catmq_remoting::{serve, Connection, ConnectionOptions, Handled, Handler, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(5);

/// Echoes code 1 (body back), answers code 2 once a code 5 request has arrived, counts oneways
/// (code 3), asks the peer back on code 4.
#[derive(Default)]
struct Echo {
    oneways: AtomicUsize,
    release: Arc<tokio::sync::Notify>,
}

impl Handler for Echo {
    fn handle(&self, conn: &Arc<Connection>, req: RemotingCommand) -> Handled {
        match req.code {
            1 => RemotingCommand::response_to(&req, ResponseCode::Success)
                .with_body(req.body.clone())
                .into(),
            2 => {
                let release = self.release.clone();
                Handled::Later(Box::pin(async move {
                    release.notified().await;
                    Some(Reply {
                        cmd: RemotingCommand::response_to(&req, ResponseCode::Success),
                        chunks: vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")],
                    })
                }))
            }
            5 => {
                self.release.notify_one();
                RemotingCommand::response_to(&req, ResponseCode::Success).into()
            }
            3 => {
                self.oneways.fetch_add(1, Ordering::SeqCst);
                Handled::NoReply
            }
            4 => {
                let conn = conn.clone();
                Handled::Later(Box::pin(async move {
                    let back =
                        RemotingCommand::request(1, ExtFields::new(), Bytes::from_static(b"ping"));
                    let r = conn.request(back, T).await.ok()?;
                    Some(
                        RemotingCommand::response_to(&req, ResponseCode::Success)
                            .with_body(r.body)
                            .into(),
                    )
                }))
            }
            _ => RemotingCommand::error_to(&req, ResponseCode::RequestCodeNotSupported, "unknown")
                .into(),
        }
    }
}

async fn start() -> (catmq_remoting::Server, Arc<Echo>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = Arc::new(Echo::default());
    let server = serve(listener, echo.clone(), ConnectionOptions::default()).unwrap();
    (server, echo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_oneways_later_replies_and_requests_from_the_server() {
    let (server, echo) = start().await;
    let addr = server.addr().to_string();
    let client = Connection::connect(
        &addr,
        Arc::new(Echo::default()),
        ConnectionOptions::default(),
    )
    .await
    .unwrap();
    for ser in [SerializeType::Json, SerializeType::RocketMq] {
        let mut req = RemotingCommand::request(1, ExtFields::new(), Bytes::from_static(b"hello"));
        req.serialize = ser;
        let resp = client.request(req, T).await.unwrap();
        assert_eq!((resp.code, resp.serialize), (0, ser));
        assert_eq!(resp.body.as_ref(), b"hello");
    }
    // Pipelined: the deferred reply (code 2) only completes after a later request (code 5) was
    // read and handled, so a waiting handler does not stall the connection.
    let later = client.request(
        RemotingCommand::request(2, ExtFields::new(), Bytes::new()),
        T,
    );
    let release = client.request(
        RemotingCommand::request(5, ExtFields::new(), Bytes::new()),
        T,
    );
    let (later, release) = tokio::join!(later, release);
    assert_eq!(release.unwrap().code, 0);
    assert_eq!(later.unwrap().body.as_ref(), b"abcd");
    // Oneways are not answered; an echo after them proves they were read.
    for _ in 0..3 {
        client
            .oneway(RemotingCommand::request(3, ExtFields::new(), Bytes::new()))
            .await
            .unwrap();
    }
    client
        .request(
            RemotingCommand::request(1, ExtFields::new(), Bytes::new()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(echo.oneways.load(Ordering::SeqCst), 3);
    // The server asks the client over the client's connection.
    let r = client
        .request(
            RemotingCommand::request(4, ExtFields::new(), Bytes::new()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.body.as_ref(), b"ping");
    let r = client
        .request(
            RemotingCommand::request(99, ExtFields::new(), Bytes::new()),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, ResponseCode::RequestCodeNotSupported.as_i32());
    server.shutdown().await;
}

async fn read_frame(s: &mut TcpStream) -> Option<RemotingCommand> {
    let mut buf = bytes::BytesMut::new();
    loop {
        if let Some(c) = frame::decode(&mut buf, &Limits::default()).unwrap() {
            return Some(c);
        }
        let n = tokio::time::timeout(T, s.read_buf(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_an_error_and_a_close_and_others_are_still_served() {
    let (server, _) = start().await;
    let addr = server.addr();
    // Bad JSON with a visible opaque: error response, then close.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let h = br#"{"code":1,"opaque":9,"extFields":[}"#;
    let mut v = ((4 + h.len()) as i32).to_be_bytes().to_vec();
    v.extend_from_slice(&(h.len() as u32).to_be_bytes());
    v.extend_from_slice(h);
    s.write_all(&v).await.unwrap();
    let resp = read_frame(&mut s).await.expect("an error response");
    assert_eq!(
        (resp.opaque, resp.code),
        (9, ResponseCode::SystemError.as_i32())
    );
    assert!(read_frame(&mut s).await.is_none(), "closed after the error");
    // Garbage and an oversized length: closed without a reply.
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0][..],
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(junk).await.unwrap();
        assert!(read_frame(&mut s).await.is_none());
    }
    // A truncated frame followed by a close does not disturb the server.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 0, 0, 50, 0, 0]).await.unwrap();
    drop(s);
    let client = Connection::connect(
        &addr.to_string(),
        Arc::new(Echo::default()),
        ConnectionOptions::default(),
    )
    .await
    .unwrap();
    let r = client
        .request(
            RemotingCommand::request(1, ExtFields::new(), Bytes::from_static(b"ok")),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.body.as_ref(), b"ok");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_fast_when_the_peer_goes_away() {
    let (server, _) = start().await;
    let client = Connection::connect(
        &server.addr().to_string(),
        Arc::new(Echo::default()),
        ConnectionOptions::default(),
    )
    .await
    .unwrap();
    server.shutdown().await;
    let r = client
        .request(
            RemotingCommand::request(2, ExtFields::new(), Bytes::new()),
            T,
        )
        .await;
    assert!(r.is_err());
    assert!(r.unwrap_err().is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_larger_than_the_socket_buffers_arrive_whole_and_in_order() {
    let (server, _) = start().await;
    let addr = server.addr().to_string();
    // A small queue limit: senders wait for the socket to drain instead of queueing it all.
    let opts = ConnectionOptions {
        write_queue_bytes: 64 * 1024,
        ..ConnectionOptions::default()
    };
    let client = Connection::connect(&addr, Arc::new(Echo::default()), opts)
        .await
        .unwrap();
    let body = |i: usize| -> Bytes {
        (0..(1 << 20) + i * 4099)
            .map(|j| (j * 31 + i) as u8)
            .collect::<Vec<u8>>()
            .into()
    };
    let calls = (0..24).map(|i| {
        let client = client.clone();
        let b = body(i);
        tokio::spawn(async move {
            let r = client
                .request(RemotingCommand::request(1, ExtFields::new(), b.clone()), T)
                .await
                .unwrap();
            assert_eq!(r.body.len(), b.len(), "request {i}");
            assert!(r.body == b, "request {i}: body differs");
        })
    });
    for c in calls.collect::<Vec<_>>() {
        c.await.unwrap();
    }
    // The connection is still in step: a small request after the large ones.
    let r = client
        .request(
            RemotingCommand::request(1, ExtFields::new(), Bytes::from_static(b"end")),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.body.as_ref(), b"end");
    server.shutdown().await;
}
