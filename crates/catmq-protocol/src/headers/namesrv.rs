//! Name server codes: GET_ROUTEINFO_BY_TOPIC (105), REGISTER_BROKER (103),
//! UNREGISTER_BROKER (104), BROKER_HEARTBEAT (904), DELETE_TOPIC_IN_NAMESRV (216),
//! GET_TOPICS_BY_CLUSTER (224).

crate::ext_header! {
    /// GET_ROUTEINFO_BY_TOPIC request.
    pub struct GetRouteInfoRequestHeader {
        topic: String = "topic",
        accept_standard_json_only: Option<bool> = "acceptStandardJsonOnly",
    }
}

crate::ext_header! {
    /// REGISTER_BROKER request; the body lists the broker's topics.
    pub struct RegisterBrokerRequestHeader {
        broker_name: String = "brokerName",
        broker_addr: String = "brokerAddr",
        cluster_name: String = "clusterName",
        ha_server_addr: Option<String> = "haServerAddr",
        broker_id: i64 = "brokerId",
        heartbeat_timeout_millis: Option<i64> = "heartbeatTimeoutMillis",
        enable_acting_master: Option<bool> = "enableActingMaster",
        compressed: Option<bool> = "compressed",
        body_crc32: Option<i32> = "bodyCrc32",
    }
}

crate::ext_header! {
    /// REGISTER_BROKER response.
    pub struct RegisterBrokerResponseHeader {
        ha_server_addr: Option<String> = "haServerAddr",
        master_addr: Option<String> = "masterAddr",
    }
}

crate::ext_header! {
    /// UNREGISTER_BROKER request.
    pub struct UnregisterBrokerRequestHeader {
        broker_name: String = "brokerName",
        broker_addr: String = "brokerAddr",
        cluster_name: String = "clusterName",
        broker_id: i64 = "brokerId",
    }
}

crate::ext_header! {
    /// BROKER_HEARTBEAT request (keeps a registration alive between registrations).
    pub struct BrokerHeartbeatRequestHeader {
        cluster_name: String = "clusterName",
        broker_addr: String = "brokerAddr",
        broker_name: String = "brokerName",
        broker_id: Option<i64> = "brokerId",
    }
}

crate::ext_header! {
    /// DELETE_TOPIC_IN_NAMESRV request.
    pub struct DeleteTopicFromNamesrvRequestHeader {
        topic: String = "topic",
        cluster_name: Option<String> = "clusterName",
    }
}

crate::ext_header! {
    /// GET_TOPICS_BY_CLUSTER request.
    pub struct GetTopicsByClusterRequestHeader {
        cluster: String = "cluster",
    }
}
