//! Reading an internal queue (half messages, transaction ops, scheduled messages) in order.

use catmq_common::RecordView;
use catmq_store::{ReadRequest, ReadStatus, StoreError};

use crate::state::State;

/// Records read per store call.
const BATCH: u32 = 256;

/// Calls `each` (queue offset, record) for every record of `topic` queue 0 from `from`, skipping
/// ranges retention removed; returns the offset after the last record seen.
pub(crate) fn scan(
    st: &State,
    topic: &str,
    from: u64,
    mut each: impl FnMut(u64, &RecordView<'_>),
) -> Result<u64, StoreError> {
    let mut offset = from;
    loop {
        let r = st.store.read(&ReadRequest {
            topic,
            queue_id: 0,
            offset,
            max_messages: BATCH,
            max_bytes: 8 << 20,
            tag_codes: None,
        })?;
        match r.status {
            ReadStatus::Found => {}
            ReadStatus::OffsetTooSmall | ReadStatus::NoMatchedMessage if r.next_offset > offset => {
                offset = r.next_offset;
                continue;
            }
            _ => return Ok(offset),
        }
        for rec in &r.messages {
            match RecordView::parse(rec) {
                Ok(v) => {
                    let at = u64::try_from(v.queue_offset()).unwrap_or(offset);
                    each(at, &v);
                    offset = at + 1;
                }
                Err(e) => {
                    tracing::warn!(topic, offset, "unparsable record skipped: {e}");
                    offset += 1;
                }
            }
        }
    }
}
