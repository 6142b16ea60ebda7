//! Where an event becomes deliveries to people, inside the ingest
//! transaction: who (the event's own recipients, the audiences of matching
//! rules, those who subscribed to the type), each once; on which channels
//! (`herald_core::preferences::decide`); through which integration and to
//! which address. `in_app` items of events due now are written in the same
//! transaction, so an accepted event's inbox item exists the moment the
//! event does.

use std::collections::{HashMap, HashSet};

use herald_channels::Severity;
use herald_core::{
    DeliveryId, NotificationId, Preferences, RuleId,
    condition::ConditionInput,
    preferences::{self, TypeDefaults},
    router::Audience,
};
use herald_store::{
    Tx,
    catalogue::TemplateRow,
    deliveries::NewDelivery,
    events::NewEvent,
    inbox::InboxItemRow,
    recipients::{AttributeMatch, RecipientRow},
    tenants::RoutingTarget,
};
use serde_json::Value;

use crate::render::{self, Subject};

/// The most recipients one audience rule reaches in one event.
const MAX_AUDIENCE: i64 = 100_000;

/// A tenant's people-side routing inputs, cached with its rules.
#[derive(Default)]
pub struct PeopleConfig {
    types: HashMap<String, TypeDefaults>,
    /// The types that have a severity: events of theirs without one get it.
    severities: HashMap<String, Severity>,
    /// `in_app` templates, for items written at ingest.
    inbox_templates: Vec<TemplateRow>,
    roles: HashMap<String, Preferences>,
    /// Kind → the integration people's channels of that kind use, or why none.
    integrations: HashMap<String, Result<(String, bool), String>>,
    subscribed_types: HashSet<String>,
}

impl PeopleConfig {
    pub async fn load(tx: &mut Tx, tenant: &str, targets: &[RoutingTarget]) -> anyhow::Result<Self> {
        let rows = tx.all_notification_types(tenant).await?;
        let severities =
            rows.iter().filter_map(|t| Some((t.kind.clone(), Severity::from_stored(t.severity.as_deref()?)))).collect();
        let types = rows
            .into_iter()
            .map(|t| {
                let channels = serde_json::from_str(&t.channels).unwrap_or_else(|_| vec!["in_app".to_owned()]);
                (t.kind, TypeDefaults { default_enabled: t.default_enabled, channels, required: t.required })
            })
            .collect();
        let inbox_templates = tx.all_templates(tenant).await?.into_iter().filter(|t| t.channel == "in_app").collect();
        let mut roles = HashMap::new();
        for (role, doc) in tx.role_preferences(tenant).await? {
            match serde_json::from_str(&doc) {
                Ok(p) => {
                    roles.insert(role, p);
                }
                Err(e) => tracing::error!(tenant, role, error = %e, "stored role preferences do not parse; ignored"),
            }
        }
        let subscribed_types = tx.subscribed_types(tenant).await?.into_iter().collect();
        Ok(Self {
            types,
            severities,
            inbox_templates,
            roles,
            integrations: person_integrations(targets),
            subscribed_types,
        })
    }

    /// The severity of `kind`, when its type defines one.
    pub fn severity_of(&self, kind: &str) -> Option<Severity> {
        self.severities.get(kind).copied()
    }

    /// Whether routing `event` to people can find anyone.
    pub fn wants(&self, event: &NewEvent, audiences: &[(RuleId, Audience)]) -> bool {
        !event.recipients.is_empty() || !audiences.is_empty() || self.subscribed_types.contains(&event.event_type)
    }
}

/// For each kind: the integration marked default, else the only one.
fn person_integrations(targets: &[RoutingTarget]) -> HashMap<String, Result<(String, bool), String>> {
    let mut by_kind: HashMap<&str, Vec<&RoutingTarget>> = HashMap::new();
    for t in targets {
        by_kind.entry(&t.kind).or_default().push(t);
    }
    by_kind
        .into_iter()
        .map(|(kind, list)| {
            let chosen = match (list.iter().find(|t| t.is_default), list.as_slice()) {
                (Some(t), _) | (None, [t]) => Ok((t.id.clone(), t.enabled)),
                (None, _) => Err(format!("several {kind} integrations and none is marked default")),
            };
            (kind.to_owned(), chosen)
        })
        .collect()
}

/// What routing to people produced for a batch.
#[derive(Default)]
pub struct Routed {
    pub deliveries: Vec<NewDelivery>,
    /// Items to write with the deliveries, then publish live.
    pub inbox: Vec<InboxItemRow>,
}

/// What routing to people needs from the node.
pub struct Context<'a> {
    /// `HERALD_PUBLIC_URL`, for links in inbox items.
    pub public_url: Option<&'a str>,
    /// Integration kinds that can send to a person's own address.
    pub reaches_people: &'a HashSet<String>,
}

/// Routes one event to people. `data` is the parsed event data.
pub async fn route(
    tx: &mut Tx,
    people: &PeopleConfig,
    event: &NewEvent,
    data: &Value,
    audiences: &[(RuleId, Audience)],
    ctx: &Context<'_>,
    out: &mut Routed,
) -> anyhow::Result<()> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut who: Vec<(String, Option<RuleId>)> = Vec::new();
    for id in &event.recipients {
        if seen.insert(id.clone()) {
            who.push((id.clone(), None));
        }
    }
    for (rule, audience) in audiences {
        let filters: Vec<AttributeMatch> = match audience {
            Audience::All => Vec::new(),
            Audience::Attributes(list) => {
                list.iter().map(|(name, value)| AttributeMatch { name: name.clone(), value: value.clone() }).collect()
            }
        };
        for id in tx.audience(&event.tenant_id, &filters, MAX_AUDIENCE).await? {
            if seen.insert(id.clone()) {
                who.push((id, Some(rule.clone())));
            }
        }
    }
    if people.subscribed_types.contains(&event.event_type) {
        for id in tx.subscribers(&event.tenant_id, &event.event_type).await? {
            if seen.insert(id.clone()) {
                who.push((id, None));
            }
        }
    }
    if who.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = who.iter().map(|(id, _)| id.clone()).collect();
    let rows: HashMap<String, RecipientRow> =
        tx.recipients_by_ids(&event.tenant_id, &ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
    let undefined = TypeDefaults::undefined();
    let defaults = people.types.get(&event.event_type).unwrap_or(&undefined);
    let input = ConditionInput { id: &event.id, event_type: &event.event_type, severity: &event.severity, data };
    let due_at = event.deliver_at.unwrap_or(event.created_at).max(event.created_at);
    for (id, rule) in who {
        let row = rows.get(&id);
        let own: Option<Preferences> =
            row.and_then(|r| r.preferences.as_deref()).and_then(|p| serde_json::from_str(p).ok());
        let roles: Vec<&Preferences> = row.map(|r| roles_of(r, &people.roles)).unwrap_or_default();
        for choice in preferences::decide(defaults, &input, own.as_ref(), &roles) {
            let mut d = NewDelivery {
                id: DeliveryId::new().into_string(),
                tenant_id: event.tenant_id.clone(),
                event_id: event.id.clone(),
                event_type: event.event_type.clone(),
                integration_id: None,
                recipient_id: Some(id.clone()),
                address: None,
                rule_id: rule.as_ref().map(|r| r.as_str().to_owned()),
                channel: choice.channel.clone(),
                status: "pending".into(),
                due_at,
                skip_reason: choice.skip,
                created_at: event.created_at,
            };
            if d.skip_reason.is_none() {
                if choice.channel == "in_app" {
                    if due_at <= event.created_at {
                        out.inbox.push(inbox_item(people, event, data, row, &id, &d.id, ctx.public_url));
                        d.status = "sent".into();
                    }
                } else {
                    d.skip_reason = destination(people, ctx, &choice.channel, choice.address, row, &mut d);
                }
            }
            if d.skip_reason.is_some() {
                d.status = "skipped".into();
            }
            out.deliveries.push(d);
        }
    }
    Ok(())
}

/// The preferences of the recipient's roles (`attributes.role`, a string
/// or a list), in order.
fn roles_of<'a>(r: &RecipientRow, roles: &'a HashMap<String, Preferences>) -> Vec<&'a Preferences> {
    if roles.is_empty() {
        return Vec::new();
    }
    let attributes: Value = serde_json::from_str(&r.attributes).unwrap_or_default();
    match attributes.get("role") {
        Some(Value::String(role)) => roles.get(role).into_iter().collect(),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).filter_map(|role| roles.get(role)).collect(),
        _ => Vec::new(),
    }
}

/// Fills in the integration and address of a person's channel; `Some`
/// reason when the delivery cannot be made.
fn destination(
    people: &PeopleConfig,
    ctx: &Context<'_>,
    channel: &str,
    address: Option<String>,
    row: Option<&RecipientRow>,
    d: &mut NewDelivery,
) -> Option<String> {
    match people.integrations.get(channel) {
        None => return Some(format!("no {channel} integration")),
        Some(Err(reason)) => return Some(reason.clone()),
        Some(Ok((id, enabled))) => {
            d.integration_id = Some(id.clone());
            if !enabled {
                return Some("integration disabled".into());
            }
        }
    }
    if !ctx.reaches_people.contains(channel) {
        return Some(format!("a {channel} integration sends to its configured destination, not to a person"));
    }
    // Web Push reaches the recipient's stored browser subscriptions.
    if channel == herald_channels::web_push::KIND {
        return None;
    }
    let address = address.or_else(|| {
        let row = row?;
        match channel {
            "email" => row.email.clone(),
            "twilio_sms" => row.phone.clone(),
            _ => serde_json::from_str::<Value>(&row.addresses)
                .ok()?
                .get(channel)
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    });
    match address {
        Some(a) => {
            d.address = Some(a);
            None
        }
        None => Some("no address".into()),
    }
}

fn inbox_item(
    people: &PeopleConfig,
    event: &NewEvent,
    data: &Value,
    row: Option<&RecipientRow>,
    recipient: &str,
    delivery: &str,
    public_url: Option<&str>,
) -> InboxItemRow {
    let subject = Subject {
        tenant_id: &event.tenant_id,
        event_id: &event.id,
        event_type: &event.event_type,
        severity: Severity::from_stored(&event.severity),
        data,
        created_at: event.created_at,
        recipient: row,
    };
    let locale = row.and_then(|r| r.locale.as_deref());
    let template = render::choose(&people.inbox_templates, &event.event_type, "in_app", locale).map(render::set_of);
    let content = render::render_or_default(template.as_ref(), "in_app", &subject, public_url);
    new_item(event_fields(event, data), recipient, delivery, content)
}

/// What an inbox item keeps of its event.
pub struct EventFields<'a> {
    pub tenant_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub severity: &'a str,
    pub data: String,
    pub created_at: i64,
}

fn event_fields<'a>(event: &'a NewEvent, data: &Value) -> EventFields<'a> {
    EventFields {
        tenant_id: &event.tenant_id,
        event_id: &event.id,
        event_type: &event.event_type,
        severity: &event.severity,
        data: data.to_string(),
        created_at: event.created_at,
    }
}

/// An inbox item from rendered content.
pub fn new_item(
    e: EventFields<'_>,
    recipient: &str,
    delivery: &str,
    content: herald_channels::Content,
) -> InboxItemRow {
    // The body, else the facts; never the title a second time.
    let body = if content.body.is_empty() {
        content.fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("\n")
    } else {
        content.body
    };
    InboxItemRow {
        id: NotificationId::new().into_string(),
        tenant_id: e.tenant_id.to_owned(),
        recipient_id: recipient.to_owned(),
        delivery_id: delivery.to_owned(),
        event_id: e.event_id.to_owned(),
        kind: e.event_type.to_owned(),
        severity: e.severity.to_owned(),
        title: content.title,
        body,
        link: content.link,
        data: e.data,
        created_at: e.created_at,
        read_at: None,
        archived_at: None,
    }
}
