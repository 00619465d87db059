//! Offset message ids: the store host and physical offset of a record, as upper-case hex.
//!
//! IPv4: 4 address bytes + port (i32) + physical offset (i64) = 32 hex characters.
//! IPv6: 16 address bytes + port + offset = 56 hex characters. Java clients parse this id back to
//! find the physical offset (END_TRANSACTION, CONSUMER_SEND_MSG_BACK), so the shape is exact.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::RecordError;

/// Builds the offset message id of the record at `physical_offset` stored by `store_host`.
pub fn offset_msg_id(store_host: SocketAddr, physical_offset: i64) -> String {
    let mut bytes = Vec::with_capacity(28);
    match store_host.ip() {
        IpAddr::V4(ip) => bytes.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => bytes.extend_from_slice(&ip.octets()),
    }
    bytes.extend_from_slice(&i32::from(store_host.port()).to_be_bytes());
    bytes.extend_from_slice(&physical_offset.to_be_bytes());
    hex_upper(&bytes)
}

/// Parses an offset message id back into the store host and physical offset.
pub fn parse_offset_msg_id(id: &str) -> Result<(SocketAddr, i64), RecordError> {
    let bad = || RecordError::BadMessageId { id: id.to_owned() };
    let bytes = unhex(id).ok_or_else(bad)?;
    let (ip, rest): (IpAddr, &[u8]) = match bytes.len() {
        16 => {
            let (a, r) = bytes.split_at(4);
            let a: [u8; 4] = a.try_into().map_err(|_| bad())?;
            (IpAddr::V4(Ipv4Addr::from(a)), r)
        }
        28 => {
            let (a, r) = bytes.split_at(16);
            let a: [u8; 16] = a.try_into().map_err(|_| bad())?;
            (IpAddr::V6(Ipv6Addr::from(a)), r)
        }
        _ => return Err(bad()),
    };
    let port: [u8; 4] = rest[..4].try_into().map_err(|_| bad())?;
    let offset: [u8; 8] = rest[4..].try_into().map_err(|_| bad())?;
    let port = u16::try_from(i32::from_be_bytes(port)).map_err(|_| bad())?;
    Ok((SocketAddr::new(ip, port), i64::from_be_bytes(offset)))
}

fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_id_has_java_shape() {
        let host: SocketAddr = "10.0.0.5:10911".parse().unwrap();
        let id = offset_msg_id(host, 0x1234);
        assert_eq!(id, "0A00000500002A9F0000000000001234");
        assert_eq!(parse_offset_msg_id(&id).unwrap(), (host, 0x1234));
    }

    #[test]
    fn ipv6_round_trips_and_lowercase_parses() {
        let host: SocketAddr = "[::1]:9876".parse().unwrap();
        let id = offset_msg_id(host, i64::MAX);
        assert_eq!(id.len(), 56);
        assert_eq!(
            parse_offset_msg_id(&id.to_lowercase()).unwrap(),
            (host, i64::MAX)
        );
    }

    #[test]
    fn malformed_ids_are_errors() {
        for id in [
            "",
            "ABC",
            "ZZ000005000027060000000000001234",
            "0A0000050000270600000000000012",
        ] {
            assert!(parse_offset_msg_id(id).is_err(), "{id}");
        }
        // Port out of range.
        assert!(parse_offset_msg_id("0A000005FFFFFFFF0000000000001234").is_err());
    }
}
