//! CONSUMER_SEND_MSG_BACK (36): a message the consumer failed to process goes to the group's
//! retry topic with a delay (level 3 + reconsume times unless the client chose one), or to its
//! dead-letter topic once it was retried `maxReconsumeTimes` times.

use std::sync::Arc;

use catmq_common::msgid::offset_msg_id;
use catmq_common::{properties as props, RecordView};
use catmq_protocol::headers::ConsumerSendMsgBackRequestHeader;
use catmq_protocol::{RemotingCommand, ResponseCode};
use catmq_remoting::Connection;

use super::{malformed, ok, refuse, Answer};
use crate::state::{lock, now_ms, State};
use crate::timer;
use crate::topics::{dlq_topic, retry_topic};

/// The stored record at a physical offset.
fn original(st: &State, req: &RemotingCommand, offset: i64) -> Answer<bytes::Bytes> {
    let record = u64::try_from(offset)
        .ok()
        .map(|o| st.store.read_at(o))
        .transpose()
        .map_err(|e| super::store_error_response(req, &e))?
        .flatten();
    record.ok_or_else(|| {
        refuse(
            req,
            ResponseCode::SystemError,
            format!("look message by offset failed, {offset}"),
        )
    })
}

pub(crate) fn send_back(st: &Arc<State>, _conn: &Arc<Connection>, req: &RemotingCommand) -> Answer {
    let h = ConsumerSendMsgBackRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let sys_err = |e: crate::BrokerError| refuse(req, ResponseCode::SystemError, e.to_string());
    let group = super::find_group(st, req, &h.group)?;
    let record = original(st, req, h.offset)?;
    let view = RecordView::parse(&record).map_err(|e| {
        refuse(
            req,
            ResponseCode::SystemError,
            format!("stored message unreadable: {e}"),
        )
    })?;
    let mut msg = view.to_new_message();
    let origin_id = h
        .origin_msg_id
        .clone()
        .filter(|id| !id.is_empty())
        .or_else(|| props::get(&msg.properties, props::UNIQ_KEY).map(str::to_owned))
        .unwrap_or_else(|| offset_msg_id(view.store_host(), view.physical_offset()));
    let retry_of = props::get(&msg.properties, props::RETRY_TOPIC)
        .map(str::to_owned)
        .unwrap_or_else(|| msg.topic.clone());
    msg.properties = props::update(
        &msg.properties,
        &[
            (props::RETRY_TOPIC, &retry_of),
            (props::ORIGIN_MESSAGE_ID, &origin_id),
        ],
        &[props::DELAY, props::REAL_TOPIC, props::REAL_QID],
    );
    let max = h.max_reconsume_times.unwrap_or(group.retry_max_times);
    let dead = view.reconsume_times() >= max || h.delay_level < 0;
    let (topic, queues) = if dead {
        (dlq_topic(&h.group), 1)
    } else {
        (retry_topic(&h.group), group.retry_queue_nums.max(1))
    };
    let (cfg, created) = lock(&st.topics)
        .ensure(&topic, queues, now_ms())
        .map_err(sys_err)?;
    if created {
        st.register_wake.notify_one();
    }
    msg.topic = topic;
    msg.queue_id = st.pick_queue(cfg.write_queue_nums);
    msg.reconsume_times = view.reconsume_times() + 1;
    if dead {
        tracing::info!(group = %h.group, msg = %origin_id, "message moved to the dead-letter topic");
    } else {
        let level = if h.delay_level == 0 {
            3 + view.reconsume_times()
        } else {
            h.delay_level
        };
        msg.properties = props::update(&msg.properties, &[(props::DELAY, &level.to_string())], &[]);
        timer::defer_if_scheduled(st, &mut msg)
            .map_err(|e| super::refuse(req, ResponseCode::SystemError, e.0))?;
    }
    st.store
        .append(&msg)
        .map_err(|e| super::store_error_response(req, &e))?;
    st.counters.stored(1);
    Ok(ok(req).into())
}
