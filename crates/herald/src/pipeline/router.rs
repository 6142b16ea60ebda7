//! Where events become deliveries. Routing runs inside the ingest
//! transaction: an event and its deliveries are committed together, so
//! there is never an accepted event without its deliveries, and no second
//! pass over the events table. The decision itself is
//! `herald_core::router::plan`, a pure function.
//!
//! A tenant's rules and integrations are cached; every batch reads the
//! tenants' `config_version` inside its transaction and reloads a tenant whose
//! version moved (rule and integration writes bump it in their own
//! transaction), so every node routes with the rules committed before it.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
};

use herald_core::{
    Condition, DeliveryId, IntegrationId, RuleId,
    router::{self, Audience, EventView, Rule, Target},
};
use herald_store::{Tx, deliveries::NewDelivery, events::NewEvent};

use super::people::{self, PeopleConfig, Routed};

/// A tenant's routing inputs, parsed once.
struct TenantRouting {
    version: i64,
    rules: Vec<Rule>,
    targets: HashMap<IntegrationId, Target>,
    /// Whether any rule has a condition (only then is event data parsed).
    needs_data: bool,
    people: PeopleConfig,
}

/// Routing config per tenant, shared by the ingest writers. No `Default`:
/// a router that knows no channel able to reach people would skip every
/// person's delivery.
pub struct Router {
    tenants: Mutex<HashMap<String, Arc<TenantRouting>>>,
    /// `HERALD_PUBLIC_URL`, for links in inbox items.
    public_url: Option<String>,
    /// Integration kinds that can send to a person's own address.
    reaches_people: HashSet<String>,
}

impl Router {
    pub fn new(public_url: Option<String>, reaches_people: HashSet<String>) -> Self {
        Self { tenants: Mutex::default(), public_url, reaches_people }
    }

    /// The routing config of the tenants of `events`, read inside `tx`
    /// (reloaded where it changed).
    pub async fn configs<'a>(
        &self,
        tx: &mut Tx,
        events: impl Iterator<Item = &'a NewEvent>,
    ) -> anyhow::Result<Configs> {
        let tenants: BTreeSet<&str> = events.map(|e| e.tenant_id.as_str()).collect();
        let mut configs = HashMap::new();
        if tenants.is_empty() {
            return Ok(Configs(configs));
        }
        let tenants: Vec<&str> = tenants.into_iter().collect();
        for (tenant, version) in tx.config_versions(&tenants).await? {
            let cached = self.tenants.lock().expect("routing cache lock").get(&tenant).cloned();
            let config = match cached {
                Some(c) if c.version == version => c,
                _ => {
                    let fresh = Arc::new(load(tx, &tenant, version).await?);
                    self.tenants.lock().expect("routing cache lock").insert(tenant.clone(), fresh.clone());
                    fresh
                }
            };
            configs.insert(tenant, config);
        }
        Ok(Configs(configs))
    }

    /// Plans the deliveries of `events` (those just created, not replays)
    /// and the inbox items of people reached in the inbox now.
    pub async fn route(&self, tx: &mut Tx, configs: &Configs, events: &[&NewEvent]) -> anyhow::Result<Routed> {
        let mut out = Routed::default();
        let configs = &configs.0;
        for event in events {
            let Some(config) = configs.get(&event.tenant_id) else { continue };
            let may_reach_people = config.people.wants(event, &[]);
            if config.rules.is_empty() && !may_reach_people {
                continue;
            }
            let data: serde_json::Value = if config.needs_data || may_reach_people || config.has_audiences() {
                serde_json::from_str(&event.data).unwrap_or_default()
            } else {
                serde_json::Value::Null
            };
            let audiences = plan_event(event, config, &data, &mut out.deliveries);
            if config.people.wants(event, &audiences) {
                let context =
                    people::Context { public_url: self.public_url.as_deref(), reaches_people: &self.reaches_people };
                people::route(tx, &config.people, event, &data, &audiences, &context, &mut out).await?;
            }
        }
        Ok(out)
    }
}

/// The routing config of a batch's tenants.
pub struct Configs(HashMap<String, Arc<TenantRouting>>);

impl Configs {
    /// An event that gives no severity takes its type's, when the tenant
    /// defined the type with one.
    pub fn apply_type_severity(&self, event: &mut NewEvent) {
        if event.severity_given {
            return;
        }
        if let Some(severity) = self.0.get(&event.tenant_id).and_then(|c| c.people.severity_of(&event.event_type)) {
            event.severity = severity.as_str().to_owned();
        }
    }
}

impl TenantRouting {
    fn has_audiences(&self) -> bool {
        self.rules.iter().any(|r| r.audience.is_some())
    }
}

/// Plans the rules' integration deliveries; returns the matching rules' audiences.
fn plan_event(
    event: &NewEvent,
    config: &TenantRouting,
    data: &serde_json::Value,
    out: &mut Vec<NewDelivery>,
) -> Vec<(RuleId, Audience)> {
    if config.rules.is_empty() {
        return Vec::new();
    }
    let view = EventView { id: &event.id, event_type: &event.event_type, severity: &event.severity, data };
    let plan = router::plan(view, &config.rules, &config.targets);
    for (rule, error) in plan.condition_errors {
        tracing::warn!(event_id = %event.id, rule_id = %rule, error = %error, "rule condition could not be evaluated; treated as no match");
    }
    for d in plan.deliveries {
        out.push(NewDelivery {
            id: DeliveryId::new().into_string(),
            tenant_id: event.tenant_id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            integration_id: Some(d.integration_id.into_string()),
            recipient_id: None,
            address: None,
            rule_id: Some(d.rule_id.into_string()),
            channel: d.channel,
            status: if d.skip_reason.is_some() { "skipped" } else { "pending" }.to_owned(),
            due_at: event.deliver_at.unwrap_or(event.created_at).max(event.created_at),
            skip_reason: d.skip_reason,
            created_at: event.created_at,
        });
    }
    plan.audiences
}

async fn load(tx: &mut Tx, tenant: &str, version: i64) -> anyhow::Result<TenantRouting> {
    let (rows, targets) = tx.routing_config(tenant).await?;
    let mut rules = Vec::new();
    for row in rows.into_iter().filter(|r| r.enabled) {
        // Conditions were checked when the rule was saved; one that no longer
        // parses (a row edited by hand) disables its rule, loudly.
        let condition = match row.condition.as_deref().map(Condition::parse).transpose() {
            Ok(c) => c.map(Arc::new),
            Err(e) => {
                tracing::error!(rule_id = %row.id, error = %e, "stored rule condition does not parse; rule skipped");
                continue;
            }
        };
        rules.push(Rule {
            id: RuleId::from_stored(row.id.clone()),
            enabled: row.enabled,
            event_types: row.event_types()?,
            condition,
            integration_ids: row.integration_ids()?.into_iter().map(IntegrationId::from_stored).collect(),
            audience: audience_of(&row)?,
        });
    }
    let people = PeopleConfig::load(tx, tenant, &targets).await?;
    let targets = targets
        .into_iter()
        .map(|t| (IntegrationId::from_stored(t.id), Target { channel: t.kind, enabled: t.enabled }))
        .collect();
    let needs_data = rules.iter().any(|r| r.condition.is_some());
    Ok(TenantRouting { version, rules, targets, needs_data, people })
}

/// A rule's stored audience (`{"all": true}` or `{"attributes": {…}}`), the
/// attribute values as canonical JSON text like the recipients' index.
fn audience_of(row: &herald_store::rules::RuleRow) -> anyhow::Result<Option<Audience>> {
    let Some(text) = row.audience.as_deref() else { return Ok(None) };
    let value: serde_json::Value = serde_json::from_str(text)?;
    if value.get("all").and_then(serde_json::Value::as_bool) == Some(true) {
        return Ok(Some(Audience::All));
    }
    let attributes = value.get("attributes").and_then(serde_json::Value::as_object);
    let list =
        attributes.map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect::<Vec<_>>()).unwrap_or_default();
    Ok((!list.is_empty()).then_some(Audience::Attributes(list)))
}
