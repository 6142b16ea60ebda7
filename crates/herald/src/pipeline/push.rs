//! What a `web_push` attempt needs from the database: the subscriptions of
//! its recipients before sending, and deleting the ones found gone after.

use herald_channels::{Outcome, PushSubscription, Report, web_push};
use herald_store::queue::Job;

use crate::state::AppState;

/// At most this many subscriptions receive one delivery.
const MAX_SUBSCRIPTIONS: i64 = 1000;

/// The subscriptions of the job's recipients: `to` (a test send's recipient)
/// when given, else the integration's `to`. Empty for every other channel.
pub async fn subscriptions(
    state: &AppState,
    job: &Job,
    config: &str,
    to: Option<&str>,
) -> Result<Vec<PushSubscription>, Outcome> {
    if job.channel != web_push::KIND {
        return Ok(Vec::new());
    }
    // `to` is not a secret field, so the stored config is read as it is.
    let config: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    let recipients = match (&job.recipient_id, to) {
        // A person's delivery reaches that person's browsers.
        (Some(person), None) => vec![person.clone()],
        _ => web_push::recipients(&config, to),
    };
    let rows =
        state.db.list_push_subscriptions(&job.tenant_id, &recipients, None, MAX_SUBSCRIPTIONS).await.map_err(|e| {
            Outcome::Retry {
                status_code: None,
                after: None,
                error: format!("could not load push subscriptions: {e}"),
                detail: None,
            }
        })?;
    Ok(rows.into_iter().map(|r| PushSubscription { endpoint: r.endpoint, p256dh: r.p256dh, auth: r.auth }).collect())
}

/// Deletes the subscriptions a push service answered 404 or 410 for.
pub async fn forget_gone(state: &AppState, job: &Job, report: &Report) {
    for endpoint in report.gone_subscriptions() {
        // The endpoint is a capability: it is never logged.
        match state.db.delete_push_subscription_by_endpoint(&job.tenant_id, &endpoint).await {
            Ok(_) => tracing::info!(delivery_id = %job.delivery_id, "push subscription gone; removed"),
            Err(e) => {
                tracing::warn!(delivery_id = %job.delivery_id, error = ?e, "could not remove a gone push subscription")
            }
        }
    }
}
