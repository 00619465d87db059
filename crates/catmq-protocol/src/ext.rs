//! `extFields`: the string map that carries a command's typed header, and the conversions
//! between its string values and typed fields.

use crate::error::{ProtocolError, Result};

/// A command's `extFields`, in arrival order. Lookups take the last value of a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtFields(Vec<(String, String)>);

impl ExtFields {
    /// No fields.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (replacing an earlier value).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Appends a pair without looking for an earlier one (decoders).
    pub(crate) fn push(&mut self, key: String, value: String) {
        self.0.push((key, value));
    }

    /// Every pair.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The typed value of a required field.
    pub fn required<T: ExtValue>(&self, key: &'static str) -> Result<T> {
        self.optional(key)?.ok_or(ProtocolError::MissingField(key))
    }

    /// The typed value of an optional field; an empty string counts as absent for non-strings.
    pub fn optional<T: ExtValue>(&self, key: &'static str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if !T::IS_STRING && (v.trim().is_empty() || v == "null") => Ok(None),
            Some(v) => T::parse(v)
                .map(Some)
                .ok_or_else(|| ProtocolError::BadField {
                    field: key,
                    value: v.chars().take(64).collect(),
                    expected: T::EXPECTED,
                }),
        }
    }

    /// Sets `key` to a typed value.
    pub fn put<T: ExtValue>(&mut self, key: &str, value: &T) {
        self.insert(key, value.render());
    }

    /// Sets `key` when `value` is present.
    pub fn put_opt<T: ExtValue>(&mut self, key: &str, value: &Option<T>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut out = Self::new();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out
    }
}

/// A typed header field value: how it reads from and renders to an `extFields` string.
pub trait ExtValue: Sized {
    /// What a bad value was expected to be (for errors).
    const EXPECTED: &'static str;
    /// Parses a wire string (leniently: surrounding spaces are ignored).
    fn parse(s: &str) -> Option<Self>;
    /// The wire string.
    fn render(&self) -> String;
    /// Strings keep an empty value; for other types an empty value counts as absent.
    const IS_STRING: bool = false;
}

impl ExtValue for String {
    const EXPECTED: &'static str = "a string";
    const IS_STRING: bool = true;
    fn parse(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
    fn render(&self) -> String {
        self.clone()
    }
}

macro_rules! ext_int {
    ($($t:ty),*) => {$(
        impl ExtValue for $t {
            const EXPECTED: &'static str = "an integer";
            fn parse(s: &str) -> Option<Self> {
                s.trim().parse().ok()
            }
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
ext_int!(i32, i64, u32, u64);

impl ExtValue for bool {
    const EXPECTED: &'static str = "a boolean";
    /// `true`/`false` in any case, and `1`/`0` as the C++ client sends them.
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("true") || s == "1" {
            Some(true)
        } else if s.eq_ignore_ascii_case("false") || s == "0" {
            Some(false)
        } else {
            None
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

/// Declares a typed header struct whose fields map to `extFields` keys.
///
/// `name: Type = "wireKey"` is required; `name: Option<Type> = "wireKey"` is optional.
/// Generates `from_ext` and `to_ext`.
#[macro_export]
macro_rules! ext_header {
    ($(#[$m:meta])* pub struct $name:ident {
        $($(#[$fm:meta])* $field:ident : $kind:ident $(<$inner:ty>)? = $key:literal,)*
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fm])* pub $field: $crate::ext_header!(@ty $kind $(<$inner>)?),)*
        }

        impl $name {
            /// Reads the header from `extFields`.
            pub fn from_ext(ext: &$crate::ExtFields) -> $crate::Result<Self> {
                Ok(Self {
                    $($field: $crate::ext_header!(@get ext, $key, $kind $(<$inner>)?),)*
                })
            }

            /// Writes the header into `extFields`.
            pub fn to_ext(&self) -> $crate::ExtFields {
                let mut ext = $crate::ExtFields::new();
                $($crate::ext_header!(@put ext, $key, self.$field, $kind $(<$inner>)?);)*
                ext
            }
        }
    };
    (@ty Option <$inner:ty>) => { Option<$inner> };
    (@ty $kind:ident) => { $kind };
    (@get $ext:ident, $key:literal, Option <$inner:ty>) => { $ext.optional::<$inner>($key)? };
    (@get $ext:ident, $key:literal, $kind:ident) => { $ext.required::<$kind>($key)? };
    (@put $ext:ident, $key:literal, $v:expr, Option <$inner:ty>) => { $ext.put_opt($key, &$v) };
    (@put $ext:ident, $key:literal, $v:expr, $kind:ident) => { $ext.put($key, &$v) };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::ext_header! {
        /// A test header.
        pub struct Sample {
            topic: String = "topic",
            queue_id: i32 = "queueId",
            offset: Option<i64> = "offset",
            batch: Option<bool> = "batch",
        }
    }

    #[test]
    fn typed_fields_round_trip_and_are_lenient() {
        let ext: ExtFields = [
            ("topic", "T"),
            ("queueId", " 3 "),
            ("batch", "1"),
            ("x", "y"),
        ]
        .into_iter()
        .collect();
        let h = Sample::from_ext(&ext).unwrap();
        assert_eq!(
            h,
            Sample {
                topic: "T".into(),
                queue_id: 3,
                offset: None,
                batch: Some(true),
            }
        );
        let back = Sample::from_ext(&h.to_ext()).unwrap();
        assert_eq!(back, h);
        assert_eq!(h.to_ext().get("queueId"), Some("3"));
        assert_eq!(h.to_ext().get("offset"), None);
    }

    #[test]
    fn missing_and_bad_fields_are_errors() {
        let ext: ExtFields = [("topic", "T")].into_iter().collect();
        assert!(matches!(
            Sample::from_ext(&ext),
            Err(ProtocolError::MissingField("queueId"))
        ));
        let ext: ExtFields = [("topic", "T"), ("queueId", "x")].into_iter().collect();
        assert!(matches!(
            Sample::from_ext(&ext),
            Err(ProtocolError::BadField {
                field: "queueId",
                ..
            })
        ));
        let ext: ExtFields = [("topic", "T"), ("queueId", "1"), ("offset", "")]
            .into_iter()
            .collect();
        assert_eq!(Sample::from_ext(&ext).unwrap().offset, None);
    }

    #[test]
    fn booleans_accept_c_plus_plus_forms() {
        assert_eq!(bool::parse("0"), Some(false));
        assert_eq!(bool::parse("TRUE"), Some(true));
        assert_eq!(bool::parse("yes"), None);
    }
}
