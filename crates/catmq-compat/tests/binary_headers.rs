//! The compatibility scenario with the binary ROCKETMQ remoting headers (chosen by the client
//! from `ROCKETMQ_SERIALIZE_TYPE`, read once per process: this file is its own test binary).

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_rust_client_with_binary_headers() {
    // Set before any client code runs; this test binary has no other test.
    std::env::set_var("ROCKETMQ_SERIALIZE_TYPE", "ROCKETMQ");
    let (json, binary) = common::scenario("binary").await;
    assert!(binary > 1000, "{binary} binary requests, {json} JSON");
    // Only the test's own raw client (runtime info) speaks JSON.
    assert!(json <= 4, "{json} JSON requests");
}
