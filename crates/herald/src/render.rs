//! Rendering for people: a tenant's template for the event's type and the
//! channel (in the recipient's locale, with fallback), over the built-in
//! default. What comes out is the [`Content`] every channel formats.
//!
//! A template that fails at send time (it ran out of fuel on this event's
//! data, say) does not lose the message: the default rendering is used and
//! the failure logged.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use herald_channels::{
    Content, Severity,
    render::{MAX_BODY, MAX_TITLE, cut, one_line},
};
use herald_core::template::{self, RenderContext, TemplateError, TemplateSet};
use herald_store::{Db, catalogue::TemplateRow, recipients::RecipientRow};
use serde_json::{Value, json};

use crate::state::rfc3339;

/// How long a node trusts its cached copy of a tenant's templates; writes
/// on this node clear it at once, other nodes see them within this time.
const TEMPLATE_TTL: Duration = Duration::from_secs(2);

/// What a message is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub tenant_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub severity: Severity,
    pub data: &'a Value,
    pub created_at: i64,
    /// The person, for deliveries to people.
    pub recipient: Option<&'a RecipientRow>,
}

/// The recipient as templates see it.
pub fn recipient_json(r: &RecipientRow) -> Value {
    json!({
        "id": r.id,
        "email": r.email,
        "phone": r.phone,
        "name": r.name,
        "locale": r.locale,
        "timezone": r.timezone,
        "attributes": serde_json::from_str::<Value>(&r.attributes).unwrap_or_else(|_| json!({})),
    })
}

/// The template of `kind` and `channel` for the recipient's locale: the
/// most specific variant of `locale_chain`, else none.
pub fn choose<'a>(
    templates: &'a [TemplateRow],
    kind: &str,
    channel: &str,
    locale: Option<&str>,
) -> Option<&'a TemplateRow> {
    template::locale_chain(locale).iter().find_map(|l| {
        templates.iter().find(|t| t.kind == kind && t.channel == channel && t.locale.eq_ignore_ascii_case(l))
    })
}

pub fn set_of(row: &TemplateRow) -> TemplateSet {
    TemplateSet {
        subject: row.subject.clone(),
        text_body: row.text_body.clone(),
        html_body: row.html_body.clone(),
        title: row.title.clone(),
        body: row.body.clone(),
    }
}

/// Renders `set` (when given) over the default rendering of the event.
/// Email takes `subject`, `text_body` and `html_body`; other channels
/// `title` and `body`. Fields a template leaves out keep the default.
pub fn render(
    set: Option<&TemplateSet>,
    channel: &str,
    subject: &Subject<'_>,
    public_url: Option<&str>,
) -> Result<Content, TemplateError> {
    let link = public_url.map(|base| format!("{base}/v1/events/{}", subject.event_id));
    let mut content = Content::from_event(subject.event_type, subject.severity, subject.data, link.as_deref());
    let Some(set) = set.filter(|s| !s.is_empty()) else { return Ok(content) };
    let ctx = RenderContext {
        data: subject.data.clone(),
        recipient: subject.recipient.map(recipient_json).unwrap_or(Value::Null),
        event: json!({
            "id": subject.event_id,
            "type": subject.event_type,
            "severity": subject.severity.as_str(),
            "created_at": rfc3339(subject.created_at),
        }),
        tenant: json!({"id": subject.tenant_id}),
        timezone: subject.recipient.and_then(|r| r.timezone.clone()),
        locale: subject.recipient.and_then(|r| r.locale.clone()),
    };
    let out = template::render(set, &ctx)?;
    let (title, body) = if channel == "email" { (out.subject, out.text_body.clone()) } else { (out.title, out.body) };
    if let Some(title) = title {
        content.title = cut(&one_line(&title), MAX_TITLE);
    }
    if let Some(body) = body {
        content.body = cut(&body, MAX_BODY);
        // The template says what the message holds: no facts added.
        content.fields.clear();
    }
    if channel == "email" {
        content.html = out.html_body;
        // The template's plain part as written, not the subject above it.
        content.text = out.text_body.map(|t| cut(&t, MAX_BODY));
    }
    Ok(content)
}

/// [`render`], falling back to the default rendering when the template fails.
pub fn render_or_default(
    set: Option<&TemplateSet>,
    channel: &str,
    subject: &Subject<'_>,
    public_url: Option<&str>,
) -> Content {
    match render(set, channel, subject, public_url) {
        Ok(content) => content,
        Err(e) => {
            tracing::warn!(event_id = %subject.event_id, channel, error = %e, "template failed; the default rendering was used");
            render(None, channel, subject, public_url).expect("the default rendering has no template to fail")
        }
    }
}

/// A tenant's templates and when they were read.
type Cached = (Instant, Arc<Vec<TemplateRow>>);

/// Each tenant's templates, cached for a short time.
#[derive(Default)]
pub struct TemplateCache {
    tenants: Mutex<HashMap<String, Cached>>,
}

impl TemplateCache {
    /// Every template of the tenant.
    pub async fn of_tenant(&self, db: &Db, tenant: &str) -> herald_store::Result<Arc<Vec<TemplateRow>>> {
        let cached = self.tenants.lock().expect("template cache lock").get(tenant).cloned();
        match cached {
            Some((at, rows)) if at.elapsed() < TEMPLATE_TTL => Ok(rows),
            _ => {
                let rows = Arc::new(db.all_templates(tenant).await?);
                self.tenants
                    .lock()
                    .expect("template cache lock")
                    .insert(tenant.to_owned(), (Instant::now(), rows.clone()));
                Ok(rows)
            }
        }
    }

    /// Forgets a tenant's templates (after a write on this node).
    pub fn invalidate(&self, tenant: &str) {
        self.tenants.lock().expect("template cache lock").remove(tenant);
    }
}
