//! The JSON header (serialize type 0).
//!
//! Decoding is lenient, as real clients need: numbers and booleans where strings are expected
//! (the C++ client), enum names or integers, `remark` null or absent, unknown keys ignored.
//! Encoding is compact standard JSON with keys in alphabetical order (as Java's fastjson writes
//! them) and every `extFields` value a string.

use serde_json::{Map, Value};

use crate::codes::LanguageCode;
use crate::command::{RemotingCommand, SerializeType};
use crate::error::{ProtocolError, Result};
use crate::ext::ExtFields;

const ENC: &str = "JSON";

/// Decodes a JSON header; the body is set by the caller.
pub(crate) fn decode(bytes: &[u8]) -> Result<RemotingCommand> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::bad_header(ENC, e.to_string()))?;
    let Value::Object(obj) = v else {
        return Err(ProtocolError::bad_header(ENC, "not a JSON object"));
    };
    let code = int_field(&obj, "code")?.ok_or(ProtocolError::MissingField("code"))?;
    let language = match obj.get("language") {
        Some(Value::String(s)) => LanguageCode::from_name(s),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .and_then(LanguageCode::from_i32)
            .unwrap_or(LanguageCode::Other),
        _ => LanguageCode::Other,
    };
    Ok(RemotingCommand {
        code,
        language,
        version: int_field(&obj, "version")?.unwrap_or(0),
        opaque: int_field(&obj, "opaque")?.unwrap_or(0),
        flag: int_field(&obj, "flag")?.unwrap_or(0),
        remark: obj.get("remark").and_then(scalar_string),
        ext: ext_fields(obj.get("extFields"))?,
        body: bytes::Bytes::new(),
        serialize: SerializeType::Json,
    })
}

/// An integer field given as a number or a numeric string.
fn int_field(obj: &Map<String, Value>, key: &'static str) -> Result<Option<i32>> {
    let bad = |v: &Value| ProtocolError::BadField {
        field: key,
        value: v.to_string().chars().take(64).collect(),
        expected: "a 32-bit integer",
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(v)),
        Some(v @ Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

/// A scalar as a string (`null` is absent); arrays and objects as compact JSON.
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

fn ext_fields(v: Option<&Value>) -> Result<ExtFields> {
    let mut ext = ExtFields::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if let Some(s) = scalar_string(v) {
                    ext.push(k.clone(), s);
                }
            }
        }
        Some(_) => return Err(ProtocolError::bad_header(ENC, "extFields is not an object")),
    }
    Ok(ext)
}

/// Appends `s` as a JSON string literal.
fn push_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Encodes the header of `cmd` as compact JSON.
pub(crate) fn encode(cmd: &RemotingCommand, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"code\":");
    out.extend_from_slice(cmd.code.to_string().as_bytes());
    out.extend_from_slice(b",\"extFields\":{");
    let mut fields: Vec<(&str, &str)> = cmd.ext.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    fields.dedup_by(|a, b| a.0 == b.0);
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, k);
        out.push(b':');
        push_str(out, v);
    }
    out.extend_from_slice(b"},\"flag\":");
    out.extend_from_slice(cmd.flag.to_string().as_bytes());
    out.extend_from_slice(b",\"language\":");
    push_str(out, cmd.language.name());
    out.extend_from_slice(b",\"opaque\":");
    out.extend_from_slice(cmd.opaque.to_string().as_bytes());
    if let Some(r) = &cmd.remark {
        out.extend_from_slice(b",\"remark\":");
        push_str(out, r);
    }
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    out.extend_from_slice(cmd.version.to_string().as_bytes());
    out.push(b'}');
}

/// Finds `"opaque":N` in possibly incomplete JSON, for an error response to a bad frame.
pub(crate) fn salvage_opaque(bytes: &[u8]) -> Option<i32> {
    salvage_int(bytes, b"\"opaque\":")
}

/// Finds `"flag":N` in possibly incomplete JSON: whether a bad frame is a request to answer.
pub(crate) fn salvage_flag(bytes: &[u8]) -> Option<i32> {
    salvage_int(bytes, b"\"flag\":")
}

/// The integer after `key` (quoted or not), if it is a whole integer that fits: `1e400` or
/// `7.5` give `None`, not a wrong number.
fn salvage_int(bytes: &[u8], key: &[u8]) -> Option<i32> {
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = bytes.get(at..)?;
    let rest = &rest[rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    let quoted = rest.first() == Some(&b'"');
    let rest = if quoted { &rest[1..] } else { rest };
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'-'))
        .unwrap_or(rest.len());
    let ends_well = match rest.get(end) {
        None => !quoted,
        Some(b'"') => quoted,
        Some(b) => !quoted && (*b == b',' || *b == b'}' || b.is_ascii_whitespace()),
    };
    if !ends_well {
        return None;
    }
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}
