use super::*;
use proptest::prelude::*;

fn sample(topic: &str, body: &[u8]) -> NewMessage {
    NewMessage {
        topic: topic.to_owned(),
        queue_id: 3,
        flag: 7,
        body: Bytes::copy_from_slice(body),
        properties: crate::properties::encode([("TAGS", "TagA"), ("KEYS", "k1")]),
        sys_flag: 0,
        born_timestamp: 1_700_000_000_123,
        born_host: "192.168.1.2:5555".parse().unwrap(),
        reconsume_times: 2,
        prepared_transaction_offset: 0,
    }
}

fn stamp() -> StoreStamp {
    StoreStamp {
        queue_offset: 41,
        physical_offset: 4096,
        store_timestamp: 1_700_000_000_456,
        store_host: "10.0.0.1:10911".parse().unwrap(),
    }
}

#[test]
fn encode_then_parse_returns_every_field() {
    let msg = sample("TopicTest", b"hello");
    let mut buf = Vec::new();
    let n = msg.encode(&stamp(), &mut buf).unwrap();
    assert_eq!(n, buf.len());
    assert_eq!(n, msg.encoded_len(&stamp().store_host));
    let v = RecordView::parse(&buf).unwrap();
    assert_eq!(v.total_size(), n);
    assert!(v.crc_ok());
    assert_eq!(v.queue_id(), 3);
    assert_eq!(v.flag(), 7);
    assert_eq!(v.queue_offset(), 41);
    assert_eq!(v.physical_offset(), 4096);
    assert_eq!(v.sys_flag(), 0);
    assert_eq!(v.born_timestamp(), 1_700_000_000_123);
    assert_eq!(v.born_host(), msg.born_host);
    assert_eq!(v.store_timestamp(), 1_700_000_000_456);
    assert_eq!(v.store_host(), stamp().store_host);
    assert_eq!(v.reconsume_times(), 2);
    assert_eq!(v.prepared_transaction_offset(), 0);
    assert_eq!(v.body(), b"hello");
    assert_eq!(v.topic(), Some("TopicTest"));
    assert_eq!(v.properties(), Some(msg.properties.as_str()));
    assert_eq!(v.to_new_message(), msg);
}

#[test]
fn byte_layout_is_pinned() {
    let mut msg = sample("T", b"ab");
    msg.properties = String::new();
    let mut buf = Vec::new();
    msg.encode(&stamp(), &mut buf).unwrap();
    let crc = body_crc(b"ab");
    let mut expect = Vec::new();
    expect.extend_from_slice(&94i32.to_be_bytes()); // 84 + 4 + 2 + 1 + 1 + 2 + 0
    expect.extend_from_slice(&0xDAA3_20A7u32.to_be_bytes());
    expect.extend_from_slice(&crc.to_be_bytes());
    expect.extend_from_slice(&3i32.to_be_bytes());
    expect.extend_from_slice(&7i32.to_be_bytes());
    expect.extend_from_slice(&41i64.to_be_bytes());
    expect.extend_from_slice(&4096i64.to_be_bytes());
    expect.extend_from_slice(&0i32.to_be_bytes());
    expect.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
    expect.extend_from_slice(&[192, 168, 1, 2, 0, 0, 0x15, 0xB3]);
    expect.extend_from_slice(&1_700_000_000_456i64.to_be_bytes());
    expect.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0x2A, 0x9F]);
    expect.extend_from_slice(&2i32.to_be_bytes());
    expect.extend_from_slice(&0i64.to_be_bytes());
    expect.extend_from_slice(&2i32.to_be_bytes());
    expect.extend_from_slice(b"ab");
    expect.extend_from_slice(&[1, b'T', 0, 0]);
    assert_eq!(buf, expect);
    // Java's CRC32 of "ab" is 0x9E83486D; RocketMQ clears the sign bit.
    assert_eq!(crc, 0x1E83_486D);
}

#[test]
fn restamp_gives_the_bytes_encoding_with_the_final_stamp_gives() {
    for born in ["192.168.1.2:5555", "[::1]:5555"] {
        let mut msg = sample("TopicTest", b"hello");
        msg.born_host = born.parse().unwrap();
        let mut want = Vec::new();
        msg.encode(&stamp(), &mut want).unwrap();
        let placeholder = StoreStamp {
            queue_offset: 0,
            physical_offset: 0,
            store_timestamp: 0,
            ..stamp()
        };
        let mut got = Vec::new();
        msg.encode(&placeholder, &mut got).unwrap();
        assert_ne!(got, want);
        let s = stamp();
        let pos = msg.store_timestamp_pos();
        restamp(
            &mut got,
            s.queue_offset,
            s.physical_offset,
            pos,
            s.store_timestamp,
        )
        .unwrap();
        assert_eq!(got, want, "born host {born}");
    }
    assert!(restamp(&mut [0u8; 40], 1, 2, 56, 3).is_err());
}

#[test]
fn long_topics_use_the_v2_magic() {
    let topic = "t".repeat(300);
    let mut buf = Vec::new();
    sample(&topic, b"x").encode(&stamp(), &mut buf).unwrap();
    assert_eq!(peek_header(&buf).unwrap().1, MAGIC_V2);
    assert_eq!(
        RecordView::parse(&buf).unwrap().topic(),
        Some(topic.as_str())
    );
}

#[test]
fn ipv6_hosts_set_their_flags() {
    let mut msg = sample("T6", b"x");
    msg.born_host = "[2001:db8::1]:1234".parse().unwrap();
    let mut st = stamp();
    st.store_host = "[::1]:10911".parse().unwrap();
    let mut buf = Vec::new();
    msg.encode(&st, &mut buf).unwrap();
    let v = RecordView::parse(&buf).unwrap();
    assert_eq!(
        v.sys_flag(),
        sys_flag::BORN_HOST_V6 | sys_flag::STORE_HOST_V6
    );
    assert_eq!(v.born_host(), msg.born_host);
    assert_eq!(v.store_host(), st.store_host);
    assert_eq!(v.store_timestamp(), st.store_timestamp);
    assert_eq!(v.body(), b"x");
}

#[test]
fn every_truncation_is_an_error() {
    let mut buf = Vec::new();
    sample("TopicTest", b"hello world")
        .encode(&stamp(), &mut buf)
        .unwrap();
    for cut in 0..buf.len() {
        assert!(RecordView::parse(&buf[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn flipped_body_byte_fails_the_crc() {
    let mut buf = Vec::new();
    sample("TopicTest", b"hello")
        .encode(&stamp(), &mut buf)
        .unwrap();
    let n = buf.len();
    let body_pos = n - 2 - sample("", b"").properties.len() - 1 - "TopicTest".len() - 5;
    buf[body_pos] ^= 0x20;
    let v = RecordView::parse(&buf).unwrap();
    assert!(!v.crc_ok());
}

#[test]
fn oversized_fields_are_rejected() {
    let mut msg = sample("T", b"x");
    msg.properties = "p".repeat(MAX_PROPERTIES + 1);
    assert!(matches!(
        msg.encode(&stamp(), &mut Vec::new()),
        Err(RecordError::PropertiesTooLong { .. })
    ));
    msg.properties.clear();
    msg.topic = "t".repeat(MAX_TOPIC + 1);
    assert!(matches!(
        msg.validate(),
        Err(RecordError::TopicTooLong { .. })
    ));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(v) = RecordView::parse(&bytes) {
            // Every accessor stays in bounds on whatever parsed.
            let _ = (v.body(), v.topic(), v.properties(), v.store_host(), v.born_host(), v.crc_ok());
            prop_assert!(v.total_size() <= bytes.len());
        }
    }

    #[test]
    fn round_trip_any_message(
        topic in "[a-zA-Z0-9%_-]{1,200}",
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        props in "[a-zA-Z0-9 ]{0,64}",
        qid in 0i32..1024,
        qoff in 0i64..i64::MAX,
        v6 in any::<bool>(),
    ) {
        let mut msg = sample(&topic, &body);
        msg.properties = props;
        msg.queue_id = qid;
        if v6 { msg.born_host = "[fe80::1]:1".parse().unwrap(); }
        let st = StoreStamp { queue_offset: qoff, ..stamp() };
        let mut buf = vec![0xEE; 3]; // records are appended after whatever is there
        msg.encode(&st, &mut buf).unwrap();
        let v = RecordView::parse(&buf[3..]).unwrap();
        prop_assert!(v.crc_ok());
        prop_assert_eq!(v.queue_offset(), qoff);
        let mut expect = msg;
        if v6 { expect.sys_flag |= sys_flag::BORN_HOST_V6; }
        prop_assert_eq!(v.to_new_message(), expect);
    }
}
