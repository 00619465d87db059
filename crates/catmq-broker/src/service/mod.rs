//! Request handling: one function per request code, over the shared [`State`].

mod admin;
mod consumer;
mod pull;
mod query;
mod send;
mod sendback;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use catmq_protocol::{ProtocolError, RemotingCommand, RequestCode, ResponseCode, SerializeType};
use catmq_remoting::{Connection, Handled, Handler};

use crate::state::{lock, State};

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
