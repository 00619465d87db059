//! PULL_MESSAGE (11).

/// `PullSysFlag`: the request carries the group's offset to commit.
pub const PULL_COMMIT_OFFSET: i32 = 0x1;
/// `PullSysFlag`: long polling allowed.
pub const PULL_SUSPEND: i32 = 0x2;
/// `PullSysFlag`: the request carries its subscription expression.
pub const PULL_SUBSCRIPTION: i32 = 0x4;
/// `PullSysFlag`: class filter (unsupported).
pub const PULL_CLASS_FILTER: i32 = 0x8;
/// `PullSysFlag`: lite pull consumer.
pub const PULL_LITE: i32 = 0x10;

crate::ext_header! {
    /// The pull request header.
    pub struct PullMessageRequestHeader {
        consumer_group: String = "consumerGroup",
        topic: String = "topic",
        queue_id: i32 = "queueId",
        queue_offset: i64 = "queueOffset",
        max_msg_nums: i32 = "maxMsgNums",
        sys_flag: i32 = "sysFlag",
        commit_offset: Option<i64> = "commitOffset",
        suspend_timeout_millis: Option<i64> = "suspendTimeoutMillis",
        subscription: Option<String> = "subscription",
        sub_version: Option<i64> = "subVersion",
        expression_type: Option<String> = "expressionType",
        max_msg_bytes: Option<i32> = "maxMsgBytes",
    }
}

crate::ext_header! {
    /// The pull response header.
    pub struct PullMessageResponseHeader {
        suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        next_begin_offset: i64 = "nextBeginOffset",
        min_offset: i64 = "minOffset",
        max_offset: i64 = "maxOffset",
        offset_delta: Option<i64> = "offsetDelta",
        topic_sys_flag: Option<i32> = "topicSysFlag",
        group_sys_flag: Option<i32> = "groupSysFlag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExtFields;

    #[test]
    fn pull_header_from_a_c_plus_plus_client() {
        let ext: ExtFields = [
            ("consumerGroup", "G"),
            ("topic", "T"),
            ("queueId", "0"),
            ("queueOffset", "12"),
            ("maxMsgNums", "32"),
            ("sysFlag", "6"),
            ("commitOffset", "0"),
            ("suspendTimeoutMillis", "15000"),
            ("subscription", "*"),
            ("subVersion", "0"),
        ]
        .into_iter()
        .collect();
        let h = PullMessageRequestHeader::from_ext(&ext).unwrap();
        assert_eq!(h.sys_flag & PULL_SUSPEND, PULL_SUSPEND);
        assert_eq!(h.suspend_timeout_millis, Some(15000));
        assert_eq!(PullMessageRequestHeader::from_ext(&h.to_ext()).unwrap(), h);
        let r = PullMessageResponseHeader {
            next_begin_offset: 13,
            max_offset: 20,
            ..Default::default()
        };
        assert_eq!(r.to_ext().get("suggestWhichBrokerId"), Some("0"));
        assert_eq!(PullMessageResponseHeader::from_ext(&r.to_ext()).unwrap(), r);
    }
}
