//! The `in_app` channel when it goes through the queue (an event scheduled
//! for later): the worker writes the inbox item and publishes it live.
//! Items of events due at once are written at ingest (see `people`).

use herald_channels::{Outcome, Severity};
use herald_store::queue::Job;

use super::{
    attempt::{content_for, recipient_of},
    people::{self, EventFields},
};
use crate::state::AppState;

pub const KIND: &str = "in_app";

/// Writes the job's inbox item (once: a second run of the same delivery
/// finds it written) and publishes it.
pub async fn deliver(state: &AppState, job: &Job) -> Outcome {
    let Some(recipient_id) = job.recipient_id.as_deref() else {
        return Outcome::Failed {
            status_code: None,
            error: "an in_app delivery needs a recipient".into(),
            detail: None,
        };
    };
    let recipient = match recipient_of(state, job).await {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let data: serde_json::Value = serde_json::from_str(&job.data).unwrap_or_default();
    let severity = Severity::from_stored(&job.severity);
    let content = match content_for(state, job, &data, severity, recipient.as_ref()).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let fields = EventFields {
        tenant_id: &job.tenant_id,
        event_id: &job.event_id,
        event_type: &job.event_type,
        severity: &job.severity,
        data: data.to_string(),
        // A scheduled item is new when it is written, not when its event was accepted.
        created_at: crate::state::now_ms(),
    };
    let item = people::new_item(fields, recipient_id, &job.delivery_id, content);
    match state.db.insert_inbox_item(&item).await {
        Ok(written) => {
            if written {
                state.live.published(std::slice::from_ref(&item));
            }
            Outcome::Delivered { status_code: None, detail: Some(format!("inbox item {}", item.id)) }
        }
        Err(e) => Outcome::Retry {
            status_code: None,
            after: None,
            error: format!("could not write the inbox item: {e}"),
            detail: None,
        },
    }
}
