//! Request handling: one function per request code, over the shared [`State`].

mod admin;
mod consumer;
mod pull;
mod query;
mod reset;
mod send;
mod sendback;
mod timer;
mod txn;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use catmq_protocol::{ProtocolError, RemotingCommand, RequestCode, ResponseCode, SerializeType};
use catmq_remoting::{Connection, Handled, Handler};

use catmq_common::RecordView;
use catmq_protocol::body::SubscriptionGroupConfig;
use catmq_store::{ReadRequest, ReadStatus, StoreError};

use crate::state::{lock, now_ms, State};

pub(crate) use send::store_error_response;

/// A handler's early exit: the error response to send.
pub(crate) type Answer<T = Handled> = Result<T, RemotingCommand>;

/// An error response.
pub(crate) fn refuse(
    req: &RemotingCommand,
    code: ResponseCode,
    remark: impl Into<String>,
) -> RemotingCommand {
    RemotingCommand::error_to(req, code, remark.into())
}

/// A request whose header or body does not parse.
pub(crate) fn malformed(
    req: &RemotingCommand,
) -> impl FnOnce(ProtocolError) -> RemotingCommand + '_ {
    move |e| refuse(req, ResponseCode::SystemError, format!("bad request: {e}"))
}

/// A success response.
pub(crate) fn ok(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, ResponseCode::Success)
}

/// A subscription group's config, created with the defaults when auto-creation is on.
pub(crate) fn find_group(
    st: &State,
    req: &RemotingCommand,
    group: &str,
) -> Answer<SubscriptionGroupConfig> {
    if let Some(e) = crate::topics::group_name_error(group) {
        return Err(refuse(req, ResponseCode::SystemError, e));
    }
    let cfg = lock(&st.groups)
        .find_or_create(group, st.cfg.auto_create_group, now_ms())
        .map_err(|e| refuse(req, ResponseCode::SystemError, e.to_string()))?;
    cfg.ok_or_else(|| {
        refuse(
            req,
            ResponseCode::SubscriptionGroupNotExist,
            format!("subscription group not exist, {group}"),
        )
    })
}

/// Store time (ms) of the message at `offset` of a queue, if it is there.
pub(crate) fn store_time_at(
    st: &State,
    topic: &str,
    queue: i32,
    offset: u64,
) -> Result<Option<i64>, StoreError> {
    let r = st.store.read(&ReadRequest {
        topic,
        queue_id: queue,
        offset,
        max_messages: 1,
        max_bytes: 1,
        tag_codes: None,
    })?;
    if r.status != ReadStatus::Found {
        return Ok(None);
    }
    Ok(r.messages
        .first()
        .and_then(|m| RecordView::parse(m).ok())
        .map(|v| v.store_timestamp()))
}

/// The broker's request handler.
pub(crate) struct Service {
    pub(crate) state: Arc<State>,
}

impl Service {
    fn dispatch(&self, conn: &Arc<Connection>, req: &RemotingCommand) -> Answer {
        let st = &self.state;
        use RequestCode as C;
        let Some(code) = RequestCode::from_i32(req.code) else {
            return Err(not_supported(req));
        };
        match code {
            C::SendMessage | C::SendMessageV2 | C::SendBatchMessage => send::send(st, conn, req),
            C::PullMessage => pull::pull(st, req),
            C::HeartBeat => consumer::heartbeat(st, conn, req),
            C::UnregisterClient => consumer::unregister(st, conn, req),
            C::GetConsumerListByGroup => consumer::consumer_list(st, req),
            C::QueryConsumerOffset => consumer::query_offset(st, req),
            C::UpdateConsumerOffset => consumer::update_offset(st, req),
            C::GetMaxOffset | C::GetMinOffset => consumer::queue_offset(st, req, code),
            C::GetEarliestMsgStoretime => consumer::earliest_time(st, req),
            C::SearchOffsetByTimestamp => consumer::search_offset(st, req),
            C::LockBatchMq => consumer::lock_batch(st, req),
            C::UnlockBatchMq => consumer::unlock_batch(st, req),
            C::ConsumerSendMsgBack => sendback::send_back(st, conn, req),
            C::ViewMessageById => query::view(st, req),
            C::QueryMessage => query::query(st, req),
            C::InvokeBrokerToResetOffset => reset::reset_offset(st, req),
            C::EndTransaction => txn::end_transaction(st, req),
            C::RecallMessage => timer::recall(st, req),
            C::GetTimerMetrics => timer::metrics(st, req),
            C::CatmqQueryTimerMessage => timer::query(st, req),
            _ => admin::dispatch(st, req, code),
        }
    }
}

pub(crate) fn not_supported(req: &RemotingCommand) -> RemotingCommand {
    refuse(
        req,
        ResponseCode::RequestCodeNotSupported,
        format!(
            "request code {} is not supported by the CatMQ broker",
            req.code
        ),
    )
}

impl Handler for Service {
    fn handle(&self, conn: &Arc<Connection>, req: RemotingCommand) -> Handled {
        let counter = match req.serialize {
            SerializeType::Json => &self.state.counters.json_requests,
            SerializeType::RocketMq => &self.state.counters.binary_requests,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let oneway = req.is_oneway();
        let handled = self.dispatch(conn, &req).unwrap_or_else(Handled::from);
        if !oneway {
            return handled;
        }
        match handled {
            Handled::Later(fut) => Handled::Later(Box::pin(async move {
                fut.await;
                None
            })),
            _ => Handled::NoReply,
        }
    }

    fn closed(&self, conn: &Arc<Connection>) {
        let changed = lock(&self.state.clients).connection_closed(conn.id());
        for g in changed {
            self.state.notify_ids_changed(&g);
        }
    }
}
