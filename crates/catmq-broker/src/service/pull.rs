//! PULL_MESSAGE (11): store statuses mapped to response codes as in Apache RocketMQ, server-side
//! tag filtering with the group's subscription, offset commits piggy-backed on pulls, and long
//! polling woken by the store's arrival hook.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use catmq_common::tags::tag_code;
use catmq_protocol::body::{perm, MessageModel, SubscriptionGroupConfig, TopicConfig};
use catmq_protocol::headers::{
    PullMessageRequestHeader, PullMessageResponseHeader, PULL_COMMIT_OFFSET, PULL_SUBSCRIPTION,
    PULL_SUSPEND,
};
use catmq_protocol::{RemotingCommand, ResponseCode, SerializeType};
use catmq_remoting::{Handled, Reply};
use catmq_store::{ReadRequest, ReadStatus, StoreError};

use super::{malformed, refuse, Answer};
use crate::state::{lock, State};
use crate::topics::is_hidden_topic;

/// Java's default suspension when the request does not say.
const DEFAULT_SUSPEND_MS: i64 = 15_000;

/// Tag codes to keep (`None`: every message).
type Filter = Option<Vec<i64>>;

/// The tag codes of a TAG expression (`*`, `A || B`); `None` for all tags.
pub(crate) fn parse_tags(expr: &str) -> Filter {
    let expr = expr.trim();
    if expr.is_empty() || expr == "*" {
        return None;
    }
    let codes: Vec<i64> = expr
        .split("||")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| tag_code(Some(t)))
        .collect();
    (!codes.is_empty()).then_some(codes)
}

fn is_tag_expression(t: &str) -> bool {
    t.is_empty() || t.eq_ignore_ascii_case("TAG")
}

/// One pull, resolved.
struct Pull {
    group: String,
    topic: String,
    queue: i32,
    offset: i64,
    max_messages: u32,
    max_bytes: usize,
    filter: Filter,
    topic_sys_flag: i32,
}

/// What a pull found.
struct Outcome {
    code: ResponseCode,
    next: i64,
    min: i64,
    max: i64,
    messages: Vec<Bytes>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Pull {
    fn read(&self, st: &State) -> Result<Outcome, StoreError> {
        let Ok(offset) = u64::try_from(self.offset) else {
            let min = st
                .store
                .queue_info(&self.topic, self.queue)
                .map_or(0, |q| to_i64(q.min_offset));
            return Ok(self.outcome(ResponseCode::PullOffsetMoved, min, min, min, Vec::new()));
        };
        let r = st.store.read(&ReadRequest {
            topic: &self.topic,
            queue_id: self.queue,
            offset,
            max_messages: self.max_messages,
            max_bytes: self.max_bytes,
            tag_codes: self.filter.as_deref(),
        })?;
        use ResponseCode as R;
        let (code, next) = match r.status {
            ReadStatus::Found => (R::Success, r.next_offset),
            ReadStatus::NoMatchedMessage => (R::PullRetryImmediately, r.next_offset),
            ReadStatus::NoMessageInQueue | ReadStatus::NoMatchedQueue if offset == 0 => {
                (R::PullNotFound, 0)
            }
            ReadStatus::NoMessageInQueue | ReadStatus::NoMatchedQueue => (R::PullOffsetMoved, 0),
            ReadStatus::OffsetOverflowOne => (R::PullNotFound, offset),
            ReadStatus::OffsetOverflowBadly => (R::PullOffsetMoved, r.max_offset),
            ReadStatus::OffsetTooSmall => (R::PullOffsetMoved, r.min_offset),
        };
        Ok(self.outcome(
            code,
            to_i64(next),
            to_i64(r.min_offset),
            to_i64(r.max_offset),
            r.messages,
        ))
    }

    fn outcome(
        &self,
        code: ResponseCode,
        next: i64,
        min: i64,
        max: i64,
        messages: Vec<Bytes>,
    ) -> Outcome {
        Outcome {
            code,
            next,
            min,
            max,
            messages,
        }
    }

    /// The response for an outcome (bookkeeping included).
    fn reply(
        &self,
        st: &State,
        opaque: i32,
        ser: SerializeType,
        out: Result<Outcome, StoreError>,
    ) -> Reply {
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                return RemotingCommand::response(opaque, ser, ResponseCode::SystemError)
                    .with_remark(format!("store read failed: {e}"))
                    .into()
            }
        };
        if out.code == ResponseCode::Success {
            st.counters.delivered(&self.group, out.messages.len());
        }
        st.offsets
            .record_pull(&self.group, &self.topic, self.queue, out.next);
        let header = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: out.next,
            min_offset: out.min,
            max_offset: out.max,
            offset_delta: None,
            topic_sys_flag: Some(self.topic_sys_flag),
            group_sys_flag: Some(0),
        };
        let cmd = RemotingCommand::response(opaque, ser, out.code).with_ext(header.to_ext());
        Reply {
            cmd,
            chunks: out.messages,
        }
    }
}

pub(crate) fn pull(st: &Arc<State>, req: &RemotingCommand) -> Answer {
    let h = PullMessageRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    if st.cfg.broker_permission & perm::READ == 0 {
        return Err(refuse(
            req,
            ResponseCode::NoPermission,
            format!(
                "the broker[{}] pulling message is forbidden",
                st.cfg.broker_name
            ),
        ));
    }
    let group = group_config(st, req, &h.consumer_group)?;
    let topic = topic_config(st, req, &h)?;
    let filter = filter(st, req, &h, &group)?;
    if h.sys_flag & PULL_COMMIT_OFFSET != 0 {
        if let Some(o) = h.commit_offset.filter(|o| *o >= 0) {
            st.offsets
                .commit(&h.consumer_group, &h.topic, h.queue_id, o);
        }
    }
    let p = Pull {
        group: h.consumer_group,
        topic: h.topic,
        queue: h.queue_id,
        offset: h.queue_offset,
        max_messages: u32::try_from(h.max_msg_nums)
            .unwrap_or(1)
            .clamp(1, st.cfg.max_pull_messages),
        max_bytes: h
            .max_msg_bytes
            .and_then(|b| usize::try_from(b).ok())
            .filter(|b| *b > 0)
            .map_or(st.cfg.max_pull_bytes, |b| b.min(st.cfg.max_pull_bytes)),
        filter,
        topic_sys_flag: topic.topic_sys_flag,
    };
    let out = p.read(st);
    let suspend = h.sys_flag & PULL_SUSPEND != 0 && st.cfg.long_polling;
    let not_found = matches!(&out, Ok(o) if o.code == ResponseCode::PullNotFound);
    if !(suspend && not_found) {
        return Ok(Handled::Reply(p.reply(st, req.opaque, req.serialize, out)));
    }
    let ms = h
        .suspend_timeout_millis
        .filter(|m| *m > 0)
        .unwrap_or(DEFAULT_SUSPEND_MS);
    let timeout = Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(st.cfg.max_suspend);
    let (opaque, ser, st) = (req.opaque, req.serialize, st.clone());
    Ok(Handled::Later(Box::pin(async move {
        Some(long_poll(&st, &p, timeout, opaque, ser).await)
    })))
}

async fn long_poll(
    st: &State,
    p: &Pull,
    timeout: Duration,
    opaque: i32,
    ser: SerializeType,
) -> Reply {
    let at = u64::try_from(p.offset).unwrap_or(0);
    let arrived = st.waiters.wait(&p.topic, p.queue, at);
    // Registered first, then checked: an append in between has either woken us or is seen here.
    let out = p.read(st);
    if matches!(&out, Ok(o) if o.code != ResponseCode::PullNotFound) {
        return p.reply(st, opaque, ser, out);
    }
    let mut shutdown = st.shutdown.subscribe();
    tokio::select! {
        _ = arrived => {}
        _ = tokio::time::sleep(timeout) => {}
        _ = shutdown.changed() => {}
    }
    let out = p.read(st);
    p.reply(st, opaque, ser, out)
}

fn group_config(st: &State, req: &RemotingCommand, group: &str) -> Answer<SubscriptionGroupConfig> {
    let cfg = super::find_group(st, req, group)?;
    if !cfg.consume_enable {
        return Err(refuse(
            req,
            ResponseCode::NoPermission,
            format!("subscription group no permission, {group}"),
        ));
    }
    Ok(cfg)
}

fn topic_config(
    st: &State,
    req: &RemotingCommand,
    h: &PullMessageRequestHeader,
) -> Answer<TopicConfig> {
    if is_hidden_topic(&h.topic) {
        return Err(refuse(
            req,
            ResponseCode::NoPermission,
            format!(
                "the topic[{}] is internal; its messages are not consumable",
                h.topic
            ),
        ));
    }
    let Some(cfg) = lock(&st.topics).get(&h.topic).cloned() else {
        return Err(refuse(
            req,
            ResponseCode::TopicNotExist,
            format!("topic[{}] not exist, apply first please!", h.topic),
        ));
    };
    if cfg.perm & perm::READ == 0 {
        return Err(refuse(
            req,
            ResponseCode::NoPermission,
            format!("the topic[{}] pulling message is forbidden", h.topic),
        ));
    }
    if h.queue_id < 0 || h.queue_id >= cfg.read_queue_nums {
        return Err(refuse(
            req,
            ResponseCode::SystemError,
            format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                h.queue_id, h.topic, cfg.read_queue_nums
            ),
        ));
    }
    Ok(cfg)
}

fn sql_refused(req: &RemotingCommand) -> RemotingCommand {
    refuse(
        req,
        ResponseCode::SystemError,
        "the broker does not support consumer to filter message by SQL92",
    )
}

/// The tag filter: the request's own expression, or the one the group registered.
fn filter(
    st: &State,
    req: &RemotingCommand,
    h: &PullMessageRequestHeader,
    group: &SubscriptionGroupConfig,
) -> Answer<Filter> {
    if h.sys_flag & PULL_SUBSCRIPTION != 0 {
        if !is_tag_expression(h.expression_type.as_deref().unwrap_or("")) {
            return Err(sql_refused(req));
        }
        return Ok(parse_tags(h.subscription.as_deref().unwrap_or("*")));
    }
    let clients = lock(&st.clients);
    let Some(info) = clients.consumer_group(&h.consumer_group) else {
        return Err(refuse(
            req,
            ResponseCode::SubscriptionNotExist,
            format!("the consumer's group info not exist: {}", h.consumer_group),
        ));
    };
    if info.message_model == MessageModel::Broadcasting && !group.consume_broadcast_enable {
        return Err(refuse(
            req,
            ResponseCode::NoPermission,
            format!(
                "the consumer group[{}] can not consume by broadcast way",
                h.consumer_group
            ),
        ));
    }
    let Some(sub) = info.subscriptions.get(&h.topic) else {
        return Err(refuse(
            req,
            ResponseCode::SubscriptionNotExist,
            format!(
                "the consumer's subscription not exist: {} on {}",
                h.consumer_group, h.topic
            ),
        ));
    };
    if sub.sub_version < h.sub_version.unwrap_or(0) {
        return Err(refuse(
            req,
            ResponseCode::SubscriptionNotLatest,
            "the consumer's subscription not latest",
        ));
    }
    if !is_tag_expression(&sub.expression_type) {
        return Err(sql_refused(req));
    }
    Ok(match parse_tags(&sub.sub_string) {
        Some(_) if !sub.code_set.is_empty() => {
            Some(sub.code_set.iter().map(|c| i64::from(*c)).collect())
        }
        f => f,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions() {
        assert_eq!(parse_tags("*"), None);
        assert_eq!(parse_tags(" "), None);
        assert_eq!(
            parse_tags("TagA || TagB"),
            Some(vec![tag_code(Some("TagA")), tag_code(Some("TagB"))])
        );
        assert_eq!(parse_tags("||"), None);
    }
}
