//! The catalogue: `/v1/notification-types` (what kinds of notification a
//! person can hear about, with their defaults) and `/v1/config/import`,
//! which loads an application's notifications config and templates files
//! in one transaction. Templates themselves are in `templates.rs`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use herald_core::{
    Severity,
    catalogue::{self, Catalogue, ImportError, MAX_TYPE_ID_LEN},
};
use herald_store::catalogue::{NotificationTypeRow, TemplateRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    page::{self, Page},
    recipients::{IN_APP, is_channel, not_a_channel, unknown_channel},
    templates::{check_channel, check_fields},
};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery},
    state::{AppState, now_ms, rfc3339},
};

const MAX_LABEL: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
const MAX_CHANNELS: usize = 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/notification-types", get(list))
        .route("/v1/notification-types/{type}", get(get_one).put(put).delete(delete))
        .route("/v1/config/import", post(import))
}

/// Checks a notification type id: 1–200 of letters, digits and `_ . : -`.
pub(super) fn check_type_id(field: &str, id: &str) -> ApiResult<()> {
    let len = id.chars().count();
    if len == 0 || len > MAX_TYPE_ID_LEN {
        return Err(ApiError::invalid(field, format!("a notification type is 1 to {MAX_TYPE_ID_LEN} characters")));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))) {
        return Err(ApiError::invalid(
            field,
            format!("a notification type may only contain letters, digits and `_ . : -` (found {c:?})"),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeIn {
    label: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default = "yes")]
    default_enabled: bool,
    /// Where the type goes by default; `["in_app"]` when absent.
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    severity: Option<Severity>,
    /// A required type reaches people whatever their preferences say.
    #[serde(default)]
    required: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize)]
struct TypeOut {
    #[serde(rename = "type")]
    kind: String,
    label: String,
    description: Option<String>,
    category: Option<String>,
    default_enabled: bool,
    channels: Vec<String>,
    severity: Option<String>,
    required: bool,
    created_at: String,
    updated_at: String,
}

impl From<NotificationTypeRow> for TypeOut {
    fn from(row: NotificationTypeRow) -> Self {
        TypeOut {
            channels: serde_json::from_str(&row.channels).unwrap_or_default(),
            kind: row.kind,
            label: row.label,
            description: row.description,
            category: row.category,
            default_enabled: row.default_enabled,
            severity: row.severity,
            required: row.required,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

fn check_text(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid(field, format!("must be 1 to {max} characters")));
    }
    Ok(())
}

fn validate(state: &AppState, tenant: &str, kind: String, input: TypeIn) -> ApiResult<NotificationTypeRow> {
    check_text("label", &input.label, MAX_LABEL)?;
    if let Some(d) = &input.description
        && d.chars().count() > MAX_DESCRIPTION
    {
        return Err(ApiError::invalid("description", format!("must be at most {MAX_DESCRIPTION} characters")));
    }
    if let Some(c) = &input.category {
        check_text("category", c, MAX_LABEL)?;
    }
    let given = input.channels.unwrap_or_else(|| vec![IN_APP.to_owned()]);
    if given.len() > MAX_CHANNELS {
        return Err(ApiError::invalid("channels", format!("at most {MAX_CHANNELS} channels")));
    }
    let mut channels: Vec<String> = Vec::with_capacity(given.len());
    for (i, c) in given.into_iter().enumerate() {
        if !is_channel(state, &c) {
            return Err(unknown_channel(state, &format!("channels[{i}]"), &c));
        }
        if !channels.contains(&c) {
            channels.push(c);
        }
    }
    let now = now_ms();
    Ok(NotificationTypeRow {
        tenant_id: tenant.to_owned(),
        kind,
        label: input.label,
        description: input.description,
        category: input.category,
        default_enabled: input.default_enabled,
        channels: serde_json::to_string(&channels)?,
        severity: input.severity.map(|s| s.as_str().to_owned()),
        required: input.required,
        created_at: now,
        updated_at: now,
    })
}

/// Creates (201) or replaces (200) a notification type.
async fn put(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(kind): Path<String>,
    ApiJson(input): ApiJson<TypeIn>,
) -> ApiResult<(StatusCode, Json<TypeOut>)> {
    check_type_id("type", &kind)?;
    let row = validate(&state, &caller.tenant, kind, input)?;
    let existed = state.db.get_notification_type(&caller.tenant, &row.kind).await?.is_some();
    state.db.put_notification_type(&row).await?;
    let stored = load(&state, &caller.tenant, &row.kind).await?;
    Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, Json(stored.into())))
}

async fn load(state: &AppState, tenant: &str, kind: &str) -> ApiResult<NotificationTypeRow> {
    state.db.get_notification_type(tenant, kind).await?.ok_or_else(|| ApiError::not_found("notification type", kind))
}

async fn get_one(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(kind): Path<String>,
) -> ApiResult<Json<TypeOut>> {
    Ok(Json(load(&state, &caller.tenant, &kind).await?.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    category: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<TypeOut>>> {
    let limit = page::limit(q.limit.as_deref())?;
    let rows =
        state.db.list_notification_types(&caller.tenant, q.category.as_deref(), q.cursor.as_deref(), limit + 1).await?;
    Ok(Json(page::page(rows, limit, |r| r.kind.clone(), TypeOut::from)))
}

/// Deletes a type and its templates.
async fn delete(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(kind): Path<String>,
) -> ApiResult<StatusCode> {
    let found = state.db.delete_notification_type(&caller.tenant, &kind).await?;
    state.templates.invalidate(&caller.tenant);
    if found { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found("notification type", &kind)) }
}

/// The two files of an application's catalogue, as JSON values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportIn {
    #[serde(default)]
    notifications_config: Option<Value>,
    #[serde(default)]
    notification_templates: Option<Value>,
}

#[derive(Debug, Serialize)]
struct ImportOut {
    types: usize,
    templates: usize,
}

/// An import error as a 400 naming the request path of the value
/// (`notifications_config.categories[0].types[2].id`).
fn import_error(section: &str, e: ImportError) -> ApiError {
    let field = match e.path.as_str() {
        "" | "$" => section.to_owned(),
        p if p.starts_with('[') => format!("{section}{p}"),
        p => format!("{section}.{p}"),
    };
    ApiError::invalid(field, e.message)
}

/// Checks what the core's parse cannot know: that every channel exists
/// here, and each template carries only the fields its channel uses.
fn check_catalogue(state: &AppState, catalogue: &Catalogue) -> ApiResult<()> {
    for t in &catalogue.types {
        if let Some(c) = t.channels.iter().find(|c| !is_channel(state, c)) {
            let detail = format!("notification type `{}`: {}", t.id, not_a_channel(state, c));
            return Err(ApiError::invalid("notifications_config", detail));
        }
    }
    for t in &catalogue.templates {
        let at = format!("notification_templates.templates.{}.{}", t.notification_type, t.channel);
        check_channel(state, &at, &t.channel)?;
        check_fields(&t.channel, &t.set, &format!("{at}."))?;
    }
    Ok(())
}

/// Loads a notifications config and/or a templates file: every type and
/// template is stored, or (on any error) none.
async fn import(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiJson(input): ApiJson<ImportIn>,
) -> ApiResult<Json<ImportOut>> {
    if input.notifications_config.is_none() && input.notification_templates.is_none() {
        return Err(ApiError::Invalid {
            field: None,
            detail: "give `notifications_config`, `notification_templates` or both".into(),
        });
    }
    let mut catalogue = Catalogue::default();
    if let Some(config) = &input.notifications_config {
        catalogue.types =
            catalogue::parse(Some(config), None).map_err(|e| import_error("notifications_config", e))?.types;
    }
    if let Some(templates) = &input.notification_templates {
        catalogue.templates =
            catalogue::parse(None, Some(templates)).map_err(|e| import_error("notification_templates", e))?.templates;
    }
    check_catalogue(&state, &catalogue)?;
    let (tenant, now) = (caller.tenant.as_str(), now_ms());
    let types: Vec<NotificationTypeRow> = catalogue
        .types
        .iter()
        .map(|t| {
            Ok(NotificationTypeRow {
                tenant_id: tenant.to_owned(),
                kind: t.id.clone(),
                label: t.label.clone(),
                description: t.description.clone(),
                category: t.category.clone(),
                default_enabled: t.default_enabled,
                channels: serde_json::to_string(&t.channels)?,
                severity: t.severity.map(|s| s.as_str().to_owned()),
                required: t.required,
                created_at: now,
                updated_at: now,
            })
        })
        .collect::<ApiResult<_>>()?;
    let templates: Vec<TemplateRow> = catalogue
        .templates
        .iter()
        .map(|t| TemplateRow {
            tenant_id: tenant.to_owned(),
            kind: t.notification_type.clone(),
            channel: t.channel.clone(),
            locale: t.locale.as_deref().unwrap_or_default().to_ascii_lowercase(),
            subject: t.set.subject.clone(),
            text_body: t.set.text_body.clone(),
            html_body: t.set.html_body.clone(),
            title: t.set.title.clone(),
            body: t.set.body.clone(),
            updated_at: now,
        })
        .collect();
    state.db.import_catalogue(tenant, &types, &templates).await?;
    state.templates.invalidate(tenant);
    Ok(Json(ImportOut { types: types.len(), templates: templates.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids() {
        for ok in ["job_failed", "auth.failed", "backup:done", "a-b", "X1"] {
            assert!(check_type_id("type", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(201)] {
            assert!(check_type_id("type", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn import_errors_name_the_request_path() {
        let e = ImportError { path: "categories[0].types[2].id".into(), message: "is required".into() };
        assert!(matches!(import_error("notifications_config", e),
            ApiError::Invalid { field: Some(f), .. } if f == "notifications_config.categories[0].types[2].id"));
        let e = ImportError { path: "$".into(), message: "must be an object".into() };
        assert!(matches!(import_error("notification_templates", e),
            ApiError::Invalid { field: Some(f), .. } if f == "notification_templates"));
    }
}
