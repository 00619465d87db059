//! Frame codec tests: round trips in both encodings, exact bytes, truncation, lenient JSON,
//! limits, and arbitrary input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::frame::{self, Limits};
use crate::{ExtFields, LanguageCode, ProtocolError, RemotingCommand, ResponseCode, SerializeType};

fn sample(serialize: SerializeType) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(
        310,
        [
            ("a", "PG"),
            ("b", "TopicTest"),
            ("e", "3"),
            ("i", "TAGS\u{1}A\u{2}"),
        ]
        .into_iter()
        .collect(),
        Bytes::from_static(b"hello"),
    );
    cmd.opaque = 42;
    cmd.remark = Some("r\"emark".into());
    cmd.serialize = serialize;
    cmd
}

fn decode_all(bytes: &[u8]) -> Result<Option<RemotingCommand>, frame::FrameError> {
    let mut buf = BytesMut::from(bytes);
    frame::decode(&mut buf, &Limits::default())
}

#[test]
fn both_encodings_round_trip() {
    for ser in [SerializeType::Json, SerializeType::RocketMq] {
        let cmd = sample(ser);
        let bytes = frame::to_bytes(&cmd).unwrap();
        let back = decode_all(&bytes).unwrap().unwrap();
        assert_eq!(back, cmd, "{ser:?}");
        assert_eq!(back.body.as_ref(), b"hello");
    }
}

#[test]
fn binary_header_exact_bytes() {
    let mut cmd = RemotingCommand::request(
        11,
        [("k", "v")].into_iter().collect(),
        Bytes::from_static(b"B"),
    );
    cmd.opaque = 7;
    cmd.version = 475;
    cmd.serialize = SerializeType::RocketMq;
    let bytes = frame::to_bytes(&cmd).unwrap();
    let header: Vec<u8> = [
        &[0, 11][..],  // code
        &[12],         // language RUST
        &[1, 219],     // version 475
        &[0, 0, 0, 7], // opaque
        &[0, 0, 0, 0], // flag
        &[0, 0, 0, 0], // no remark
        &[0, 0, 0, 8], // extFields length
        &[0, 1, b'k'], // key
        &[0, 0, 0, 1, b'v'],
    ]
    .concat();
    let mut want = vec![
        0,
        0,
        0,
        (4 + header.len() + 1) as u8,
        1,
        0,
        0,
        header.len() as u8,
    ];
    want.extend_from_slice(&header);
    want.push(b'B');
    assert_eq!(bytes.as_ref(), want.as_slice());
}

#[test]
fn json_header_exact_bytes() {
    let mut cmd = RemotingCommand::response_to(&sample(SerializeType::Json), ResponseCode::Success);
    cmd.ext.insert("queueId", "1");
    cmd.ext.insert("msgId", "AB");
    let header = frame::encode_header(&cmd).unwrap();
    assert_eq!(
        std::str::from_utf8(&header).unwrap(),
        r#"{"code":0,"extFields":{"msgId":"AB","queueId":"1"},"flag":1,"language":"JAVA","opaque":42,"serializeTypeCurrentRPC":"JSON","version":475}"#
    );
}

#[test]
fn every_truncation_asks_for_more() {
    for ser in [SerializeType::Json, SerializeType::RocketMq] {
        let bytes = frame::to_bytes(&sample(ser)).unwrap();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(
                frame::decode(&mut buf, &Limits::default())
                    .unwrap()
                    .is_none(),
                "{ser:?} cut at {cut}"
            );
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
    }
}

#[test]
fn two_frames_in_one_buffer_decode_in_order() {
    let mut buf = BytesMut::new();
    let a = sample(SerializeType::Json);
    let mut b = sample(SerializeType::RocketMq);
    b.opaque = 43;
    frame::encode(&a, &mut buf).unwrap();
    frame::encode(&b, &mut buf).unwrap();
    let l = Limits::default();
    assert_eq!(frame::decode(&mut buf, &l).unwrap().unwrap().opaque, 42);
    assert_eq!(frame::decode(&mut buf, &l).unwrap().unwrap().opaque, 43);
    assert!(buf.is_empty());
}

fn json_frame(header: &str, body: &[u8]) -> Vec<u8> {
    let mut v = ((4 + header.len() + body.len()) as i32)
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(&(header.len() as u32).to_be_bytes());
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn json_decoding_is_lenient_like_real_clients_need() {
    // C++ style: numbers and booleans in extFields, language as a name, empty remark, extra keys,
    // no serializeTypeCurrentRPC.
    let h = r#"{"code":"10","language":"CPP","version":63,"opaque":5,"flag":0,"remark":"",
        "extFields":{"queueId":0,"sysFlag":0,"batch":"0","unitMode":false,"nested":{"a":1},"n":null},
        "unknown":[1,2]}"#;
    let cmd = decode_all(&json_frame(h, b"x")).unwrap().unwrap();
    assert_eq!((cmd.code, cmd.opaque, cmd.version), (10, 5, 63));
    assert_eq!(cmd.language, LanguageCode::Cpp);
    assert_eq!(cmd.ext.get("queueId"), Some("0"));
    assert_eq!(cmd.ext.get("unitMode"), Some("false"));
    assert_eq!(cmd.ext.get("nested"), Some(r#"{"a":1}"#));
    assert_eq!(cmd.ext.get("n"), None);
    assert_eq!(cmd.remark.as_deref(), Some(""));
    assert_eq!(cmd.body.as_ref(), b"x");
    // Language as an integer, no extFields at all.
    let cmd = decode_all(&json_frame(r#"{"code":34,"language":9,"opaque":1}"#, b""))
        .unwrap()
        .unwrap();
    assert_eq!(cmd.language, LanguageCode::Go);
    assert!(cmd.ext.is_empty());
}

#[test]
fn bad_json_is_an_error_with_the_opaque_when_visible() {
    let e = decode_all(&json_frame(r#"{"code":10,"opaque":77,"extFields":[}"#, b"")).unwrap_err();
    assert!(matches!(e.error, ProtocolError::BadHeader { .. }), "{e}");
    assert_eq!(e.reply.map(|r| r.opaque), Some(77));
    let e = decode_all(&json_frame(r#"{"opaque":3}"#, b"")).unwrap_err();
    assert!(matches!(e.error, ProtocolError::MissingField("code")));
    let e = decode_all(&json_frame(r#"{"code":{},"opaque":3}"#, b"")).unwrap_err();
    assert!(matches!(
        e.error,
        ProtocolError::BadField { field: "code", .. }
    ));
    let e = decode_all(&json_frame(r#"[1]"#, b"")).unwrap_err();
    assert!(e.reply.is_none());
}

#[test]
fn bad_json_responses_and_oneways_are_not_answered() {
    for header in [
        r#"{"code":"abc","opaque":7,"flag":2}"#,
        r#"{"code":"abc","opaque":7,"flag":1}"#,
        r#"{"code":10,"opaque":7,"flag":"3","extFields":[1]}"#,
    ] {
        let e = decode_all(&json_frame(header, b"")).unwrap_err();
        assert!(e.reply.is_none(), "{header}");
    }
    let e = decode_all(&json_frame(r#"{"code":"abc","flag":0,"opaque": 7}"#, b"")).unwrap_err();
    assert_eq!(e.reply.map(|r| r.opaque), Some(7));
    // An opaque that is not a whole i32 is not guessed at.
    for header in [
        r#"{"code":"abc","opaque":1e400}"#,
        r#"{"code":"abc","opaque":7.5}"#,
        r#"{"code":"abc","opaque":99999999999}"#,
    ] {
        let e = decode_all(&json_frame(header, b"")).unwrap_err();
        assert!(e.reply.is_none(), "{header}");
    }
}

#[test]
fn limits_and_bad_lengths_are_errors() {
    // Oversized frame: the binary header's opaque is still recovered.
    let cmd = sample(SerializeType::RocketMq);
    let bytes = frame::to_bytes(&cmd).unwrap();
    let small = Limits {
        max_frame: 10,
        max_header: 1 << 20,
    };
    let mut buf = BytesMut::from(&bytes[..]);
    let e = frame::decode(&mut buf, &small).unwrap_err();
    assert!(matches!(e.error, ProtocolError::FrameLength { .. }));
    assert_eq!(e.reply.map(|r| r.opaque), Some(42));
    // Negative and tiny lengths.
    for len in [-1i32, 0, 3, i32::MAX] {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(&[0; 8]);
        assert!(decode_all(&v).is_err(), "length {len}");
    }
    // Header longer than the frame.
    let mut v = 8i32.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 100, 0, 0, 0, 0]);
    assert!(matches!(
        decode_all(&v).unwrap_err().error,
        ProtocolError::HeaderLength { .. }
    ));
    // Unknown serialize type.
    let mut v = 4i32.to_be_bytes().to_vec();
    v.extend_from_slice(&[7, 0, 0, 0]);
    assert!(matches!(
        decode_all(&v).unwrap_err().error,
        ProtocolError::SerializeType(7)
    ));
}

#[test]
fn binary_header_with_bad_inner_lengths_is_an_error() {
    let bytes = frame::to_bytes(&sample(SerializeType::RocketMq)).unwrap();
    // Corrupt the remark length (header byte 13..17 → frame byte 8+13).
    for bad in [[0xFF, 0xFF, 0xFF, 0xFF], [0x7F, 0, 0, 0]] {
        let mut v = bytes.to_vec();
        v[8 + 13..8 + 17].copy_from_slice(&bad);
        let e = decode_all(&v).unwrap_err();
        assert!(matches!(e.error, ProtocolError::BadHeader { .. }), "{e}");
        assert_eq!(e.reply.map(|r| r.opaque), Some(42));
    }
}

#[test]
fn responses_copy_opaque_and_encoding() {
    for ser in [SerializeType::Json, SerializeType::RocketMq] {
        let req = sample(ser);
        let resp = RemotingCommand::error_to(&req, ResponseCode::RequestCodeNotSupported, "no");
        assert_eq!((resp.opaque, resp.serialize), (42, ser));
        assert!(resp.is_response() && !resp.is_oneway());
        let back = decode_all(&frame::to_bytes(&resp).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            back.response_code(),
            Some(ResponseCode::RequestCodeNotSupported)
        );
        assert_eq!(back.remark.as_deref(), Some("no"));
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&data[..]);
        let limits = Limits { max_frame: 4096, max_header: 1024 };
        while let Ok(Some(_)) = frame::decode(&mut buf, &limits) {}
    }

    #[test]
    fn arbitrary_headers_behind_a_valid_length_never_panic(
        kind in 0u8..3,
        header in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut v = ((4 + header.len()) as i32).to_be_bytes().to_vec();
        v.extend_from_slice(&((u32::from(kind) << 24) | header.len() as u32).to_be_bytes());
        v.extend_from_slice(&header);
        let _ = decode_all(&v);
    }

    #[test]
    fn commands_round_trip(
        code in -32768i32..32768,
        opaque in any::<i32>(),
        flag in 0i32..4,
        remark in proptest::option::of("[ -~]{1,20}"),
        ext in proptest::collection::btree_map("[a-zA-Z]{1,8}", "[ -~\u{1}\u{2}é]{0,16}", 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        binary in any::<bool>(),
    ) {
        let mut cmd = RemotingCommand::request(code, ext.into_iter().collect::<ExtFields>(), body.into());
        cmd.opaque = opaque;
        cmd.flag = flag;
        cmd.remark = remark;
        cmd.serialize = if binary { SerializeType::RocketMq } else { SerializeType::Json };
        let back = decode_all(&frame::to_bytes(&cmd).unwrap()).unwrap().unwrap();
        prop_assert_eq!(back, cmd);
    }
}
