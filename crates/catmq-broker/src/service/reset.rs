//! INVOKE_BROKER_TO_RESET_OFFSET (222): moves a group's offsets of a topic to a point in time
//! (or to the end with timestamp -1, or one queue to a given offset), then tells the group's
//! online members with RESET_CONSUMER_CLIENT_OFFSET (220) so they drop what they cached.

use std::sync::Arc;

use catmq_protocol::body::fastjson::{self, MqMap};
use catmq_protocol::body::ResetOffsetBody;
use catmq_protocol::headers::ResetOffsetRequestHeader;
use catmq_protocol::{RemotingCommand, RequestCode, ResponseCode};
use catmq_store::Boundary;

use super::admin::{mq, queue_count};
use super::{malformed, ok, refuse, Answer};
use crate::state::{lock, State};

pub(crate) fn reset_offset(st: &Arc<State>, req: &RemotingCommand) -> Answer {
    let h = ResetOffsetRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let Some(queues) = queue_count(st, &h.topic) else {
        return Err(refuse(
            req,
            ResponseCode::TopicNotExist,
            format!("topic {} does not exist on this broker", h.topic),
        ));
    };
    let force = h.is_force.unwrap_or(true);
    let mut table = MqMap::default();
    for q in 0..queues {
        let target = target_offset(st, &h, q).map_err(|e| super::store_error_response(req, &e))?;
        let current = st.offsets.query(&h.group, &h.topic, q);
        let new = if force || current.is_none_or(|c| target < c) {
            st.offsets.commit(&h.group, &h.topic, q, target);
            target
        } else {
            current.unwrap_or(target)
        };
        table.0.insert(mq(st, &h.topic, q), new);
    }
    let body = fastjson::encode(&ResetOffsetBody {
        offset_table: table,
    });
    notify_members(st, &h, &body);
    Ok(ok(req).with_body(body).into())
}

fn target_offset(
    st: &State,
    h: &ResetOffsetRequestHeader,
    q: i32,
) -> Result<i64, catmq_store::StoreError> {
    if let (Some(offset), Some(queue)) = (h.offset, h.queue_id) {
        if queue == q {
            return Ok(offset.max(0));
        }
    }
    let info = st.store.queue_info(&h.topic, q);
    let max = info.map_or(0, |i| i.max_offset);
    let o = if h.timestamp < 0 {
        max
    } else {
        st.store
            .offset_for_timestamp(&h.topic, q, h.timestamp, Boundary::Lower)?
    };
    Ok(i64::try_from(o).unwrap_or(i64::MAX))
}

fn notify_members(st: &Arc<State>, h: &ResetOffsetRequestHeader, body: &bytes::Bytes) {
    let conns = lock(&st.clients).consumer_connections(&h.group);
    for conn in conns {
        let cmd = RemotingCommand::request(
            RequestCode::ResetConsumerClientOffset.as_i32(),
            h.to_ext(),
            body.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = conn.oneway(cmd).await {
                tracing::debug!(peer = %conn.peer(), "offset reset notification not sent: {e}");
            }
        });
    }
}
