//! `/v1/recipients/{id}/push-subscriptions`: the browsers a recipient (the
//! client app's own id) receives Web Push notifications on. The app's
//! backend posts what the browser's `PushSubscription.toJSON()` gave it.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use herald_channels::{PushSubscription, web_push};
use herald_core::id::PushSubscriptionId;
use herald_store::push::PushSubscriptionRow;
use serde::{Deserialize, Serialize};

use super::page::{self, Page};
use crate::{
    auth::{SendAuth, TenantAuth},
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery},
    state::{AppState, now_ms, rfc3339},
};

const MAX_USER_AGENT: usize = 512;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/web-push/public-key", get(public_key))
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

/// The tenant's Web Push key pair lives in its first `web_push` integration
/// (the oldest); every later one is created with the same pair, so all of a
/// tenant's pushes are signed by the key its browsers subscribed with.
async fn tenant_key_holder(
    state: &AppState,
    tenant: &str,
) -> ApiResult<Option<herald_store::integrations::IntegrationRow>> {
    Ok(state.db.all_integrations(tenant).await?.into_iter().find(|row| row.kind == web_push::KIND))
}

/// Fills in the tenant's existing VAPID key pair when a new `web_push`
/// integration does not bring its own.
pub async fn share_tenant_key(state: &AppState, tenant: &str, config: &mut serde_json::Value) -> ApiResult<()> {
    if config.get("vapid_private_key").is_some() {
        return Ok(());
    }
    let Some(holder) = tenant_key_holder(state, tenant).await? else {
        return Ok(());
    };
    let channel = super::integrations::channel_of(state, web_push::KIND)?;
    let stored = super::integrations::opened(state, channel.as_ref(), &holder)?;
    if let (Some(config), Some(key)) = (config.as_object_mut(), stored.get("vapid_private_key")) {
        config.insert("vapid_private_key".into(), key.clone());
        config.remove("vapid_public_key");
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct PublicKeyOut {
    /// base64url of the uncompressed P-256 point: the browser's `applicationServerKey`.
    public_key: String,
    integration_id: String,
}

/// The tenant's VAPID public key, for the client app's
/// `pushManager.subscribe({applicationServerKey})`. Readable with any key of
/// the tenant (it is public by nature).
async fn public_key(State(state): State<AppState>, SendAuth(caller): SendAuth) -> ApiResult<Json<PublicKeyOut>> {
    let holder = tenant_key_holder(&state, &caller.tenant).await?.ok_or_else(|| {
        ApiError::NotFound(
            "no Web Push key pair yet: create a web_push integration (POST /v1/integrations) and one is generated"
                .into(),
        )
    })?;
    let config: serde_json::Value = serde_json::from_str(&holder.config)?;
    let public_key = config["vapid_public_key"].as_str().unwrap_or_default().to_owned();
    Ok(Json(PublicKeyOut { public_key, integration_id: holder.id }))
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
