//! Admin codes: topics, subscription groups, stats, connections, offset resets.

crate::ext_header! {
    /// UPDATE_AND_CREATE_TOPIC request.
    pub struct CreateTopicRequestHeader {
        topic: String = "topic",
        default_topic: Option<String> = "defaultTopic",
        read_queue_nums: i32 = "readQueueNums",
        write_queue_nums: i32 = "writeQueueNums",
        perm: i32 = "perm",
        topic_filter_type: Option<String> = "topicFilterType",
        topic_sys_flag: Option<i32> = "topicSysFlag",
        order: Option<bool> = "order",
        attributes: Option<String> = "attributes",
    }
}

crate::ext_header! {
    /// A request naming one topic (DELETE_TOPIC_IN_BROKER, GET_TOPIC_STATS_INFO,
    /// GET_TOPIC_CONFIG, QUERY_TOPIC_CONSUME_BY_WHO).
    pub struct TopicRequestHeader {
        topic: String = "topic",
    }
}

crate::ext_header! {
    /// DELETE_SUBSCRIPTIONGROUP request.
    pub struct DeleteSubscriptionGroupRequestHeader {
        group_name: String = "groupName",
        clean_offset: Option<bool> = "cleanOffset",
    }
}

crate::ext_header! {
    /// GET_SUBSCRIPTIONGROUP_CONFIG request.
    pub struct GetSubscriptionGroupConfigRequestHeader {
        group: String = "group",
    }
}

crate::ext_header! {
    /// GET_CONSUME_STATS request (all the group's topics when `topic` is absent).
    pub struct GetConsumeStatsRequestHeader {
        consumer_group: String = "consumerGroup",
        topic: Option<String> = "topic",
    }
}

crate::ext_header! {
    /// RESET_CONSUMER_OFFSET_IN_BROKER (INVOKE_BROKER_TO_RESET_OFFSET) request.
    pub struct ResetOffsetRequestHeader {
        topic: String = "topic",
        group: String = "group",
        timestamp: i64 = "timestamp",
        is_force: Option<bool> = "isForce",
        queue_id: Option<i32> = "queueId",
        offset: Option<i64> = "offset",
    }
}
