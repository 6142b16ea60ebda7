//! Administration: tenants (admin token only) and a tenant's API keys.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, post},
};
use herald_core::KeyId;
use herald_store::tenants::{ApiKeyRow, TenantRow};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::{AdminAuth, Scope, TenantAuth},
    error::{ApiError, ApiResult},
    extract::ApiJson,
    secrets,
    state::{AppState, now_ms, rfc3339},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/api-keys", post(create_key).get(list_keys))
        .route("/v1/api-keys/{id}", delete(delete_key))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantIn {
    id: String,
    name: String,
}

fn tenant_out(t: &TenantRow) -> Value {
    json!({"id": t.id, "name": t.name, "created_at": rfc3339(t.created_at)})
}

async fn create_tenant(
    State(state): State<AppState>,
    _: AdminAuth,
    ApiJson(input): ApiJson<TenantIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let slug_ok = (1..=64).contains(&input.id.len())
        && input.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && input.id.as_bytes()[0].is_ascii_alphanumeric();
    if !slug_ok {
        return Err(ApiError::invalid(
            "id",
            "must be 1 to 64 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit",
        ));
    }
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    let row = TenantRow { id: input.id, name: input.name, created_at: now_ms() };
    if !state.db.create_tenant(&row).await? {
        return Err(ApiError::Conflict(format!("tenant `{}` already exists", row.id)));
    }
    state.tenants.write().expect("tenant set lock").insert(row.id.clone());
    Ok((StatusCode::CREATED, Json(tenant_out(&row))))
}

async fn list_tenants(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<Value>> {
    let rows = state.db.list_tenants().await?;
    Ok(Json(json!({"data": rows.iter().map(tenant_out).collect::<Vec<_>>(), "next_cursor": null})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyIn {
    name: String,
    scope: String,
}

fn key_out(k: &ApiKeyRow) -> Value {
    json!({"id": k.id, "name": k.name, "scope": k.scope, "prefix": k.key_prefix, "created_at": rfc3339(k.created_at)})
}

async fn create_key(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiJson(input): ApiJson<KeyIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let scope = Scope::parse(&input.scope).ok_or_else(|| ApiError::invalid("scope", "must be `full` or `send`"))?;
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    let key = secrets::random_token("hk_");
    let row = ApiKeyRow {
        id: KeyId::new().into_string(),
        tenant_id: caller.tenant,
        name: input.name,
        scope: scope.as_str().to_owned(),
        key_prefix: key[..10].to_owned(),
        created_at: now_ms(),
    };
    state.db.create_api_key(&row, &state.key.api_key_hash(&key)).await?;
    let mut body = key_out(&row);
    // The only time the key is ever shown.
    body["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(body)))
}

async fn list_keys(State(state): State<AppState>, TenantAuth(caller): TenantAuth) -> ApiResult<Json<Value>> {
    let rows = state.db.list_api_keys(&caller.tenant).await?;
    Ok(Json(json!({"data": rows.iter().map(key_out).collect::<Vec<_>>(), "next_cursor": null})))
}

async fn delete_key(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !state.db.delete_api_key(&caller.tenant, &id).await? {
        return Err(ApiError::not_found("API key", &id));
    }
    // Forget cached keys on this node at once; other nodes forget within seconds.
    state.key_cache.lock().expect("key cache lock").clear();
    Ok(StatusCode::NO_CONTENT)
}
