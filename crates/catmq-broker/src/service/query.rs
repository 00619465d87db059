//! VIEW_MESSAGE_BY_ID (33) and QUERY_MESSAGE (12).

use bytes::Bytes;
use catmq_protocol::headers::{
    QueryMessageRequestHeader, QueryMessageResponseHeader, ViewMessageRequestHeader,
};
use catmq_protocol::{RemotingCommand, ResponseCode};
use catmq_remoting::{Handled, Reply};

use super::{malformed, ok, refuse, Answer};
use crate::state::State;

pub(crate) fn view(st: &State, req: &RemotingCommand) -> Answer {
    let h = ViewMessageRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let found = match u64::try_from(h.offset) {
        Ok(o) => st
            .store
            .read_at(o)
            .map_err(|e| super::store_error_response(req, &e))?,
        Err(_) => None,
    };
    match found {
        Some(record) => Ok(ok(req).with_body(record).into()),
        None => Err(refuse(
            req,
            ResponseCode::SystemError,
            format!("can not find message by the offset, {}", h.offset),
        )),
    }
}

pub(crate) fn query(st: &State, req: &RemotingCommand) -> Answer {
    let h = QueryMessageRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let limit = usize::try_from(h.max_num)
        .unwrap_or(0)
        .clamp(1, st.cfg.max_query_messages);
    let end = if h.end_timestamp <= 0 {
        i64::MAX
    } else {
        h.end_timestamp
    };
    let found: Vec<Bytes> = st
        .store
        .query_by_key(&h.topic, &h.key, h.begin_timestamp, end, limit)
        .map_err(|e| super::store_error_response(req, &e))?;
    if found.is_empty() {
        return Err(refuse(
            req,
            ResponseCode::QueryNotFound,
            "can not find message, maybe time range not correct",
        ));
    }
    let stats = st.store.stats();
    let header = QueryMessageResponseHeader {
        index_last_update_timestamp: crate::state::now_ms(),
        index_last_update_phyoffset: i64::try_from(stats.log_end).unwrap_or(i64::MAX),
    };
    Ok(Handled::Reply(Reply {
        cmd: ok(req).with_ext(header.to_ext()),
        chunks: found,
    }))
}
