//! `/v1/integrations`: a tenant's destinations, with secrets sealed at rest
//! and masked in every answer; and `GET /v1/channels`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use herald_channels::Channel;
use herald_core::IntegrationId;
use herald_store::integrations::IntegrationRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::page::{self, Page};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery},
    secrets,
    state::{AppState, now_ms, rfc3339},
};

/// What a secret looks like in answers; sent back, it keeps the stored value.
pub const MASK: &str = "********";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/channels", get(channels))
        .route("/v1/integrations", post(create).get(list))
        .route("/v1/integrations/{id}", get(get_one).put(replace).patch(patch).delete(delete))
        .route("/v1/integrations/{id}/test", post(super::test_send::test))
        .route("/v1/integrations/{id}/recover", post(recover))
}

/// The most deliveries one recover call puts back in the queue.
const RECOVER_MAX: i64 = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverIn {
    since: String,
    until: Option<String>,
}

/// `POST /v1/integrations/{id}/recover` `{"since", "until"?}`: sends again
/// what this integration's deliveries created in that window missed:
/// those that failed, and those skipped while it was disabled (Svix's
/// recover). Up to 10,000 per call, oldest first; `"more": true` says to
/// call again.
async fn recover(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RecoverIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let now = now_ms();
    let since = page::time_param("since", Some(&input.since))?.unwrap_or_default();
    let until = page::time_param("until", input.until.as_deref())?.unwrap_or(now + 1);
    if since >= until {
        return Err(ApiError::invalid("until", "must be after `since`"));
    }
    let row = load(&state, &caller.tenant, &id).await?;
    if !row.enabled {
        return Err(ApiError::Conflict(format!(
            "integration `{id}` is disabled; enable it first (PATCH {{\"enabled\": true}}), then recover"
        )));
    }
    let requeued = state.db.recover_deliveries(&caller.tenant, &id, (since, until), now, RECOVER_MAX).await?;
    if requeued > 0 {
        state.wake.deliveries_committed();
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"requeued": requeued, "more": requeued as i64 == RECOVER_MAX}))))
}

/// A new integration: `type` and `config`, or an Apprise-style `url` that
/// Herald turns into them (the URL itself is not kept).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationIn {
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    config: Option<Value>,
    url: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    /// People's channels of this type go through this integration.
    #[serde(default)]
    default: bool,
}

impl std::fmt::Debug for IntegrationIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config and the URL carry secrets.
        f.debug_struct("IntegrationIn").field("name", &self.name).field("type", &self.kind).finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationReplace {
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    config: Value,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    default: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationPatch {
    name: Option<String>,
    /// Merged into the stored config: keys given replace, `null` removes.
    config: Option<Value>,
    enabled: Option<bool>,
    default: Option<bool>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize)]
pub struct IntegrationOut {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    config: Value,
    enabled: bool,
    /// Why Herald disabled it (a webhook endpoint answered 410 Gone);
    /// present only then, and cleared by enabling it again.
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    /// Since when every attempt has failed (webhooks; present only then).
    /// Past `HERALD_DISABLE_FAILING_AFTER` the integration is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_since: Option<String>,
    /// The integration people's channels of this type use (else the only
    /// enabled one of its type).
    default: bool,
    created_at: String,
    updated_at: String,
}

/// The stored config with every secret field masked.
fn masked(channel: &dyn Channel, config: &str) -> Value {
    let mut value: Value = serde_json::from_str(config).unwrap_or_else(|_| json!({}));
    for field in channel.secret_fields() {
        if let Some(v) = value.get_mut(*field)
            && !v.is_null()
        {
            *v = json!(MASK);
        }
    }
    value
}

fn out(state: &AppState, row: IntegrationRow) -> IntegrationOut {
    let config = match state.channels.get(&row.kind) {
        Some(ch) => masked(ch.as_ref(), &row.config),
        None => json!({}),
    };
    IntegrationOut {
        id: row.id,
        name: row.name,
        kind: row.kind,
        config,
        enabled: row.enabled,
        disabled_reason: row.disabled_reason,
        failing_since: row.failing_since.map(rfc3339),
        default: row.is_default,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

pub(super) fn channel_of(state: &AppState, kind: &str) -> ApiResult<std::sync::Arc<dyn Channel>> {
    state.channels.get(kind).cloned().ok_or_else(|| {
        ApiError::invalid(
            "type",
            format!("unknown integration type `{kind}`; known: {}", state.channels.kinds().join(", ")),
        )
    })
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    Ok(())
}

/// Validates an incoming config and seals its secrets. `previous` is the
/// stored config (secrets open) for updates: a secret sent as `"********"`
/// or left out keeps its value, `null` removes it. Returns the sealed JSON
/// text and the secrets Herald generated (shown once).
fn prepare_config(
    state: &AppState,
    channel: &dyn Channel,
    tenant: &str,
    id: &str,
    mut config: Value,
    previous: Option<&Value>,
) -> ApiResult<(String, Vec<(String, String)>)> {
    if !config.is_object() {
        return Err(ApiError::invalid("config", "must be a JSON object"));
    }
    for field in channel.secret_fields() {
        let stored = previous.and_then(|p| p.get(*field)).filter(|v| !v.is_null());
        match config.get(*field) {
            Some(Value::String(mask)) if mask == MASK => match stored {
                Some(kept) => config[*field] = kept.clone(),
                None => {
                    return Err(ApiError::invalid(
                        format!("config.{field}"),
                        "`********` keeps a stored secret, but there is none",
                    ));
                }
            },
            // An update that leaves a secret out keeps it: the caller never
            // saw it, and replacing it unseen would break whatever relies on
            // it (a receiver's signature check, browsers' push subscriptions).
            None => {
                if let Some(kept) = stored {
                    config[*field] = kept.clone();
                }
            }
            // `null` removes it (a generated one is then made anew and shown).
            Some(Value::Null) => {
                config.as_object_mut().map(|m| m.remove(*field));
            }
            Some(_) => {}
        }
    }
    let given: Vec<&str> =
        channel.secret_fields().iter().copied().filter(|f| config.get(*f).is_some_and(|v| !v.is_null())).collect();
    let mut prepared = channel.prepare(config, &state.channel_ctx).map_err(|e| {
        ApiError::invalid(if e.field.is_empty() { "config".into() } else { format!("config.{}", e.field) }, e.message)
    })?;
    let generated = channel
        .secret_fields()
        .iter()
        .filter(|f| !given.contains(f))
        .filter_map(|f| prepared.get(*f).and_then(Value::as_str).map(|v| (f.to_string(), v.to_owned())))
        .collect();
    secrets::seal_fields(&state.key, tenant, id, channel.secret_fields(), &mut prepared);
    Ok((prepared.to_string(), generated))
}

/// The stored config of `row` with its secrets opened.
pub(super) fn opened(state: &AppState, channel: &dyn Channel, row: &IntegrationRow) -> ApiResult<Value> {
    let mut value: Value = serde_json::from_str(&row.config)?;
    secrets::open_fields(&state.key, &row.tenant_id, &row.id, channel.secret_fields(), &mut value)?;
    Ok(value)
}

async fn channels(State(state): State<AppState>, TenantAuth(_): TenantAuth) -> Json<Value> {
    let data: Vec<Value> = state
        .channels
        .iter()
        .map(|c| json!({"type": c.kind(), "secret_fields": c.secret_fields(), "config_schema": c.schema()}))
        .collect();
    Json(json!({"data": data}))
}

async fn create(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiJson(input): ApiJson<IntegrationIn>,
) -> ApiResult<(StatusCode, Json<IntegrationOut>)> {
    check_name(&input.name)?;
    let id = IntegrationId::new().into_string();
    let (kind, config, generated) = match (input.url, input.kind, input.config) {
        (Some(url), None, None) => from_url(&state, &caller.tenant, &id, &url)?,
        (Some(_), _, _) => {
            return Err(ApiError::invalid("url", "give either `url` or `type` and `config`, not both"));
        }
        (None, Some(kind), Some(mut config)) => {
            let channel = channel_of(&state, &kind)?;
            if kind == herald_channels::web_push::KIND {
                super::push::share_tenant_key(&state, &caller.tenant, &mut config).await?;
            }
            let (config, generated) = prepare_config(&state, channel.as_ref(), &caller.tenant, &id, config, None)?;
            (kind, config, generated)
        }
        (None, None, _) => return Err(ApiError::invalid("type", "is required (or give an Apprise-style `url`)")),
        (None, Some(_), None) => return Err(ApiError::invalid("config", "is required")),
    };
    let now = now_ms();
    let row = IntegrationRow {
        id,
        tenant_id: caller.tenant,
        name: input.name,
        kind,
        config,
        enabled: input.enabled,
        is_default: input.default,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    state.db.insert_integration(&row).await?;
    let mut body = out(&state, row);
    // A secret Herald generated is shown this once; afterwards only masked.
    for (field, value) in generated {
        body.config[field] = json!(value);
    }
    Ok((StatusCode::CREATED, Json(body)))
}

/// Secrets Herald generated for a new config: (field, value), shown once.
type Generated = Vec<(String, String)>;

/// An Apprise-style URL made into a type and a prepared config. Every
/// failure is a 400 on `url` naming the part of the URL at fault; the
/// message never repeats the URL (it holds secrets).
fn from_url(state: &AppState, tenant: &str, id: &str, url: &str) -> ApiResult<(String, String, Generated)> {
    let bad = |detail: String| ApiError::invalid("url", detail);
    let parsed = herald_channels::apprise::parse(url).map_err(|e| bad(e.to_string()))?;
    let channel = state.channels.get(parsed.kind).cloned().ok_or_else(|| {
        bad(format!("the URL makes a `{}` integration: unknown integration type on this server", parsed.kind))
    })?;
    let (config, generated) =
        prepare_config(state, channel.as_ref(), tenant, id, parsed.config, None).map_err(|e| match e {
            ApiError::Invalid { field, detail } => {
                let field = field.as_deref().unwrap_or("config").trim_start_matches("config.");
                bad(format!("the {} config made from the URL is refused at `{field}`: {detail}", parsed.kind))
            }
            other => other,
        })?;
    Ok((parsed.kind.to_owned(), config, generated))
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
) -> ApiResult<Json<Page<IntegrationOut>>> {
    let limit = page::limit(q.limit.as_deref())?;
    let rows = state.db.list_integrations(&caller.tenant, q.cursor.as_deref(), limit + 1).await?;
    Ok(Json(page::page(rows, limit, |r| r.id.clone(), |r| out(&state, r))))
}

async fn load(state: &AppState, tenant: &str, id: &str) -> ApiResult<IntegrationRow> {
    state.db.get_integration(tenant, id).await?.ok_or_else(|| ApiError::not_found("integration", id))
}

async fn get_one(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationOut>> {
    Ok(Json(out(&state, load(&state, &caller.tenant, &id).await?)))
}

async fn save(
    state: &AppState,
    mut row: IntegrationRow,
    name: String,
    config: Value,
    enabled: bool,
    is_default: bool,
) -> ApiResult<Json<IntegrationOut>> {
    check_name(&name)?;
    let channel = channel_of(state, &row.kind)?;
    let previous = opened(state, channel.as_ref(), &row)?;
    let (config, generated) =
        prepare_config(state, channel.as_ref(), &row.tenant_id, &row.id, config, Some(&previous))?;
    let read_at = row.updated_at;
    row.name = name;
    row.config = config;
    row.enabled = enabled;
    if enabled {
        // As the update does: enabling it again is the answer to why it was disabled.
        row.disabled_reason = None;
    }
    row.failing_since = None;
    row.is_default = is_default;
    row.updated_at = now_ms().max(row.updated_at + 1);
    if !state.db.update_integration(&row, read_at).await? {
        return Err(match state.db.get_integration(&row.tenant_id, &row.id).await? {
            Some(_) => ApiError::Conflict(
                "the integration changed while this request was handled (another request, or Herald disabled it); read it again and retry".into(),
            ),
            None => ApiError::not_found("integration", &row.id),
        });
    }
    let mut body = out(state, row);
    for (field, value) in generated {
        body.config[field] = json!(value);
    }
    Ok(Json(body))
}

async fn replace(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<IntegrationReplace>,
) -> ApiResult<Json<IntegrationOut>> {
    let row = load(&state, &caller.tenant, &id).await?;
    if let Some(kind) = &input.kind
        && kind != &row.kind
    {
        return Err(ApiError::invalid("type", "the type of an integration cannot change; create a new one"));
    }
    save(&state, row, input.name, input.config, input.enabled, input.default).await
}

async fn patch(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<IntegrationPatch>,
) -> ApiResult<Json<IntegrationOut>> {
    let row = load(&state, &caller.tenant, &id).await?;
    let channel = channel_of(&state, &row.kind)?;
    let mut config = opened(&state, channel.as_ref(), &row)?;
    if let Some(changes) = input.config {
        let Value::Object(changes) = changes else {
            return Err(ApiError::invalid("config", "must be a JSON object"));
        };
        for (k, v) in changes {
            // A removed secret stays as `null`, which `prepare_config` reads
            // as "remove"; a missing one would read as "keep".
            if v.is_null() && !channel.secret_fields().contains(&k.as_str()) {
                config.as_object_mut().map(|m| m.remove(&k));
            } else {
                config[k] = v;
            }
        }
    }
    let name = input.name.unwrap_or_else(|| row.name.clone());
    let enabled = input.enabled.unwrap_or(row.enabled);
    let is_default = input.default.unwrap_or(row.is_default);
    save(&state, row, name, config, enabled, is_default).await
}

async fn delete(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.db.delete_integration(&caller.tenant, &id, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("integration", &id))
    }
}
