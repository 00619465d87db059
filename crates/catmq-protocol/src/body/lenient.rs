//! Lenient field deserializers: numbers given as strings, booleans as `"0"`/`"1"`, null as the
//! default.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

fn to_i64<E: de::Error>(v: &Value) -> Result<i64, E> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| E::custom(format!("not an integer: {n}"))),
        Value::String(s) if s.trim().is_empty() => Ok(0),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| E::custom(format!("not an integer: {s:?}"))),
        Value::Bool(b) => Ok(i64::from(*b)),
        other => Err(E::custom(format!("not an integer: {other}"))),
    }
}

/// An `i64` from a number or a numeric string.
pub(crate) fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    to_i64(&Value::deserialize(d)?)
}

/// An `i32` from a number or a numeric string.
pub(crate) fn i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let v = to_i64(&Value::deserialize(d)?)?;
    i32::try_from(v).map_err(|_| de::Error::custom(format!("out of range: {v}")))
}

/// A `bool` from a boolean, `"true"`/`"false"`, `"1"`/`"0"` or a number.
pub(crate) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_i64() != Some(0),
        Value::String(s) => s.eq_ignore_ascii_case("true") || s.trim() == "1",
        _ => false,
    })
}

/// A string from a string or any scalar; null is empty.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A list that may be null.
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A list of integers given as numbers or strings; null is empty.
pub(crate) fn i32_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i32>, D::Error> {
    let v = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    v.iter()
        .map(|x| {
            let n = to_i64::<D::Error>(x)?;
            i32::try_from(n).map_err(|_| de::Error::custom(format!("out of range: {n}")))
        })
        .collect()
}

/// An enum given by name or by ordinal: `names[i]` is the name of ordinal `i`.
pub(crate) fn ordinal<E: de::Error>(v: &Value, names: &[&str], what: &str) -> Result<usize, E> {
    match v {
        Value::String(s) => {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
                return Ok(i);
            }
            let n: usize = s
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("unknown {what} {s:?}")))?;
            (n < names.len())
                .then_some(n)
                .ok_or_else(|| E::custom(format!("unknown {what} {n}")))
        }
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n < names.len())
            .ok_or_else(|| E::custom(format!("unknown {what} {n}"))),
        other => Err(E::custom(format!("unknown {what} {other}"))),
    }
}

/// Declares an enum that serializes as its Java name and deserializes from a name or ordinal.
macro_rules! java_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name { #[default] $($(#[$vm])* $v,)* }

        impl $name {
            const NAMES: &'static [&'static str] = &[$($s,)*];
            const VALUES: &'static [$name] = &[$($name::$v,)*];

            /// The Java name.
            pub fn name(self) -> &'static str {
                Self::VALUES
                    .iter()
                    .position(|v| *v == self)
                    .and_then(|i| Self::NAMES.get(i))
                    .copied()
                    .unwrap_or("")
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = serde_json::Value::deserialize(d)?;
                let i = $crate::body::lenient::ordinal::<D::Error>(&v, Self::NAMES, $what)?;
                Self::VALUES.get(i).copied().ok_or_else(|| serde::de::Error::custom("bad ordinal"))
            }
        }
    };
}
pub(crate) use java_enum;
