//! The compatibility scenario with JSON remoting headers (the client's default).

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_with_json_headers() {
    let (json, binary) = common::scenario("json").await;
    assert!(json > 1000, "{json} JSON requests");
    assert_eq!(binary, 0);
}
