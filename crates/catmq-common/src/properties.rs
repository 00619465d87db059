//! The message properties string: `key 0x01 value 0x02`, repeated.
//!
//! Parsing is lenient as in Apache RocketMQ: a pair without a `0x01`, or shorter than three
//! characters, is skipped.

/// Separates a name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends each name/value pair.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// Tag of the message (one tag; consume queues store its hash).
pub const TAGS: &str = "TAGS";
/// Space-separated business keys, indexed for lookup.
pub const KEYS: &str = "KEYS";
/// The producer's unique message id, indexed for lookup.
pub const UNIQ_KEY: &str = "UNIQ_KEY";
/// `"true"`: the producer waits for the store (sync flush) before the answer.
pub const WAIT: &str = "WAIT";
/// Delay level 1..=18.
pub const DELAY: &str = "DELAY";
/// Original topic while a message sits in a system topic.
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Original queue id while a message sits in a system topic.
pub const REAL_QID: &str = "REAL_QID";
/// Original topic of a retried message.
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
/// First message id of a retried message.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// `"true"` on a prepared (half) transactional message.
pub const TRAN_MSG: &str = "TRAN_MSG";
/// Producer group of a transactional message.
pub const PGROUP: &str = "PGROUP";

/// Iterates over the well-formed pairs of a properties string.
pub fn iter(props: &str) -> impl Iterator<Item = (&str, &str)> {
    props
        .split(PROPERTY_SEPARATOR)
        .filter(|pair| pair.len() >= 3)
        .filter_map(|pair| pair.split_once(NAME_VALUE_SEPARATOR))
}

/// The value of `key`, if present (the last one wins, as when Java fills a map).
pub fn get<'a>(props: &'a str, key: &str) -> Option<&'a str> {
    iter(props)
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .last()
}

/// Encodes pairs into a properties string.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(k.as_ref());
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v.as_ref());
        out.push(PROPERTY_SEPARATOR);
    }
    out
}

/// `props` with the pairs of `set` put in (replacing any with the same name) and the names in
/// `remove` taken out.
pub fn update(props: &str, set: &[(&str, &str)], remove: &[&str]) -> String {
    let kept = iter(props).filter(|(k, _)| !remove.contains(k) && !set.iter().any(|(s, _)| s == k));
    encode(kept.chain(set.iter().copied()))
}

/// Maximum reconsume times a consumer asked for on a retried message.
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
/// How many times a message was retried (set by consumers).
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
/// Cluster of the broker that stored the message.
pub const CLUSTER: &str = "CLUSTER";

/// The business keys of a message (`KEYS`, split on spaces, empty parts dropped).
pub fn keys(props: &str) -> impl Iterator<Item = &str> {
    get(props, KEYS)
        .unwrap_or("")
        .split(' ')
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_sets_replaces_and_removes() {
        let p = encode([("A", "1"), ("B", "2"), ("C", "3")]);
        let u = update(&p, &[("B", "9"), ("D", "4")], &["C"]);
        assert_eq!(u, encode([("A", "1"), ("B", "9"), ("D", "4")]));
        assert_eq!(update("", &[], &[]), "");
    }

    #[test]
    fn encode_then_get_round_trips() {
        let p = encode([(TAGS, "TagA"), (KEYS, "k1 k2"), (UNIQ_KEY, "ABC")]);
        assert_eq!(
            p,
            "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}UNIQ_KEY\u{1}ABC\u{2}"
        );
        assert_eq!(get(&p, TAGS), Some("TagA"));
        assert_eq!(get(&p, UNIQ_KEY), Some("ABC"));
        assert_eq!(get(&p, "nope"), None);
        assert_eq!(keys(&p).collect::<Vec<_>>(), vec!["k1", "k2"]);
    }

    #[test]
    fn malformed_pairs_are_skipped() {
        // Java skips pairs shorter than three characters ("K\u{1}") and pairs with no separator.
        let p = "ab\u{2}TAGS\u{1}x\u{2}novalue\u{2}\u{2}K\u{1}\u{2}Kx\u{1}\u{2}";
        let pairs: Vec<_> = iter(p).collect();
        assert_eq!(pairs, vec![("TAGS", "x"), ("Kx", "")]);
    }

    #[test]
    fn keys_tolerate_extra_spaces() {
        let p = encode([(KEYS, "  a  b ")]);
        assert_eq!(keys(&p).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(keys("").count(), 0);
    }
}
