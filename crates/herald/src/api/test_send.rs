//! `POST /v1/integrations/{id}/test`: sends a real test message now, recorded
//! in the history like any delivery, and answers how it went.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Path, State},
};
use herald_core::{DeliveryId, EventId};
use herald_store::{deliveries::NewDelivery, events::NewEvent, queue::Job};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{JsonBytes, parse_json},
    pipeline::attempt::{self, TargetCache},
    state::{AppState, now_ms},
};

/// Test sends allowed per tenant per minute.
const PER_MINUTE: usize = 10;
/// The event type of a test send.
const TEST_EVENT_TYPE: &str = "herald.test";

/// A sliding-window limit on test sends per tenant.
#[derive(Default)]
pub struct TestLimiter(Mutex<std::collections::HashMap<String, VecDeque<Instant>>>);

impl TestLimiter {
    fn allow(&self, tenant: &str) -> bool {
        let mut map = self.0.lock().expect("limiter lock");
        let window = map.entry(tenant.to_owned()).or_default();
        while window.front().is_some_and(|t| t.elapsed() > Duration::from_secs(60)) {
            window.pop_front();
        }
        if window.len() >= PER_MINUTE {
            return false;
        }
        window.push_back(Instant::now());
        true
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    /// An address, chat or number to try instead of the configured one.
    recipient: Option<String>,
}

pub async fn test(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Json<Value>> {
    let input: TestIn = if body.iter().all(u8::is_ascii_whitespace) { TestIn::default() } else { parse_json(&body)? };
    let row =
        state.db.get_integration(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found("integration", &id))?;
    if let Some(to) = &input.recipient {
        let channel = state.channels.get(&row.kind).ok_or_else(|| ApiError::invalid("type", "unknown type"))?;
        channel.check_recipient(to).map_err(|message| ApiError::invalid("recipient", message))?;
    }
    if !state.test_limiter.allow(&caller.tenant) {
        return Err(ApiError::TooManyRequests(format!("at most {PER_MINUTE} test sends per minute")));
    }
    let now = now_ms();
    let data = json!({"message": "This is a test message from Herald.", "integration": row.name});
    let event = NewEvent {
        id: EventId::new().into_string(),
        tenant_id: caller.tenant.clone(),
        event_type: TEST_EVENT_TYPE.into(),
        severity: "info".into(),
        severity_given: true,
        data: data.to_string(),
        idempotency_key: None,
        request_hash: String::new(),
        deliver_at: None,
        created_at: now,
        recipients: Vec::new(),
    };
    let delivery = NewDelivery {
        id: DeliveryId::new().into_string(),
        tenant_id: caller.tenant.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        integration_id: Some(row.id.clone()),
        recipient_id: None,
        address: input.recipient.clone(),
        rule_id: None,
        channel: row.kind.clone(),
        status: "pending".into(),
        due_at: now,
        skip_reason: None,
        created_at: now,
    };
    let token = uuid::Uuid::new_v4().simple().to_string();
    let lease_until = now + state.config.lease.as_millis() as i64;
    state.db.insert_leased_test(&event, &delivery, &token, lease_until).await?;
    let job = Job {
        delivery_id: delivery.id.clone(),
        tenant_id: caller.tenant.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        severity: event.severity.clone(),
        data: event.data.clone(),
        event_created_at: now,
        integration_id: Some(row.id.clone()),
        recipient_id: None,
        address: input.recipient.clone(),
        channel: row.kind.clone(),
        attempts: 1,
        lease_token: token,
        integration_config: Some(row.config.clone()),
        // A disabled integration can still be tested: that is how one checks it before enabling.
        integration_enabled: Some(true),
        integration_updated_at: Some(row.updated_at),
        integration_failing_since: None,
        is_test: true,
    };
    let mut done = attempt::run(&state, &TargetCache::default(), &job, input.recipient.as_deref()).await;
    // A test is one attempt: it never joins the retry schedule.
    if done.new_status == "pending" {
        done.new_status = "failed".into();
        done.due_at = now_ms();
    }
    state.db.complete(std::slice::from_ref(&done)).await?;
    let success = done.new_status == "sent";
    let message = if success {
        // The status code is an SMTP reply code for email, an HTTP status otherwise.
        let protocol = if row.kind == "email" { "SMTP" } else { "HTTP" };
        format!("test message delivered{}", done.status_code.map(|c| format!(" ({protocol} {c})")).unwrap_or_default())
    } else {
        done.error.clone().unwrap_or_else(|| "the test message was not delivered".into())
    };
    Ok(Json(json!({
        "success": success,
        "message": message,
        "delivery_id": delivery.id,
        "status_code": done.status_code,
        "duration_ms": done.duration_ms,
    })))
}
