//! `/v1/templates`: a tenant's templates per notification type, channel and
//! locale (`""` is the default variant), checked at save time so a template
//! that does not compile is refused with its line and column; and
//! `POST /v1/templates/preview`, which renders one without sending.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use herald_core::template::{Field, TemplateError, TemplateSet, validate_locale};
use herald_store::catalogue::TemplateRow;
use serde::{Deserialize, Serialize};

use super::{
    catalogue::check_type_id,
    page::Page,
    recipients::{is_channel, unknown_channel},
};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery},
    render::set_of,
    state::{AppState, now_ms, rfc3339},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        // `preview` is also a type name like any other for listing.
        .route("/v1/templates/preview", post(super::preview::preview).get(list_preview_type))
        .route("/v1/templates/{type}", get(list))
        .route("/v1/templates/{type}/{channel}", get(get_one).put(put).delete(delete))
}

/// The fields a channel's template may have: email has a subject and two
/// bodies, every other channel a title and a body.
pub(super) fn fields_of(channel: &str) -> &'static [Field] {
    if channel == "email" { &[Field::Subject, Field::TextBody, Field::HtmlBody] } else { &[Field::Title, Field::Body] }
}

fn field_names(channel: &str) -> String {
    fields_of(channel).iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
}

/// Refuses a channel that is unknown, or that sends the event as it is
/// (a webhook) and so has nothing to template.
pub(super) fn check_channel(state: &AppState, field: &str, channel: &str) -> ApiResult<()> {
    if !is_channel(state, channel) {
        return Err(unknown_channel(state, field, channel));
    }
    if state.channels.get(channel).is_some_and(|c| !c.renders()) {
        return Err(ApiError::invalid(field, format!("a {channel} delivery carries the event itself: no template")));
    }
    Ok(())
}

/// Refuses a field the channel does not use; errors name `{prefix}{field}`.
pub(super) fn check_fields(channel: &str, set: &TemplateSet, prefix: &str) -> ApiResult<()> {
    let allowed = fields_of(channel);
    if let Some((field, _)) = set.fields().find(|(f, _)| !allowed.contains(f)) {
        return Err(ApiError::invalid(
            format!("{prefix}{field}"),
            format!("a {channel} template has {}; `{field}` is not used", field_names(channel)),
        ));
    }
    Ok(())
}

/// A template that does not compile or render, as a 400 with its position.
pub(super) fn template_error(prefix: &str, e: TemplateError) -> ApiError {
    ApiError::InvalidTemplate {
        field: format!("{prefix}{}", e.field),
        detail: e.to_string(),
        line: e.line,
        column: e.column,
    }
}

/// Checks a `locale` query value and gives the stored form: lowercase,
/// `""` for the default variant.
pub(super) fn locale_param(field: &str, locale: Option<&str>) -> ApiResult<String> {
    match locale.unwrap_or_default() {
        "" => Ok(String::new()),
        l if validate_locale(l) => Ok(l.to_ascii_lowercase()),
        l => Err(ApiError::invalid(field, format!("`{l}` is not a locale tag such as `de`, `en-GB` or `pt-BR`"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocaleQuery {
    locale: Option<String>,
}

#[derive(Debug, Serialize)]
struct TemplateOut {
    #[serde(rename = "type")]
    kind: String,
    channel: String,
    locale: String,
    #[serde(flatten)]
    set: TemplateSet,
    updated_at: String,
}

impl From<TemplateRow> for TemplateOut {
    fn from(row: TemplateRow) -> Self {
        TemplateOut {
            set: set_of(&row),
            kind: row.kind,
            channel: row.channel,
            locale: row.locale,
            updated_at: rfc3339(row.updated_at),
        }
    }
}

fn path_checks(state: &AppState, kind: &str, channel: &str) -> ApiResult<()> {
    check_type_id("type", kind)?;
    check_channel(state, "channel", channel)
}

/// Saves a template (201 when new, 200 when replaced) after compiling it.
async fn put(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path((kind, channel)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LocaleQuery>,
    ApiJson(set): ApiJson<TemplateSet>,
) -> ApiResult<(StatusCode, Json<TemplateOut>)> {
    path_checks(&state, &kind, &channel)?;
    let locale = locale_param("locale", q.locale.as_deref())?;
    if set.is_empty() {
        let detail = format!("a {channel} template needs at least one of {}", field_names(&channel));
        return Err(ApiError::Invalid { field: None, detail });
    }
    check_fields(&channel, &set, "")?;
    set.check().map_err(|e| template_error("", e))?;
    let tenant = caller.tenant;
    let existed = state.db.get_template(&tenant, &kind, &channel, &locale).await?.is_some();
    let row = TemplateRow {
        tenant_id: tenant.clone(),
        kind,
        channel,
        locale,
        subject: set.subject,
        text_body: set.text_body,
        html_body: set.html_body,
        title: set.title,
        body: set.body,
        updated_at: now_ms(),
    };
    state.db.put_template(&row).await?;
    state.templates.invalidate(&tenant);
    Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, Json(row.into())))
}

/// The variant of `?locale=` (the default variant without it).
async fn get_one(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path((kind, channel)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LocaleQuery>,
) -> ApiResult<Json<TemplateOut>> {
    let locale = locale_param("locale", q.locale.as_deref())?;
    let row = state.db.get_template(&caller.tenant, &kind, &channel, &locale).await?.ok_or_else(|| {
        let variant = if locale.is_empty() { String::new() } else { format!(" (locale `{locale}`)") };
        ApiError::NotFound(format!("no {channel} template for `{kind}`{variant}"))
    })?;
    Ok(Json(row.into()))
}

async fn delete(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path((kind, channel)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LocaleQuery>,
) -> ApiResult<StatusCode> {
    let locale = locale_param("locale", q.locale.as_deref())?;
    let found = state.db.delete_template(&caller.tenant, &kind, &channel, &locale).await?;
    state.templates.invalidate(&caller.tenant);
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no {channel} template for `{kind}` in that locale")))
    }
}

/// Every channel and locale variant of one type (a handful: no cursor).
async fn list(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(kind): Path<String>,
) -> ApiResult<Json<Page<TemplateOut>>> {
    let mut rows: Vec<TemplateRow> =
        state.db.all_templates(&caller.tenant).await?.into_iter().filter(|t| t.kind == kind).collect();
    rows.sort_by(|a, b| (&a.channel, &a.locale).cmp(&(&b.channel, &b.locale)));
    Ok(Json(Page { data: rows.into_iter().map(TemplateOut::from).collect(), next_cursor: None }))
}

async fn list_preview_type(state: State<AppState>, auth: TenantAuth) -> ApiResult<Json<Page<TemplateOut>>> {
    list(state, auth, Path("preview".to_owned())).await
}
