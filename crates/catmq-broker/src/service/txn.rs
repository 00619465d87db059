//! END_TRANSACTION (37): a producer's outcome for a half message.

use catmq_common::{properties as props, RecordView};
use catmq_protocol::headers::{outcome, EndTransactionRequestHeader};
use catmq_protocol::{RemotingCommand, ResponseCode};

use super::{malformed, ok, refuse, Answer};
use crate::state::State;
use crate::txn::{self, Op, Resolution};

pub(crate) fn end_transaction(st: &State, req: &RemotingCommand) -> Answer {
    let h = EndTransactionRequestHeader::from_ext(&req.ext).map_err(malformed(req))?;
    let op = match h.commit_or_rollback {
        outcome::COMMIT => Op::Commit,
        outcome::ROLLBACK => Op::Rollback,
        outcome::UNKNOWN => {
            tracing::debug!(
                offset = h.commit_log_offset,
                from_check = h.from_transaction_check.unwrap_or(false),
                "transaction state unknown; the broker will check back"
            );
            return Ok(ok(req).into());
        }
        other => {
            return Err(refuse(
                req,
                ResponseCode::SystemError,
                format!("commitOrRollback {other} is not 0, 8 or 12"),
            ))
        }
    };
    let phys = u64::try_from(h.commit_log_offset).map_err(|_| not_found(req, &h))?;
    let rec = txn::half_at(st, phys)
        .map_err(|e| refuse(req, ResponseCode::SystemError, e.to_string()))?
        .ok_or_else(|| not_found(req, &h))?;
    let view = RecordView::parse(&rec).map_err(|_| not_found(req, &h))?;
    check_matches(req, &h, &view)?;
    match txn::resolve(st, &view, op) {
        Ok(Resolution::Done) => Ok(ok(req).into()),
        Ok(Resolution::AlreadyResolved) => {
            tracing::debug!(
                key = view.queue_offset(),
                ?op,
                "END_TRANSACTION for a transaction already resolved: ignored"
            );
            Ok(ok(req)
                .with_remark("the transaction was already resolved")
                .into())
        }
        Err(e) => Err(refuse(req, ResponseCode::SystemError, e)),
    }
}

fn not_found(req: &RemotingCommand, h: &EndTransactionRequestHeader) -> RemotingCommand {
    refuse(
        req,
        ResponseCode::SystemError,
        format!(
            "Find prepared transaction message failed: no half message at commit log offset {}",
            h.commit_log_offset
        ),
    )
}

/// The cross-checks of Apache RocketMQ: the producer group and the half queue offset must be
/// the half message's.
fn check_matches(
    req: &RemotingCommand,
    h: &EndTransactionRequestHeader,
    view: &RecordView<'_>,
) -> Answer<()> {
    let pgroup = view
        .properties()
        .and_then(|p| props::get(p, props::PGROUP))
        .unwrap_or_default();
    if let Some(g) = h.producer_group.as_deref() {
        if !g.is_empty() && !pgroup.is_empty() && g != pgroup {
            return Err(refuse(
                req,
                ResponseCode::SystemError,
                format!("The producer group wrong: {g}, the half message's is {pgroup}"),
            ));
        }
    }
    if let Some(t) = h.tran_state_table_offset {
        if t != view.queue_offset() {
            return Err(refuse(
                req,
                ResponseCode::SystemError,
                format!(
                    "The transaction state table offset wrong: {t}, the half message's is {}",
                    view.queue_offset()
                ),
            ));
        }
    }
    Ok(())
}
