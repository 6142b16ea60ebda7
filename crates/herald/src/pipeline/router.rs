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
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use herald_core::{
    Condition, DeliveryId, IntegrationId, RuleId,
    router::{self, EventView, Rule, Target},
};
use herald_store::{Tx, deliveries::NewDelivery, events::NewEvent};

/// A tenant's routing inputs, parsed once.
struct TenantRouting {
    version: i64,
    rules: Vec<Rule>,
    targets: HashMap<IntegrationId, Target>,
    /// Whether any rule has a condition (only then is event data parsed).
    needs_data: bool,
}

/// Routing config per tenant, shared by the ingest writers.
#[derive(Default)]
pub struct Router {
    tenants: Mutex<HashMap<String, Arc<TenantRouting>>>,
}

impl Router {
    /// Plans the deliveries of `events` (those just created, not replays),
    /// reading any changed tenant config inside `tx`.
    pub async fn route(&self, tx: &mut Tx, events: &[&NewEvent]) -> anyhow::Result<Vec<NewDelivery>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let tenants: BTreeSet<&str> = events.iter().map(|e| e.tenant_id.as_str()).collect();
        let tenants: Vec<&str> = tenants.into_iter().collect();
        let mut configs = HashMap::new();
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
        let mut out = Vec::new();
        for event in events {
            if let Some(config) = configs.get(&event.tenant_id)
                && !config.rules.is_empty()
            {
                plan_event(event, config, &mut out);
            }
        }
        Ok(out)
    }
}

fn plan_event(event: &NewEvent, config: &TenantRouting, out: &mut Vec<NewDelivery>) {
    let data: serde_json::Value =
        if config.needs_data { serde_json::from_str(&event.data).unwrap_or_default() } else { serde_json::Value::Null };
    let view = EventView { id: &event.id, event_type: &event.event_type, severity: &event.severity, data: &data };
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
        });
    }
    let targets = targets
        .into_iter()
        .map(|t| (IntegrationId::from_stored(t.id), Target { channel: t.kind, enabled: t.enabled }))
        .collect();
    let needs_data = rules.iter().any(|r| r.condition.is_some());
    Ok(TenantRouting { version, rules, targets, needs_data })
}
