//! `/v1/recipients/{id}/push-subscriptions`: the browsers a recipient (the
//! client app's own id) receives Web Push notifications on. The app's
//! backend posts what the browser's `PushSubscription.toJSON()` gave it.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, post},
};
use herald_channels::{PushSubscription, web_push};
use herald_core::id::PushSubscriptionId;
use herald_store::push::PushSubscriptionRow;
use serde::{Deserialize, Serialize};

use super::page::{self, Page};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery},
    state::{AppState, now_ms, rfc3339},
};

const MAX_USER_AGENT: usize = 512;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/recipients/{id}/push-subscriptions", post(subscribe).get(list))
        .route("/v1/recipients/{id}/push-subscriptions/{sub_id}", delete(unsubscribe))
}

/// The browser's `PushSubscription.toJSON()`, plus an optional user agent
/// to tell a person's devices apart.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionIn {
    endpoint: String,
    /// Accepted for the browser's shape; push services report expiry with 404/410.
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<f64>,
    keys: KeysIn,
    #[serde(default)]
    user_agent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysIn {
    p256dh: String,
    auth: String,
}

#[derive(Debug, Serialize)]
struct SubscriptionOut {
    id: String,
    recipient_id: String,
    endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    created_at: String,
}

impl From<PushSubscriptionRow> for SubscriptionOut {
    fn from(row: PushSubscriptionRow) -> Self {
        SubscriptionOut {
            id: row.id,
            recipient_id: row.recipient_id,
            endpoint: row.endpoint,
            user_agent: row.user_agent,
            created_at: rfc3339(row.created_at),
        }
    }
}

fn check_recipient(id: &str) -> ApiResult<()> {
    web_push::check_recipient_id(id).map_err(|message| ApiError::invalid("recipient_id", message))
}

/// Stores a subscription; the same endpoint subscribed again replaces its
/// keys and recipient (200 then, 201 when new).
async fn subscribe(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(recipient): Path<String>,
    ApiJson(input): ApiJson<SubscriptionIn>,
) -> ApiResult<(StatusCode, Json<SubscriptionOut>)> {
    check_recipient(&recipient)?;
    let sub = PushSubscription { endpoint: input.endpoint, p256dh: input.keys.p256dh, auth: input.keys.auth };
    web_push::check_subscription(&sub, &state.channel_ctx.policy)
        .map_err(|(field, message)| ApiError::invalid(field, message))?;
    if let Some(agent) = &input.user_agent
        && (agent.chars().count() > MAX_USER_AGENT || agent.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "user_agent",
            format!("must be at most {MAX_USER_AGENT} characters, without control characters"),
        ));
    }
    let row = PushSubscriptionRow {
        id: PushSubscriptionId::new().into_string(),
        tenant_id: caller.tenant,
        recipient_id: recipient,
        endpoint: sub.endpoint,
        p256dh: sub.p256dh,
        auth: sub.auth,
        user_agent: input.user_agent,
        created_at: now_ms(),
    };
    let stored = state.db.upsert_push_subscription(&row).await?;
    let status = if stored.id == row.id { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored.into())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(recipient): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<SubscriptionOut>>> {
    check_recipient(&recipient)?;
    let limit = page::limit(q.limit.as_deref())?;
    let rows = state.db.list_push_subscriptions(&caller.tenant, &[recipient], q.cursor.as_deref(), limit + 1).await?;
    Ok(Json(page::page(rows, limit, |r| r.id.clone(), SubscriptionOut::from)))
}

async fn unsubscribe(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path((recipient, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    check_recipient(&recipient)?;
    if state.db.delete_push_subscription(&caller.tenant, &recipient, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("push subscription", &id))
    }
}
