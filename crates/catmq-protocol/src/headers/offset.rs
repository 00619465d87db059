//! Offsets: QUERY/UPDATE_CONSUMER_OFFSET (14/15), GET_MAX/MIN_OFFSET (30/31),
//! SEARCH_OFFSET_BY_TIMESTAMP (29), GET_EARLIEST_MSG_STORETIME (32).

crate::ext_header! {
    /// QUERY_CONSUMER_OFFSET request.
    pub struct QueryConsumerOffsetRequestHeader {
        consumer_group: String = "consumerGroup",
        topic: String = "topic",
        queue_id: i32 = "queueId",
        set_zero_if_not_found: Option<bool> = "setZeroIfNotFound",
    }
}

crate::ext_header! {
    /// A response that carries one offset (query, max, min, search).
    pub struct OffsetResponseHeader {
        offset: i64 = "offset",
    }
}

crate::ext_header! {
    /// UPDATE_CONSUMER_OFFSET request.
    pub struct UpdateConsumerOffsetRequestHeader {
        consumer_group: String = "consumerGroup",
        topic: String = "topic",
        queue_id: i32 = "queueId",
        commit_offset: i64 = "commitOffset",
    }
}

crate::ext_header! {
    /// GET_MAX_OFFSET request.
    pub struct GetMaxOffsetRequestHeader {
        topic: String = "topic",
        queue_id: i32 = "queueId",
        committed: Option<bool> = "committed",
    }
}

crate::ext_header! {
    /// GET_MIN_OFFSET and GET_EARLIEST_MSG_STORETIME request.
    pub struct QueueRequestHeader {
        topic: String = "topic",
        queue_id: i32 = "queueId",
    }
}

crate::ext_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP request; `boundaryType` is `lower` (default) or `upper`.
    pub struct SearchOffsetRequestHeader {
        topic: String = "topic",
        queue_id: i32 = "queueId",
        timestamp: i64 = "timestamp",
        boundary_type: Option<String> = "boundaryType",
    }
}

crate::ext_header! {
    /// GET_EARLIEST_MSG_STORETIME response.
    pub struct TimestampResponseHeader {
        timestamp: i64 = "timestamp",
    }
}
