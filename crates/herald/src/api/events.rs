//! `POST /v1/events`, `POST /v1/events/batch`, `GET /v1/events[/{id}]`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use herald_core::{EventId, EventType, Severity};
use herald_store::events::{EventFilter, EventRow, Inserted, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    deliveries::DeliveryOut,
    page::{self, Page},
};
use crate::{
    auth::{SendAuth, TenantAuth},
    error::{ApiError, ApiResult},
    extract::{ApiQuery, JsonBytes, parse_json},
    pipeline::ingest::IngestError,
    state::{AppState, now_ms, rfc3339},
};

/// The most events one batch request may carry.
const MAX_BATCH: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(post_event).get(list_events))
        .route("/v1/events/batch", post(post_batch))
        .route("/v1/events/{id}", get(get_event))
}

/// An event as a client sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    #[serde(rename = "type")]
    event_type: String,
    /// Kept as the client's text: an event without an idempotency key is
    /// stored without building a JSON tree of its data.
    #[serde(default)]
    data: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    deliver_at: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Recipient ids (the app's own) the event is for.
    #[serde(default)]
    recipients: Vec<String>,
}

/// The most recipients one event may name (audiences reach more).
const MAX_RECIPIENTS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    events: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct EventOut {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    severity: String,
    data: serde_json::Value,
    idempotency_key: Option<String>,
    deliver_at: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recipients: Vec<String>,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<Vec<DeliveryOut>>,
}

impl From<EventRow> for EventOut {
    fn from(r: EventRow) -> Self {
        Self {
            id: r.id,
            event_type: r.event_type,
            severity: r.severity,
            data: serde_json::from_str(&r.data).unwrap_or_default(),
            idempotency_key: r.idempotency_key,
            deliver_at: r.deliver_at.map(rfc3339),
            recipients: r.recipients.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default(),
            created_at: rfc3339(r.created_at),
            deliveries: None,
        }
    }
}

/// Validates one event; `prefix` locates it in a batch (`events[3].`).
fn build_event(tenant: &str, mut input: EventIn, header_key: Option<&str>, prefix: &str) -> ApiResult<NewEvent> {
    let field = |f: &str| format!("{prefix}{f}");
    let event_type =
        EventType::parse(&input.event_type).map_err(|e| ApiError::invalid(field("type"), e.to_string()))?;
    let raw = input.data.take();
    let raw = raw.as_ref().map_or("{}", |r| r.get());
    if !raw.starts_with('{') {
        return Err(ApiError::invalid(field("data"), "must be a JSON object"));
    }
    let deliver_at = input
        .deliver_at
        .as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| ApiError::invalid(field("deliver_at"), format!("`{s}` is not an RFC 3339 time: {e}")))
        })
        .transpose()?;
    let key = match (header_key, input.idempotency_key.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::invalid(
                field("idempotency_key"),
                "differs from the Idempotency-Key header; send one or make them equal",
            ));
        }
        (Some(k), _) | (None, Some(k)) => Some(k),
        (None, None) => None,
    };
    if let Some(k) = key
        && (k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(ApiError::invalid(field("idempotency_key"), "must be 1 to 255 printable ASCII characters"));
    }
    if input.recipients.len() > MAX_RECIPIENTS {
        return Err(ApiError::invalid(field("recipients"), format!("at most {MAX_RECIPIENTS} recipients per event")));
    }
    let mut recipients: Vec<String> = Vec::with_capacity(input.recipients.len());
    for (i, id) in input.recipients.into_iter().enumerate() {
        if id.is_empty() || id.chars().count() > 200 || id.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                field(&format!("recipients[{i}]")),
                "a recipient id is 1 to 200 characters without control characters",
            ));
        }
        if !recipients.contains(&id) {
            recipients.push(id);
        }
    }
    let severity = input.severity.unwrap_or_default();
    // With a key, the data is stored in canonical form (object keys sorted)
    // and hashed with the rest of what is stored, so a replay with reordered
    // fields is the same request and a changed one is not.
    let (data, request_hash) = match key {
        None => (raw.to_owned(), String::new()),
        Some(_) => {
            let data = serde_json::from_str::<serde_json::Value>(raw)
                .map_err(|e| ApiError::invalid(field("data"), e.to_string()))?
                .to_string();
            let mut hash = Sha256::new();
            for part in [event_type.as_str(), severity.as_str(), input.deliver_at.as_deref().unwrap_or_default(), &data]
            {
                hash.update(part.as_bytes());
                hash.update([0]);
            }
            // Only when present, so keys stored before recipients existed still replay.
            for id in &recipients {
                hash.update(b"r");
                hash.update(id.as_bytes());
                hash.update([0]);
            }
            (data, hex::encode(hash.finalize()))
        }
    };
    Ok(NewEvent {
        id: EventId::new().into_string(),
        tenant_id: tenant.to_owned(),
        event_type: event_type.as_str().to_owned(),
        severity: severity.as_str().to_owned(),
        severity_given: input.severity.is_some(),
        data,
        idempotency_key: key.map(str::to_owned),
        request_hash,
        deliver_at,
        created_at: now_ms(),
        recipients,
    })
}

/// `202 {"id", "status": "accepted"}`, written directly: this is the
/// hottest answer Herald gives. Ids are `evt_` and hex, nothing to escape.
fn accepted(id: &str) -> Response {
    let body = format!(r#"{{"id":"{id}","status":"accepted"}}"#);
    (StatusCode::ACCEPTED, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ingest_error(e: IngestError) -> ApiError {
    match e {
        IngestError::Closed => {
            ApiError::Unavailable("the server is shutting down; retry on another node or later".into())
        }
        IngestError::Store(e) => ApiError::Internal(anyhow::anyhow!("{e:#}")),
    }
}

async fn post_event(
    State(state): State<AppState>,
    SendAuth(caller): SendAuth,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let input: EventIn = parse_json(&body)?;
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?),
        None => None,
    };
    let event = build_event(&caller.tenant, input, header_key, "")?;
    let result = state.ingest.submit(vec![event]).await.map_err(ingest_error)?;
    match result.into_iter().next().expect("one result per event") {
        Inserted::Created(id) => Ok(accepted(&id)),
        Inserted::Replay(id) => {
            let mut res = accepted(&id);
            res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(res)
        }
        Inserted::Conflict(id) => Err(ApiError::Unprocessable {
            field: Some("idempotency_key".into()),
            detail: format!("this idempotency key was already used for event {id} with a different body"),
        }),
    }
}

async fn post_batch(
    State(state): State<AppState>,
    SendAuth(caller): SendAuth,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let batch: BatchIn = parse_json(&body)?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid("events", format!("must hold 1 to {MAX_BATCH} events")));
    }
    // Validate every item first: a batch with one bad event stores nothing.
    let mut events = Vec::with_capacity(batch.events.len());
    for (i, raw) in batch.events.into_iter().enumerate() {
        let prefix = format!("events[{i}].");
        let input: EventIn = parse_json(raw.to_string().as_bytes()).map_err(|e| match e {
            ApiError::Invalid { field, detail } => {
                ApiError::Invalid { field: Some(format!("{prefix}{}", field.unwrap_or_default())), detail }
            }
            other => other,
        })?;
        events.push(build_event(&caller.tenant, input, None, &prefix)?);
    }
    let results = state.ingest.submit(events).await.map_err(ingest_error)?;
    let items: Vec<serde_json::Value> = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Inserted::Created(id) => json!({"index": index, "id": id, "status": "accepted"}),
            Inserted::Replay(id) => json!({"index": index, "id": id, "status": "duplicate"}),
            Inserted::Conflict(id) => json!({
                "index": index, "id": id, "status": "conflict",
                "error": "this idempotency key was already used with a different body"
            }),
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({"results": items}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list_events(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<EventOut>>> {
    let limit = page::limit(q.limit.as_deref())?;
    let filter = EventFilter {
        event_type: q.event_type,
        since: page::time_param("since", q.since.as_deref())?,
        until: page::time_param("until", q.until.as_deref())?,
        before_id: q.cursor,
        limit: limit + 1,
    };
    let rows = state.db.list_events(&caller.tenant, &filter).await?;
    Ok(Json(page::page(rows, limit, |r| r.id.clone(), EventOut::from)))
}

async fn get_event(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<EventOut>> {
    let row = state.db.get_event(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found("event", &id))?;
    let filter = herald_store::deliveries::DeliveryFilter { event_id: Some(id), limit: 1000, ..Default::default() };
    let deliveries = state.db.list_deliveries(&caller.tenant, &filter).await?;
    let mut out = EventOut::from(row);
    out.deliveries = Some(deliveries.into_iter().map(DeliveryOut::from).collect());
    Ok(Json(out))
}
