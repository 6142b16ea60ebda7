//! `/v1/recipients`: the people of a tenant, by the client app's own ids,
//! with their addresses, locale, timezone and attributes (what audiences
//! match on). Upserted one by one or in bulk.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    routing::{get, post},
};
use herald_core::template::{validate_locale, validate_timezone};
use herald_store::recipients::{AttributeMatch, RecipientRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::page::{self, Page};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{ApiJson, parse_json},
    state::{AppState, now_ms, rfc3339},
};

/// The longest recipient id (the client app's own).
const MAX_ID: usize = 200;
const MAX_NAME: usize = 200;
const MAX_ATTRIBUTES: usize = 50;
const MAX_ATTRIBUTE_NAME: usize = 100;
const MAX_ATTRIBUTES_BYTES: usize = 8 * 1024;
const MAX_ADDRESS: usize = 500;
/// The most recipients one bulk request may carry.
const MAX_BULK: usize = 1000;
/// The most `attributes.<name>` filters one list may take.
const MAX_FILTERS: usize = 20;
/// The channel that is not an integration type.
pub const IN_APP: &str = "in_app";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/recipients", get(list))
        // `bulk` is also a recipient id like any other for PUT, GET and DELETE.
        .route("/v1/recipients/bulk", post(bulk).put(upsert_bulk_id).get(get_bulk_id).delete(delete_bulk_id))
        .route("/v1/recipients/{id}", get(get_one).put(upsert).delete(delete))
}

/// A recipient as the API takes it. `id` is only for bulk items (a PUT has
/// it in the path, and may repeat it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
    /// Channel → the person's address there (a Telegram chat id, an ntfy topic…).
    #[serde(default)]
    addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize)]
struct RecipientOut {
    id: String,
    email: Option<String>,
    phone: Option<String>,
    name: Option<String>,
    locale: Option<String>,
    timezone: Option<String>,
    attributes: Value,
    addresses: Value,
    created_at: String,
    updated_at: String,
}

impl From<RecipientRow> for RecipientOut {
    fn from(row: RecipientRow) -> Self {
        let object = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| Value::Object(Map::new()));
        RecipientOut {
            attributes: object(&row.attributes),
            addresses: object(&row.addresses),
            id: row.id,
            email: row.email,
            phone: row.phone,
            name: row.name,
            locale: row.locale,
            timezone: row.timezone,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

/// Checks a recipient id: 1–200 characters, no control characters, no `/`.
pub(super) fn check_id(field: &str, id: &str) -> ApiResult<()> {
    let len = id.chars().count();
    if len == 0 || len > MAX_ID {
        return Err(ApiError::invalid(field, format!("a recipient id is 1 to {MAX_ID} characters")));
    }
    if id.chars().any(|c| c.is_control() || c == '/') {
        return Err(ApiError::invalid(field, "a recipient id must not contain `/` or control characters"));
    }
    Ok(())
}

/// Checks an email address the way the email channel will read it.
pub(super) fn check_email(state: &AppState, field: &str, email: &str) -> ApiResult<()> {
    let channel = state.channels.get("email").ok_or_else(|| anyhow::anyhow!("the email channel is not registered"))?;
    channel.check_recipient(email).map_err(|message| ApiError::invalid(field, message))
}

/// Checks a phone number: E.164 (`+` and 2 to 15 digits, not starting with 0).
pub(super) fn check_phone(field: &str, phone: &str) -> ApiResult<()> {
    if herald_channels::twilio_sms::is_e164(phone) {
        Ok(())
    } else {
        Err(ApiError::invalid(field, "must be a phone number in E.164 form, such as +4915112345678"))
    }
}

/// True for `in_app` and every integration type.
pub(super) fn is_channel(state: &AppState, name: &str) -> bool {
    name == IN_APP || state.channels.get(name).is_some()
}

/// A 400 for a name that is no channel.
pub(super) fn unknown_channel(state: &AppState, field: &str, name: &str) -> ApiError {
    ApiError::invalid(field, not_a_channel(state, name))
}

/// Says that `name` is no channel, listing the ones there are.
pub(super) fn not_a_channel(state: &AppState, name: &str) -> String {
    let mut known = state.channels.kinds();
    known.push(IN_APP);
    known.sort_unstable();
    format!("`{name}` is not a channel; known: {}", known.join(", "))
}

fn check_text(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, format!("must be 1 to {max} characters, without control characters")));
    }
    Ok(())
}

/// Validates one recipient into a row; errors name fields below `prefix`
/// (`""`, or `recipients[3].` in a bulk request).
fn validate(state: &AppState, tenant: &str, id: String, input: RecipientIn, prefix: &str) -> ApiResult<RecipientRow> {
    let field = |name: &str| format!("{prefix}{name}");
    let email = input.email.map(|e| e.trim().to_owned());
    if let Some(email) = &email {
        check_email(state, &field("email"), email)?;
    }
    let phone = input.phone.map(|p| p.trim().to_owned());
    if let Some(phone) = &phone {
        check_phone(&field("phone"), phone)?;
    }
    if let Some(name) = &input.name {
        check_text(&field("name"), name, MAX_NAME)?;
    }
    if let Some(locale) = input.locale.as_deref().filter(|l| !validate_locale(l)) {
        return Err(ApiError::invalid(
            field("locale"),
            format!("`{locale}` is not a locale tag such as `de`, `en-GB` or `pt-BR`"),
        ));
    }
    if let Some(tz) = input.timezone.as_deref().filter(|tz| !validate_timezone(tz)) {
        return Err(ApiError::invalid(
            field("timezone"),
            format!("`{tz}` is not an IANA timezone such as `Europe/Berlin` or `UTC`"),
        ));
    }
    let attributes = input.attributes.unwrap_or_default();
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(ApiError::invalid(field("attributes"), format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    for name in attributes.keys() {
        if name.is_empty() || name.chars().count() > MAX_ATTRIBUTE_NAME || name.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                field(&format!("attributes.{name}")),
                format!("an attribute name is 1 to {MAX_ATTRIBUTE_NAME} characters, without control characters"),
            ));
        }
    }
    let attributes = serde_json::to_string(&attributes)?;
    if attributes.len() > MAX_ATTRIBUTES_BYTES {
        return Err(ApiError::invalid(
            field("attributes"),
            format!("must be at most {} KiB as JSON", MAX_ATTRIBUTES_BYTES / 1024),
        ));
    }
    let addresses = input.addresses.unwrap_or_default();
    for (channel, address) in &addresses {
        let at = field(&format!("addresses.{channel}"));
        match channel.as_str() {
            "email" => return Err(ApiError::invalid(at, "an email address goes in `email`")),
            "twilio_sms" => return Err(ApiError::invalid(at, "a phone number goes in `phone`")),
            IN_APP => return Err(ApiError::invalid(at, "the inbox needs no address")),
            "web_push" => {
                return Err(ApiError::invalid(at, "browsers subscribe at /v1/recipients/{id}/push-subscriptions"));
            }
            c if !is_channel(state, c) => return Err(unknown_channel(state, &at, c)),
            _ => check_text(&at, address, MAX_ADDRESS)?,
        }
    }
    let now = now_ms();
    Ok(RecipientRow {
        tenant_id: tenant.to_owned(),
        id,
        email,
        phone,
        name: input.name,
        locale: input.locale,
        timezone: input.timezone,
        attributes,
        addresses: serde_json::to_string(&addresses)?,
        preferences: None,
        created_at: now,
        updated_at: now,
    })
}

async fn load(state: &AppState, tenant: &str, id: &str) -> ApiResult<RecipientRow> {
    state.db.get_recipient(tenant, id).await?.ok_or_else(|| ApiError::not_found("recipient", id))
}

/// Creates (201) or replaces (200) a recipient; preferences and push
/// subscriptions are kept.
async fn upsert(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RecipientIn>,
) -> ApiResult<(StatusCode, Json<RecipientOut>)> {
    check_id("id", &id)?;
    if input.id.as_ref().is_some_and(|body_id| *body_id != id) {
        return Err(ApiError::invalid("id", "differs from the id in the path"));
    }
    let row = validate(&state, &caller.tenant, id, input, "")?;
    let created = state.db.upsert_recipients(std::slice::from_ref(&row)).await?;
    let stored = load(&state, &caller.tenant, &row.id).await?;
    let status = if created.first() == Some(&true) { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored.into())))
}

async fn get_one(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<RecipientOut>> {
    Ok(Json(load(&state, &caller.tenant, &id).await?.into()))
}

/// Deletes a recipient with their preferences, push subscriptions and
/// inbox; their deliveries stay in the history.
async fn delete(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.db.delete_recipient(&caller.tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("recipient", &id))
    }
}

async fn upsert_bulk_id(
    state: State<AppState>,
    auth: TenantAuth,
    input: ApiJson<RecipientIn>,
) -> ApiResult<(StatusCode, Json<RecipientOut>)> {
    upsert(state, auth, Path("bulk".to_owned()), input).await
}

async fn get_bulk_id(state: State<AppState>, auth: TenantAuth) -> ApiResult<Json<RecipientOut>> {
    get_one(state, auth, Path("bulk".to_owned())).await
}

async fn delete_bulk_id(state: State<AppState>, auth: TenantAuth) -> ApiResult<StatusCode> {
    delete(state, auth, Path("bulk".to_owned())).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkIn {
    recipients: Vec<RecipientIn>,
}

#[derive(Debug, Serialize)]
struct BulkOut {
    created: usize,
    updated: usize,
}

/// Upserts up to 1000 recipients: all are checked first, then stored in one
/// transaction, so a bad item stores nothing.
async fn bulk(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiJson(input): ApiJson<BulkIn>,
) -> ApiResult<Json<BulkOut>> {
    if input.recipients.is_empty() || input.recipients.len() > MAX_BULK {
        return Err(ApiError::invalid("recipients", format!("must hold 1 to {MAX_BULK} recipients")));
    }
    let mut rows: Vec<RecipientRow> = Vec::with_capacity(input.recipients.len());
    let mut seen = std::collections::HashSet::new();
    for (i, mut item) in input.recipients.into_iter().enumerate() {
        let prefix = format!("recipients[{i}].");
        let id = item.id.take().ok_or_else(|| ApiError::invalid(format!("{prefix}id"), "is required"))?;
        check_id(&format!("{prefix}id"), &id)?;
        if !seen.insert(id.clone()) {
            return Err(ApiError::invalid(format!("{prefix}id"), format!("`{id}` appears twice in this request")));
        }
        rows.push(validate(&state, &caller.tenant, id, item, &prefix)?);
    }
    let created = state.db.upsert_recipients(&rows).await?.into_iter().filter(|c| *c).count();
    Ok(Json(BulkOut { created, updated: rows.len() - created }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    email: Option<String>,
}

/// The query of a list: the plain parameters (unknown ones refused) and the
/// `attributes.<name>=<value>` filters. A value that reads as a JSON number,
/// boolean or string is that; anything else is the text itself, so
/// `attributes.role=admin` and `attributes.level=3` both do what they say.
fn list_query(raw: Option<&str>) -> ApiResult<(ListQuery, Vec<AttributeMatch>)> {
    let mut plain = Map::new();
    let mut filters = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if let Some(name) = key.strip_prefix("attributes.") {
            if name.is_empty() {
                return Err(ApiError::invalid(key.into_owned(), "name the attribute: `attributes.role=admin`"));
            }
            let value = match serde_json::from_str::<Value>(&value) {
                Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => v.to_string(),
                _ => Value::String(value.into_owned()).to_string(),
            };
            filters.push(AttributeMatch { name: name.to_owned(), value });
        } else {
            plain.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    }
    if filters.len() > MAX_FILTERS {
        return Err(ApiError::invalid("attributes", format!("at most {MAX_FILTERS} attribute filters")));
    }
    let query = parse_json(serde_json::to_vec(&plain)?.as_slice()).map_err(|e| match e {
        ApiError::Invalid { field, detail } => ApiError::Invalid { field, detail: format!("query string: {detail}") },
        other => other,
    })?;
    Ok((query, filters))
}

/// Recipients by id, filtered by `email` and attribute values.
async fn list(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Page<RecipientOut>>> {
    let (q, filters) = list_query(raw.as_deref())?;
    let limit = page::limit(q.limit.as_deref())?;
    let email = q.email.as_deref().map(str::trim);
    let rows = state.db.list_recipients(&caller.tenant, &filters, email, q.cursor.as_deref(), limit + 1).await?;
    Ok(Json(page::page(rows, limit, |r| r.id.clone(), RecipientOut::from)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(raw: &str) -> Vec<(String, String)> {
        list_query(Some(raw)).unwrap().1.into_iter().map(|f| (f.name, f.value)).collect()
    }

    #[test]
    fn attribute_filters_read_json_scalars_and_plain_text() {
        assert_eq!(
            filters("attributes.role=admin&attributes.level=3&attributes.on=true&attributes.code=%2207%22&limit=2"),
            [("role", "\"admin\""), ("level", "3"), ("on", "true"), ("code", "\"07\"")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(filters("attributes.x=%7B%7D"), [("x".to_owned(), "\"{}\"".to_owned())]);
        assert!(matches!(list_query(Some("bogus=1")), Err(ApiError::Invalid { field: Some(f), .. }) if f == "bogus"));
        assert!(list_query(Some("attributes.=1")).is_err());
    }

    #[test]
    fn ids_refuse_slashes_and_control_characters() {
        assert!(check_id("id", "user-1@example").is_ok());
        for bad in ["", "a/b", "a\nb", &"x".repeat(201)] {
            assert!(check_id("id", bad).is_err(), "{bad:?}");
        }
    }
}
