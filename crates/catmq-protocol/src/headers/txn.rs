//! Transactions: END_TRANSACTION (37, producer → broker) and CHECK_TRANSACTION_STATE
//! (39, broker → producer).

/// `commitOrRollback` values (the transaction bits of `sysFlag`).
pub mod outcome {
    /// The producer does not know yet (the broker keeps checking).
    pub const UNKNOWN: i32 = 0;
    /// Publish the half message.
    pub const COMMIT: i32 = 0x8;
    /// Drop the half message.
    pub const ROLLBACK: i32 = 0xC;
}

crate::ext_header! {
    /// END_TRANSACTION request. `commitLogOffset` (from the offset message id of the half
    /// message's send result) names the half message; the others are cross-checks.
    pub struct EndTransactionRequestHeader {
        producer_group: Option<String> = "producerGroup",
        tran_state_table_offset: Option<i64> = "tranStateTableOffset",
        commit_log_offset: i64 = "commitLogOffset",
        commit_or_rollback: i32 = "commitOrRollback",
        from_transaction_check: Option<bool> = "fromTransactionCheck",
        msg_id: Option<String> = "msgId",
        transaction_id: Option<String> = "transactionId",
        topic: Option<String> = "topic",
    }
}

crate::ext_header! {
    /// CHECK_TRANSACTION_STATE request (the body is the half message with its real topic).
    pub struct CheckTransactionStateRequestHeader {
        topic: Option<String> = "topic",
        tran_state_table_offset: i64 = "tranStateTableOffset",
        commit_log_offset: i64 = "commitLogOffset",
        msg_id: Option<String> = "msgId",
        transaction_id: Option<String> = "transactionId",
        offset_msg_id: Option<String> = "offsetMsgId",
        bname: Option<String> = "bname",
    }
}
