//! Client bookkeeping: UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38),
//! NOTIFY_CONSUMER_IDS_CHANGED (40), CONSUMER_SEND_MSG_BACK (36), END_TRANSACTION (37),
//! CHECK_TRANSACTION_STATE (39).

crate::ext_header! {
    /// UNREGISTER_CLIENT request.
    pub struct UnregisterClientRequestHeader {
        client_id: String = "clientID",
        producer_group: Option<String> = "producerGroup",
        consumer_group: Option<String> = "consumerGroup",
    }
}

crate::ext_header! {
    /// GET_CONSUMER_LIST_BY_GROUP and NOTIFY_CONSUMER_IDS_CHANGED request.
    pub struct ConsumerGroupRequestHeader {
        consumer_group: String = "consumerGroup",
    }
}

crate::ext_header! {
    /// CONSUMER_SEND_MSG_BACK request: `offset` is the original's physical offset.
    pub struct ConsumerSendMsgBackRequestHeader {
        offset: i64 = "offset",
        group: String = "group",
        delay_level: i32 = "delayLevel",
        origin_msg_id: Option<String> = "originMsgId",
        origin_topic: Option<String> = "originTopic",
        unit_mode: Option<bool> = "unitMode",
        max_reconsume_times: Option<i32> = "maxReconsumeTimes",
    }
}
