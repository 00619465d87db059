//! Tag hash codes, as Apache RocketMQ stores them in consume-queue entries.

/// Java's `String.hashCode()`: `h = 31 * h + c` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The consume-queue tag code of a message: the hash of its tag, or 0 when it has none.
pub fn tag_code(tag: Option<&str>) -> i64 {
    match tag {
        Some(t) if !t.is_empty() => i64::from(java_string_hash(t)),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_hash_codes() {
        // Values computed by java.lang.String#hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("a much longer tag value"), -1_240_988_824);
        // A character outside the BMP counts as two UTF-16 units.
        assert_eq!(java_string_hash("😀"), 1_772_899);
    }

    #[test]
    fn no_tag_is_code_zero() {
        assert_eq!(tag_code(None), 0);
        assert_eq!(tag_code(Some("")), 0);
        assert_eq!(tag_code(Some("TagA")), 2_598_919);
    }
}
