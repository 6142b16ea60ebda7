//! `/v1/rules`: which events go to which integrations.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use herald_core::{Condition, RuleId, glob};
use herald_store::rules::RuleRow;
use serde::{Deserialize, Serialize};

use super::page::{self, Page};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery},
    state::{AppState, now_ms, rfc3339},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/rules", post(create).get(list))
        .route("/v1/rules/{id}", get(get_one).put(replace).patch(patch).delete(delete))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleIn {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    event_types: Vec<String>,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    integration_ids: Vec<String>,
    #[serde(default)]
    audience: Option<Audience>,
}

/// Which recipients a rule reaches: everyone, or those whose attributes
/// have these values (an array attribute matches when it contains the value).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Audience {
    fn validate(&self) -> ApiResult<()> {
        // Exactly one of the two.
        if self.all != self.attributes.is_empty() {
            return Err(ApiError::invalid(
                "audience",
                "give either `{\"all\": true}` or `{\"attributes\": {\"role\": \"admin\"}}`",
            ));
        }
        if self.attributes.len() > 20 {
            return Err(ApiError::invalid("audience.attributes", "at most 20 attributes"));
        }
        for (name, value) in &self.attributes {
            if value.is_object() || value.is_array() || value.is_null() {
                return Err(ApiError::invalid(
                    format!("audience.attributes.{name}"),
                    "must be a string, a number or a boolean",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulePatch {
    name: Option<String>,
    enabled: Option<bool>,
    event_types: Option<Vec<String>>,
    /// `null` removes the condition.
    #[serde(default, deserialize_with = "double_option")]
    condition: Option<Option<String>>,
    integration_ids: Option<Vec<String>>,
    /// `null` removes the audience.
    #[serde(default, deserialize_with = "double_option")]
    audience: Option<Option<Audience>>,
}

/// `Some(None)` for an explicit `null` (remove), `None` when absent (keep).
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize)]
struct RuleOut {
    id: String,
    name: String,
    enabled: bool,
    event_types: Vec<String>,
    condition: Option<String>,
    integration_ids: Vec<String>,
    audience: Option<Audience>,
    created_at: String,
    updated_at: String,
}

fn out(row: RuleRow) -> ApiResult<RuleOut> {
    Ok(RuleOut {
        event_types: row.event_types()?,
        integration_ids: row.integration_ids()?,
        audience: row.audience.as_deref().map(serde_json::from_str).transpose()?,
        id: row.id,
        name: row.name,
        enabled: row.enabled,
        condition: row.condition,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    })
}

/// Checks a rule and fills `row` with it; every integration must be the tenant's.
async fn validate(state: &AppState, tenant: &str, input: RuleIn, row: &mut RuleRow) -> ApiResult<()> {
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    if input.event_types.is_empty() || input.event_types.len() > 100 {
        return Err(ApiError::invalid("event_types", "must list 1 to 100 event types or patterns (`*` matches all)"));
    }
    for (i, p) in input.event_types.iter().enumerate() {
        glob::validate(p).map_err(|e| ApiError::invalid(format!("event_types[{i}]"), e))?;
    }
    let condition = input.condition.filter(|c| !c.trim().is_empty());
    if let Some(c) = &condition {
        Condition::parse(c).map_err(|e| ApiError::invalid("condition", e.to_string()))?;
    }
    if input.integration_ids.len() > 100 {
        return Err(ApiError::invalid("integration_ids", "at most 100 integrations per rule"));
    }
    let mut ids: Vec<String> = Vec::new();
    for (i, id) in input.integration_ids.into_iter().enumerate() {
        if state.db.get_integration(tenant, &id).await?.is_none() {
            return Err(ApiError::invalid(
                format!("integration_ids[{i}]"),
                format!("integration `{id}` does not exist"),
            ));
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    row.name = input.name;
    row.enabled = input.enabled;
    row.event_types = serde_json::to_string(&input.event_types)?;
    row.condition = condition;
    if let Some(audience) = &input.audience {
        audience.validate()?;
    }
    row.integration_ids = serde_json::to_string(&ids)?;
    row.audience = input.audience.as_ref().map(serde_json::to_string).transpose()?;
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiJson(input): ApiJson<RuleIn>,
) -> ApiResult<(StatusCode, Json<RuleOut>)> {
    let now = now_ms();
    let mut row = RuleRow {
        id: RuleId::new().into_string(),
        tenant_id: caller.tenant.clone(),
        name: String::new(),
        enabled: true,
        event_types: String::new(),
        condition: None,
        integration_ids: String::new(),
        audience: None,
        created_at: now,
        updated_at: now,
    };
    validate(&state, &caller.tenant, input, &mut row).await?;
    state.db.insert_rule(&row).await?;
    Ok((StatusCode::CREATED, Json(out(row)?)))
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
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<RuleOut>>> {
    let limit = page::limit(q.limit.as_deref())?;
    let rows = state.db.list_rules(&caller.tenant, q.cursor.as_deref(), limit + 1).await?;
    let page = page::page(rows, limit, |r| r.id.clone(), out);
    Ok(Json(Page { data: page.data.into_iter().collect::<ApiResult<_>>()?, next_cursor: page.next_cursor }))
}

async fn load(state: &AppState, tenant: &str, id: &str) -> ApiResult<RuleRow> {
    state.db.get_rule(tenant, id).await?.ok_or_else(|| ApiError::not_found("rule", id))
}

async fn get_one(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<RuleOut>> {
    Ok(Json(out(load(&state, &caller.tenant, &id).await?)?))
}

async fn store(state: &AppState, tenant: &str, mut row: RuleRow, input: RuleIn) -> ApiResult<Json<RuleOut>> {
    validate(state, tenant, input, &mut row).await?;
    row.updated_at = now_ms();
    if !state.db.update_rule(&row).await? {
        return Err(ApiError::not_found("rule", &row.id));
    }
    Ok(Json(out(row)?))
}

async fn replace(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RuleIn>,
) -> ApiResult<Json<RuleOut>> {
    let row = load(&state, &caller.tenant, &id).await?;
    store(&state, &caller.tenant, row, input).await
}

async fn patch(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<RulePatch>,
) -> ApiResult<Json<RuleOut>> {
    let row = load(&state, &caller.tenant, &id).await?;
    let input = RuleIn {
        name: p.name.unwrap_or_else(|| row.name.clone()),
        enabled: p.enabled.unwrap_or(row.enabled),
        event_types: match p.event_types {
            Some(v) => v,
            None => row.event_types()?,
        },
        condition: p.condition.unwrap_or_else(|| row.condition.clone()),
        integration_ids: match p.integration_ids {
            Some(v) => v,
            None => row.integration_ids()?,
        },
        audience: match p.audience {
            Some(a) => a,
            None => row.audience.as_deref().map(serde_json::from_str).transpose()?,
        },
    };
    store(&state, &caller.tenant, row, input).await
}

async fn delete(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.db.delete_rule(&caller.tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("rule", &id))
    }
}
