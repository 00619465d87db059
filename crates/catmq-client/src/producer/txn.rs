//! Transactional sends: a half message, the local transaction, END_TRANSACTION; and the
//! answers to the broker's check-backs.

use std::sync::Arc;

use catmq_common::msgid::parse_offset_msg_id;
use catmq_common::properties;
use catmq_protocol::headers::{
    outcome, CheckTransactionStateRequestHeader, EndTransactionRequestHeader, RecallHandle,
    RecallMessageRequestHeader,
};
use catmq_protocol::{RemotingCommand, RequestCode, SerializeType};
use catmq_remoting::Connection;

use super::{send, Inner, Producer};
use crate::error::{ClientError, Result};
use crate::message::{Message, MessageExt, SendResult, SendStatus};

/// What a local transaction (or a check-back) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// Publish the message.
    Commit,
    /// Drop the message.
    Rollback,
    /// Not known yet: the broker asks again later ([`TransactionListener::check`]).
    Unknown,
}

impl TransactionState {
    fn wire(self) -> i32 {
        match self {
            TransactionState::Commit => outcome::COMMIT,
            TransactionState::Rollback => outcome::ROLLBACK,
            TransactionState::Unknown => outcome::UNKNOWN,
        }
    }
}

/// The application's side of a transaction.
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction after the half message is stored (on the sending task).
    fn execute(&self, msg: &Message, sent: &SendResult) -> TransactionState;
    /// Answers a check-back: the outcome of the transaction that sent `msg` (on a blocking
    /// thread).
    fn check(&self, msg: &MessageExt) -> TransactionState;
}

/// The result of [`Producer::send_in_transaction`].
#[derive(Debug, Clone)]
pub struct TransactionSendResult {
    /// How the half message was stored.
    pub send: SendResult,
    /// What the local transaction decided (sent to the broker).
    pub state: TransactionState,
}

impl Producer {
    /// Sends `msg` as a half message, runs the listener's local transaction, and tells the
    /// broker its outcome. Consumers see the message only once it is committed.
    pub async fn send_in_transaction(&self, msg: Message) -> Result<TransactionSendResult> {
        let p = &self.0;
        let listener = p.listener.clone().ok_or_else(|| {
            ClientError::Invalid("send_in_transaction needs a transaction_listener".into())
        })?;
        let sent = send::send_half(p, msg.clone()).await?;
        let state = if sent.status == SendStatus::SendOk {
            listener.execute(&msg, &sent)
        } else {
            TransactionState::Rollback
        };
        end_transaction(p, &sent, state).await;
        Ok(TransactionSendResult { send: sent, state })
    }
}

impl Producer {
    /// Cancels a scheduled message before it is due, with the recall handle its send
    /// returned ([`SendResult::recall_handle`]).
    pub async fn recall(&self, topic: &str, handle: &str) -> Result<()> {
        let p = &self.0;
        let h = RecallHandle::decode(handle).map_err(ClientError::Invalid)?;
        let route = p.instance.route(topic).await?;
        let addr = route
            .addr(&h.broker_name)
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.to_owned(),
                reason: format!(
                    "broker {} of the recall handle is not in the route",
                    h.broker_name
                ),
            })?
            .to_owned();
        let ext = RecallMessageRequestHeader {
            producer_group: Some(p.group.clone()),
            topic: topic.to_owned(),
            recall_handle: handle.to_owned(),
        }
        .to_ext();
        p.instance
            .call(&addr, RequestCode::RecallMessage, ext, Default::default())
            .await?;
        Ok(())
    }
}

/// Tells the half message's broker the outcome (a failure only means the broker checks back).
async fn end_transaction(p: &Inner, sent: &SendResult, state: TransactionState) {
    let Ok((_, offset)) = parse_offset_msg_id(&sent.offset_msg_id) else {
        tracing::warn!(id = %sent.offset_msg_id, "unreadable offset id; the broker will check back");
        return;
    };
    let Some(addr) = p.instance.addr_of(&sent.queue.broker_name) else {
        tracing::warn!(broker = %sent.queue.broker_name, "no address; the broker will check back");
        return;
    };
    let h = EndTransactionRequestHeader {
        producer_group: Some(p.group.clone()),
        tran_state_table_offset: Some(sent.queue_offset),
        commit_log_offset: offset,
        commit_or_rollback: state.wire(),
        from_transaction_check: Some(false),
        msg_id: Some(sent.msg_id.clone()),
        transaction_id: Some(sent.msg_id.clone()),
        topic: Some(sent.queue.topic.clone()),
    };
    let r = p
        .instance
        .call(
            &addr,
            RequestCode::EndTransaction,
            h.to_ext(),
            Default::default(),
        )
        .await;
    if let Err(e) = r {
        tracing::warn!(%addr, error = %e, "END_TRANSACTION failed; the broker will check back");
    }
}

/// Answers a CHECK_TRANSACTION_STATE that arrived on `conn`: asks the listener on a blocking
/// thread and sends END_TRANSACTION back on the same connection.
pub(crate) fn answer_check(
    conn: Arc<Connection>,
    req: &RemotingCommand,
    listener: Arc<dyn TransactionListener>,
    group: String,
    serialize: SerializeType,
) -> Result<()> {
    let addr = conn.peer().to_string();
    let h = CheckTransactionStateRequestHeader::from_ext(&req.ext)
        .map_err(|e| ClientError::decode(&addr, e))?;
    let msg = MessageExt::decode(&req.body, "", &addr)?;
    tokio::spawn(async move {
        let m = msg.clone();
        let state = tokio::task::spawn_blocking(move || listener.check(&m))
            .await
            .unwrap_or(TransactionState::Unknown);
        let uniq = msg
            .property(properties::UNIQ_KEY)
            .map_or_else(|| msg.msg_id.clone(), str::to_owned);
        let end = EndTransactionRequestHeader {
            producer_group: Some(group),
            tran_state_table_offset: Some(h.tran_state_table_offset),
            commit_log_offset: h.commit_log_offset,
            commit_or_rollback: state.wire(),
            from_transaction_check: Some(true),
            msg_id: Some(uniq),
            transaction_id: h.transaction_id.clone(),
            topic: h.topic.clone(),
        };
        let mut cmd = RemotingCommand::request(
            RequestCode::EndTransaction.as_i32(),
            end.to_ext(),
            Default::default(),
        );
        cmd.serialize = serialize;
        if let Err(e) = conn.oneway(cmd).await {
            tracing::warn!(%addr, error = %e, "check-back answer not sent");
        }
    });
    Ok(())
}
