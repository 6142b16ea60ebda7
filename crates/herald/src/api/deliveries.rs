//! `GET /v1/deliveries[/{id}]` and `POST /v1/deliveries/{id}/retry`: the history.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use herald_store::deliveries::{AttemptRow, DeliveryFilter, DeliveryRow};
use serde::{Deserialize, Serialize};

use super::page::{self, Page};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::ApiQuery,
    state::{AppState, now_ms, rfc3339},
};

const STATUSES: &[&str] = &["pending", "sent", "failed", "skipped", "held", "cancelled"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/deliveries", get(list))
        .route("/v1/deliveries/{id}", get(get_one))
        .route("/v1/deliveries/{id}/retry", post(retry))
}

#[derive(Debug, Serialize)]
pub struct DeliveryOut {
    id: String,
    event_id: String,
    event_type: String,
    /// `null` for `in_app` and for a person's channel with no integration.
    integration_id: Option<String>,
    /// The person, for deliveries to people.
    recipient: Option<String>,
    /// Where a person's delivery goes: their email address, number, chat id.
    address: Option<String>,
    rule_id: Option<String>,
    channel: String,
    status: String,
    /// Attempts made so far (the detail view lists them as `attempts`).
    attempt_count: i64,
    /// When a pending delivery is next tried.
    next_attempt_at: Option<String>,
    /// True while a worker holds it.
    in_flight: bool,
    last_error: Option<String>,
    skip_reason: Option<String>,
    created_at: String,
    updated_at: String,
    sent_at: Option<String>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(r: DeliveryRow) -> Self {
        let pending = r.status == "pending";
        Self {
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            integration_id: r.integration_id,
            recipient: r.recipient_id,
            address: r.address,
            rule_id: r.rule_id,
            channel: r.channel,
            next_attempt_at: pending.then(|| rfc3339(r.due_at)),
            in_flight: pending && r.lease_token.is_some() && r.due_at > now_ms(),
            status: r.status,
            attempt_count: r.attempts,
            last_error: r.last_error,
            skip_reason: r.skip_reason,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            sent_at: r.sent_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize)]
struct AttemptOut {
    attempt: i64,
    at: String,
    duration_ms: i64,
    outcome: String,
    status_code: Option<i64>,
    error: Option<String>,
    response: Option<String>,
}

impl From<AttemptRow> for AttemptOut {
    fn from(a: AttemptRow) -> Self {
        Self {
            attempt: a.attempt,
            at: rfc3339(a.at),
            duration_ms: a.duration_ms,
            outcome: a.outcome,
            status_code: a.status_code,
            error: a.error,
            response: a.response,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    event_id: Option<String>,
    status: Option<String>,
    integration_id: Option<String>,
    recipient: Option<String>,
    channel: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<DeliveryOut>>> {
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::invalid("status", format!("must be one of {}", STATUSES.join(", "))));
    }
    let limit = page::limit(q.limit.as_deref())?;
    let filter = DeliveryFilter {
        event_id: q.event_id,
        status: q.status,
        integration_id: q.integration_id,
        recipient_id: q.recipient,
        channel: q.channel,
        event_type: q.event_type,
        since: page::time_param("since", q.since.as_deref())?,
        until: page::time_param("until", q.until.as_deref())?,
        before_id: q.cursor,
        limit: limit + 1,
    };
    let rows = state.db.list_deliveries(&caller.tenant, &filter).await?;
    Ok(Json(page::page(rows, limit, |r| r.id.clone(), DeliveryOut::from)))
}

async fn get_one(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let row = state.db.get_delivery(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found("delivery", &id))?;
    let attempts: Vec<AttemptOut> =
        state.db.list_attempts(&caller.tenant, &id).await?.into_iter().map(AttemptOut::from).collect();
    let mut out = serde_json::to_value(DeliveryOut::from(row))?;
    out["attempts"] = serde_json::json!(attempts);
    Ok(Json(out))
}

async fn retry(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    match state.db.retry_delivery(&caller.tenant, &id, now_ms()).await? {
        None => Err(ApiError::not_found("delivery", &id)),
        Some(false) => {
            Err(ApiError::Conflict(format!("delivery `{id}` is not failed; only failed deliveries can be retried")))
        }
        Some(true) => {
            state.wake.deliveries_committed();
            let row = state
                .db
                .get_delivery(&caller.tenant, &id)
                .await?
                .ok_or_else(|| ApiError::not_found("delivery", &id))?;
            Ok((StatusCode::ACCEPTED, Json(serde_json::to_value(DeliveryOut::from(row))?)))
        }
    }
}
