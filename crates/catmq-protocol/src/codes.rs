//! Request codes, response codes, language codes and the frame flag bits.
//!
//! Codes are plain integers on the wire; a command keeps the raw value so an unknown request code
//! can still be answered (`REQUEST_CODE_NOT_SUPPORTED`). These enums name the ones CatMQ knows.

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:expr,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vm])* $v = $n,)* }

        impl $name {
            /// Every known value.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];

            /// The known code with this value.
            pub fn from_i32(v: i32) -> Option<Self> {
                match v { $($n => Some($name::$v),)* _ => None }
            }

            /// The wire value.
            pub fn as_i32(self) -> i32 {
                self as i32
            }
        }
    };
}

wire_enum! {
    /// Request codes (Apache RocketMQ's `RequestCode`) that CatMQ handles or sends.
    RequestCode {
        SendMessage = 10,
        PullMessage = 11,
        QueryMessage = 12,
        QueryConsumerOffset = 14,
        UpdateConsumerOffset = 15,
        UpdateAndCreateTopic = 17,
        GetAllTopicConfig = 21,
        GetTopicNameList = 23,
        GetBrokerRuntimeInfo = 28,
        SearchOffsetByTimestamp = 29,
        GetMaxOffset = 30,
        GetMinOffset = 31,
        GetEarliestMsgStoretime = 32,
        ViewMessageById = 33,
        HeartBeat = 34,
        UnregisterClient = 35,
        ConsumerSendMsgBack = 36,
        EndTransaction = 37,
        GetConsumerListByGroup = 38,
        CheckTransactionState = 39,
        NotifyConsumerIdsChanged = 40,
        LockBatchMq = 41,
        UnlockBatchMq = 42,
        GetAllConsumerOffset = 43,
        GetAllDelayOffset = 45,
        GetTimerCheckPoint = 60,
        GetTimerMetrics = 61,
        CheckClientConfig = 46,
        RegisterBroker = 103,
        UnregisterBroker = 104,
        GetRouteinfoByTopic = 105,
        GetBrokerClusterInfo = 106,
        UpdateAndCreateSubscriptionGroup = 200,
        GetAllSubscriptionGroupConfig = 201,
        GetTopicStatsInfo = 202,
        GetConsumerConnectionList = 203,
        GetProducerConnectionList = 204,
        GetAllTopicListFromNameserver = 206,
        DeleteSubscriptionGroup = 207,
        GetConsumeStats = 208,
        ResetConsumerOffsetInBroker = 212,
        DeleteTopicInBroker = 215,
        DeleteTopicInNamesrv = 216,
        RegisterTopicInNamesrv = 217,
        ResetConsumerClientOffset = 220,
        InvokeBrokerToResetOffset = 222,
        GetTopicsByCluster = 224,
        QueryTopicConsumeByWho = 300,
        GetConsumerRunningInfo = 307,
        ConsumeMessageDirectly = 309,
        SendMessageV2 = 310,
        SendBatchMessage = 320,
        RecallMessage = 370,
        GetTopicConfig = 351,
        GetSubscriptionGroupConfig = 352,
        BrokerHeartbeat = 904,
        /// CatMQ: where one scheduled message is (due time, pending / cancelled / delivered).
        CatmqQueryTimerMessage = 25_061,
    }
}

wire_enum! {
    /// Response codes (Apache RocketMQ's `ResponseCode`): the wire contract, never reused.
    ResponseCode {
        Success = 0,
        SystemError = 1,
        SystemBusy = 2,
        RequestCodeNotSupported = 3,
        FlushDiskTimeout = 10,
        SlaveNotAvailable = 11,
        FlushSlaveTimeout = 12,
        MessageIllegal = 13,
        ServiceNotAvailable = 14,
        VersionNotSupported = 15,
        NoPermission = 16,
        TopicNotExist = 17,
        TopicExistAlready = 18,
        PullNotFound = 19,
        PullRetryImmediately = 20,
        PullOffsetMoved = 21,
        QueryNotFound = 22,
        SubscriptionParseFailed = 23,
        SubscriptionNotExist = 24,
        SubscriptionNotLatest = 25,
        SubscriptionGroupNotExist = 26,
        FilterDataNotExist = 27,
        FilterDataNotLatest = 28,
        TransactionShouldCommit = 200,
        TransactionShouldRollback = 201,
        TransactionStateUnknow = 202,
        TransactionStateGroupWrong = 203,
        NoBuyerId = 204,
        NotInCurrentUnit = 205,
        ConsumerNotOnline = 206,
        ConsumeMsgTimeout = 207,
        NoMessage = 208,
        FlowControl = 215,
        IllegalOperation = 604,
        GoAway = 1500,
    }
}

wire_enum! {
    /// The sender's language (`LanguageCode`): a name in JSON headers, a byte in binary ones.
    LanguageCode {
        Java = 0,
        Cpp = 1,
        Dotnet = 2,
        Python = 3,
        Delphi = 4,
        Erlang = 5,
        Ruby = 6,
        Other = 7,
        Http = 8,
        Go = 9,
        Php = 10,
        Oms = 11,
        Rust = 12,
        NodeJs = 13,
    }
}

const LANGUAGE_NAMES: &[(LanguageCode, &str)] = &[
    (LanguageCode::Java, "JAVA"),
    (LanguageCode::Cpp, "CPP"),
    (LanguageCode::Dotnet, "DOTNET"),
    (LanguageCode::Python, "PYTHON"),
    (LanguageCode::Delphi, "DELPHI"),
    (LanguageCode::Erlang, "ERLANG"),
    (LanguageCode::Ruby, "RUBY"),
    (LanguageCode::Other, "OTHER"),
    (LanguageCode::Http, "HTTP"),
    (LanguageCode::Go, "GO"),
    (LanguageCode::Php, "PHP"),
    (LanguageCode::Oms, "OMS"),
    (LanguageCode::Rust, "RUST"),
    (LanguageCode::NodeJs, "NODE_JS"),
];

impl LanguageCode {
    /// The name JSON headers carry (`"JAVA"`).
    pub fn name(self) -> &'static str {
        LANGUAGE_NAMES
            .iter()
            .find(|(l, _)| *l == self)
            .map_or("OTHER", |(_, n)| n)
    }

    /// The language with this name (case-insensitive); unknown names are `Other`.
    pub fn from_name(name: &str) -> Self {
        LANGUAGE_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map_or(LanguageCode::Other, |(l, _)| *l)
    }
}

/// Frame flag bit: this command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Frame flag bit: a oneway request (the receiver must not answer).
pub const FLAG_ONEWAY: i32 = 2;

/// `MQVersion` ordinal that CatMQ reports (V5_3_1): new enough for standard route JSON.
pub const CATMQ_VERSION: i32 = 475;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in RequestCode::ALL {
            assert_eq!(RequestCode::from_i32(c.as_i32()), Some(*c));
        }
        for c in ResponseCode::ALL {
            assert_eq!(ResponseCode::from_i32(c.as_i32()), Some(*c));
        }
        assert_eq!(RequestCode::from_i32(310), Some(RequestCode::SendMessageV2));
        assert_eq!(RequestCode::from_i32(9999), None);
        assert_eq!(ResponseCode::PullOffsetMoved.as_i32(), 21);
    }

    #[test]
    fn language_names() {
        for l in LanguageCode::ALL {
            assert_eq!(LanguageCode::from_name(l.name()), *l);
            assert_eq!(LanguageCode::from_i32(l.as_i32()), Some(*l));
        }
        assert_eq!(LanguageCode::from_name("cpp"), LanguageCode::Cpp);
        assert_eq!(LanguageCode::from_name("COBOL"), LanguageCode::Other);
    }
}
