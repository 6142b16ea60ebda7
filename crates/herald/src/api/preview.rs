//! `POST /v1/templates/preview`: renders a notification type for a channel
//! as a person would get it (their locale's variant, their timezone), from
//! the stored templates or an unsaved one, without sending anything.

use axum::{Json, extract::State};
use herald_channels::{Message, Report, Severity};
use herald_core::template::{TemplateSet, validate_locale, validate_timezone};
use herald_store::recipients::RecipientRow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    catalogue::check_type_id,
    recipients::check_id,
    templates::{check_channel, check_fields, locale_param, template_error},
};
use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{ApiJson, parse_json},
    render::{self, Subject, choose, set_of},
    state::{AppState, now_ms, rfc3339},
};

/// Stands in for the event and delivery ids a real message would have.
const EVENT_ID: &str = "evt_preview";
const DELIVERY_ID: &str = "dlv_preview";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PreviewIn {
    #[serde(rename = "type")]
    kind: String,
    channel: String,
    #[serde(default)]
    data: Option<Map<String, Value>>,
    /// A stored recipient's id, or an inline `{"name", "locale", "timezone", …}`.
    #[serde(default)]
    recipient: Option<Value>,
    /// Chooses the variant instead of the recipient's locale.
    #[serde(default)]
    locale: Option<String>,
    /// An unsaved template to render instead of the stored ones.
    #[serde(default)]
    template: Option<TemplateSet>,
    /// The event's severity; the type's own, else `info`, when absent.
    #[serde(default)]
    severity: Option<Severity>,
}

/// A person who need not exist, for a preview.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InlineRecipient {
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
}

/// Which template was rendered.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Source {
    /// The `template` of the request.
    Request,
    /// A stored variant (`locale` says which).
    Stored,
    /// None: Herald's built-in rendering.
    Default,
}

#[derive(Debug, Serialize)]
pub(super) struct PreviewOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    html_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    /// The stored variant used (`""` the default one); null otherwise.
    locale: Option<String>,
    source: Source,
}

/// The recipient of a preview: loaded by id, or built from the inline object.
async fn recipient(state: &AppState, tenant: &str, given: Option<Value>) -> ApiResult<Option<RecipientRow>> {
    let inline = match given {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(id)) => {
            let row = state.db.get_recipient(tenant, &id).await?;
            return row
                .map(Some)
                .ok_or_else(|| ApiError::invalid("recipient", format!("recipient `{id}` does not exist")));
        }
        Some(v @ Value::Object(_)) => parse_json::<InlineRecipient>(&serde_json::to_vec(&v)?).map_err(|e| match e {
            ApiError::Invalid { field, detail } => ApiError::Invalid {
                field: Some(field.map_or("recipient".into(), |f| format!("recipient.{f}"))),
                detail,
            },
            other => other,
        })?,
        Some(_) => return Err(ApiError::invalid("recipient", "must be a recipient id or an object")),
    };
    if let Some(id) = &inline.id {
        check_id("recipient.id", id)?;
    }
    if let Some(l) = inline.locale.as_deref().filter(|l| !validate_locale(l)) {
        return Err(ApiError::invalid("recipient.locale", format!("`{l}` is not a locale tag such as `de`")));
    }
    if let Some(tz) = inline.timezone.as_deref().filter(|tz| !validate_timezone(tz)) {
        return Err(ApiError::invalid("recipient.timezone", format!("`{tz}` is not an IANA timezone")));
    }
    let now = now_ms();
    Ok(Some(RecipientRow {
        tenant_id: tenant.to_owned(),
        id: inline.id.unwrap_or_else(|| "preview".to_owned()),
        email: inline.email,
        phone: inline.phone,
        name: inline.name,
        locale: inline.locale,
        timezone: inline.timezone,
        attributes: serde_json::to_string(&inline.attributes.unwrap_or_default())?,
        addresses: "{}".to_owned(),
        preferences: None,
        created_at: now,
        updated_at: now,
    }))
}

pub(super) async fn preview(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    ApiJson(input): ApiJson<PreviewIn>,
) -> ApiResult<Json<PreviewOut>> {
    let tenant = caller.tenant.as_str();
    check_type_id("type", &input.kind)?;
    check_channel(&state, "channel", &input.channel)?;
    let locale = input.locale.as_deref().map(|l| locale_param("locale", Some(l))).transpose()?;
    let person = recipient(&state, tenant, input.recipient).await?;
    let chosen_locale = locale.or_else(|| person.as_ref().and_then(|p| p.locale.clone()));

    let (set, source, used_locale, prefix) = match input.template {
        Some(set) => {
            check_fields(&input.channel, &set, "template.")?;
            set.check().map_err(|e| template_error("template.", e))?;
            (Some(set), Source::Request, None, "template.")
        }
        None => {
            let variants = state.db.template_variants(tenant, &input.kind, &input.channel).await?;
            match choose(&variants, &input.kind, &input.channel, chosen_locale.as_deref()) {
                Some(row) => (Some(set_of(row)), Source::Stored, Some(row.locale.clone()), ""),
                None => (None, Source::Default, None, ""),
            }
        }
    };
    let severity = match input.severity {
        Some(s) => s,
        None => state
            .db
            .get_notification_type(tenant, &input.kind)
            .await?
            .and_then(|t| t.severity)
            .map_or(Severity::Info, |s| Severity::from_stored(&s)),
    };
    let data = Value::Object(input.data.unwrap_or_default());
    let now = now_ms();
    let subject = Subject {
        tenant_id: tenant,
        event_id: EVENT_ID,
        event_type: &input.kind,
        severity,
        data: &data,
        created_at: now,
        recipient: person.as_ref(),
    };
    let content = render::render(set.as_ref(), &input.channel, &subject, state.config.public_url.as_deref())
        .map_err(|e| template_error(prefix, e))?;
    let mut out = PreviewOut {
        subject: None,
        text_body: None,
        html_body: None,
        title: None,
        body: None,
        link: None,
        locale: used_locale,
        source,
    };
    if input.channel == "email" {
        let (timestamp, report) = (rfc3339(now), Report::default());
        let message = Message::new((DELIVERY_ID, EVENT_ID), &input.kind, &timestamp, &data, &content, &report);
        let (subject, text, html) = herald_channels::email::preview(&message);
        (out.subject, out.text_body, out.html_body) = (Some(subject), Some(text), Some(html));
    } else {
        out.title = Some(content.title.clone());
        out.body = Some(content.plain_body());
        out.link = content.link.clone();
    }
    Ok(Json(out))
}
