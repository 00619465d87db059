//! Message lookups: QUERY_MESSAGE (12), VIEW_MESSAGE_BY_ID (33).

crate::ext_header! {
    /// QUERY_MESSAGE request: messages of `topic` with key `key` stored in the time range.
    pub struct QueryMessageRequestHeader {
        topic: String = "topic",
        key: String = "key",
        max_num: i32 = "maxNum",
        begin_timestamp: i64 = "beginTimestamp",
        end_timestamp: i64 = "endTimestamp",
    }
}

crate::ext_header! {
    /// QUERY_MESSAGE response.
    pub struct QueryMessageResponseHeader {
        index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

crate::ext_header! {
    /// VIEW_MESSAGE_BY_ID request: `offset` is the physical offset from the offset message id.
    pub struct ViewMessageRequestHeader {
        offset: i64 = "offset",
        topic: Option<String> = "topic",
    }
}
