//! Preferences: what a person wants to hear about, and where. A recipient's
//! own document (`/v1/recipients/{id}/preferences` for the app,
//! `/v1/inbox/preferences` for the person with a recipient token) and the
//! tenant's defaults per role (`/v1/role-preferences/{role}`, for
//! recipients whose `attributes.role` names it). Each is one document,
//! replaced whole by a PUT.

use std::collections::BTreeSet;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use herald_core::{Condition, Preferences};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    catalogue::check_type_id,
    recipients::{check_email, check_id, check_phone, is_channel, unknown_channel},
};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::ApiJson,
    recipient_token::RecipientAuth,
    state::{AppState, now_ms, rfc3339},
};

/// The most notification types one document may speak of.
const MAX_TYPES: usize = 500;
const MAX_ROLE: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/recipients/{id}/preferences", get(get_recipient).put(put_recipient))
        .route("/v1/inbox/preferences", get(get_own).put(put_own))
        .route("/v1/role-preferences", get(list_roles))
        .route("/v1/role-preferences/{role}", get(get_role).put(put_role).delete(delete_role))
}

/// Checks a document: known channels, valid type ids, conditions that
/// parse, valid address overrides; errors name the path (`types.x.condition`).
fn check(state: &AppState, prefs: &Preferences) -> ApiResult<()> {
    for name in prefs.channels.keys() {
        if !is_channel(state, name) {
            return Err(unknown_channel(state, &format!("channels.{name}"), name));
        }
    }
    if prefs.types.len() > MAX_TYPES {
        return Err(ApiError::invalid("types", format!("at most {MAX_TYPES} notification types")));
    }
    for (kind, pref) in &prefs.types {
        let at = |name: &str| format!("types.{kind}.{name}");
        check_type_id(&format!("types.{kind}"), kind)?;
        for (i, channel) in pref.channels.iter().flatten().enumerate() {
            if !is_channel(state, channel) {
                return Err(unknown_channel(state, &format!("types.{kind}.channels[{i}]"), channel));
            }
        }
        if let Some(condition) = &pref.condition {
            Condition::parse(condition).map_err(|e| ApiError::invalid(at("condition"), e.to_string()))?;
        }
        if let Some(email) = &pref.email {
            check_email(state, &at("email"), email)?;
        }
        if let Some(phone) = &pref.phone {
            check_phone(&at("phone"), phone)?;
        }
    }
    Ok(())
}

/// The document as answered: both sections always present.
fn doc(prefs: &Preferences) -> Value {
    json!({"channels": prefs.channels, "types": prefs.types})
}

fn parse_stored(text: Option<&str>) -> ApiResult<Preferences> {
    Ok(text.map(serde_json::from_str).transpose()?.unwrap_or_default())
}

/// Stores a recipient's document. With `create`, an unknown recipient is
/// created bare (the person may set preferences before the app registers
/// them); without, it is a 404.
async fn store(state: &AppState, tenant: &str, id: &str, prefs: Preferences, create: bool) -> ApiResult<Json<Value>> {
    check(state, &prefs)?;
    let subscribed: BTreeSet<String> = prefs.subscribed_types().map(str::to_owned).collect();
    let text = serde_json::to_string(&prefs)?;
    if !state.db.set_preferences(tenant, id, &text, &subscribed, create, now_ms()).await? {
        return Err(ApiError::not_found("recipient", id));
    }
    Ok(Json(doc(&prefs)))
}

async fn get_recipient(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row =
        state.db.get_recipient(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found("recipient", &id))?;
    Ok(Json(doc(&parse_stored(row.preferences.as_deref())?)))
}

async fn put_recipient(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
    ApiJson(prefs): ApiJson<Preferences>,
) -> ApiResult<Json<Value>> {
    store(&state, &caller.tenant, &id, prefs, false).await
}

/// The person's own preferences; empty until set.
async fn get_own(State(state): State<AppState>, auth: RecipientAuth) -> ApiResult<Json<Value>> {
    let row = state.db.get_recipient(&auth.tenant, &auth.recipient).await?;
    Ok(Json(doc(&parse_stored(row.and_then(|r| r.preferences).as_deref())?)))
}

async fn put_own(
    State(state): State<AppState>,
    auth: RecipientAuth,
    ApiJson(prefs): ApiJson<Preferences>,
) -> ApiResult<Json<Value>> {
    check_id("recipient", &auth.recipient)?;
    store(&state, &auth.tenant, &auth.recipient, prefs, true).await
}

fn check_role(role: &str) -> ApiResult<()> {
    let len = role.chars().count();
    if len == 0 || len > MAX_ROLE || role.chars().any(|c| c.is_control() || c == '/') {
        return Err(ApiError::invalid(
            "role",
            format!("a role is 1 to {MAX_ROLE} characters, without `/` or control characters"),
        ));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct RoleOut {
    role: String,
    preferences: Value,
    updated_at: String,
}

#[derive(Debug, Serialize)]
struct RoleList {
    data: Vec<RoleOut>,
}

/// Every role's defaults, by role name (a tenant has few).
async fn list_roles(State(state): State<AppState>, TenantAuth(caller): TenantAuth) -> ApiResult<Json<RoleList>> {
    let mut data = Vec::new();
    for (role, text, updated_at) in state.db.list_role_preferences(&caller.tenant).await? {
        data.push(RoleOut { preferences: doc(&parse_stored(Some(&text))?), role, updated_at: rfc3339(updated_at) });
    }
    Ok(Json(RoleList { data }))
}

async fn role_doc(state: &AppState, tenant: &str, role: &str) -> ApiResult<Option<Preferences>> {
    let roles = state.db.list_role_preferences(tenant).await?;
    roles.into_iter().find(|(r, _, _)| r == role).map(|(_, text, _)| parse_stored(Some(&text))).transpose()
}

async fn get_role(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(role): Path<String>,
) -> ApiResult<Json<Value>> {
    let prefs = role_doc(&state, &caller.tenant, &role).await?.ok_or_else(|| role_not_found(&role))?;
    Ok(Json(doc(&prefs)))
}

/// Sets a role's defaults: 201 when the role had none, 200 when replaced.
async fn put_role(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(role): Path<String>,
    ApiJson(prefs): ApiJson<Preferences>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_role(&role)?;
    check(&state, &prefs)?;
    let existed = role_doc(&state, &caller.tenant, &role).await?.is_some();
    state.db.put_role_preferences(&caller.tenant, &role, &serde_json::to_string(&prefs)?, now_ms()).await?;
    Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, Json(doc(&prefs))))
}

async fn delete_role(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(role): Path<String>,
) -> ApiResult<StatusCode> {
    if state.db.delete_role_preferences(&caller.tenant, &role).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(role_not_found(&role))
    }
}

fn role_not_found(role: &str) -> ApiError {
    ApiError::NotFound(format!("role `{role}` has no preferences"))
}
