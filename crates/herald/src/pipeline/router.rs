//! The routing stage: takes unrouted events and, in one transaction per
//! batch, inserts their deliveries and marks them routed. The decision itself
//! is `herald_core::router::plan`, a pure function.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use herald_core::{
    Condition, DeliveryId, IntegrationId, RuleId,
    router::{self, EventView, Rule, Target},
};
use herald_store::{Db, deliveries::NewDelivery, events::EventRow};
use tokio_util::sync::CancellationToken;

use super::wake::Wake;
use crate::state::now_ms;

/// Events routed per transaction.
const BATCH: i64 = 512;

/// Runs until shutdown: routes whenever events are committed, and at least
/// every second (events posted to another node, or left by a crash).
pub async fn run(db: Db, wake: Wake, shutdown: CancellationToken) {
    loop {
        match route_batch(&db, &wake).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = ?e, "routing failed; will retry");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.events.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Routes one batch; returns how many events it took.
pub async fn route_batch(db: &Db, wake: &Wake) -> anyhow::Result<usize> {
    let (mut tx, events) = db.begin_routing(BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let now = now_ms();
    let mut by_tenant: BTreeMap<&str, Vec<&EventRow>> = BTreeMap::new();
    for e in &events {
        by_tenant.entry(&e.tenant_id).or_default().push(e);
    }
    let mut deliveries = Vec::new();
    for (tenant, events) in by_tenant {
        let (rules, targets) = load_tenant(db, tenant).await?;
        if rules.is_empty() {
            continue;
        }
        for event in events {
            plan_event(event, &rules, &targets, now, &mut deliveries);
        }
    }
    tx.insert_deliveries(&deliveries).await?;
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    tx.mark_routed(&ids, now).await?;
    tx.commit().await?;
    if deliveries.iter().any(|d| d.status == "pending") {
        wake.deliveries_committed().await;
    }
    tracing::debug!(events = events.len(), deliveries = deliveries.len(), "routed");
    Ok(events.len())
}

fn plan_event(
    event: &EventRow,
    rules: &[Rule],
    targets: &HashMap<IntegrationId, Target>,
    now: i64,
    out: &mut Vec<NewDelivery>,
) {
    // Only conditions read the data: skip parsing it when no rule has one.
    let data: serde_json::Value = if rules.iter().any(|r| r.condition.is_some()) {
        serde_json::from_str(&event.data).unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    let view = EventView { id: &event.id, event_type: &event.event_type, severity: &event.severity, data: &data };
    let plan = router::plan(view, rules, targets);
    for (rule, error) in plan.condition_errors {
        tracing::warn!(event_id = %event.id, rule_id = %rule, error = %error, "rule condition could not be evaluated; treated as no match");
    }
    for d in plan.deliveries {
        out.push(NewDelivery {
            id: DeliveryId::new().into_string(),
            tenant_id: event.tenant_id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            integration_id: d.integration_id.into_string(),
            rule_id: Some(d.rule_id.into_string()),
            channel: d.channel,
            status: if d.skip_reason.is_some() { "skipped" } else { "pending" }.to_owned(),
            due_at: event.deliver_at.unwrap_or(now).max(event.created_at),
            skip_reason: d.skip_reason,
            created_at: now,
        });
    }
}

async fn load_tenant(db: &Db, tenant: &str) -> anyhow::Result<(Vec<Rule>, HashMap<IntegrationId, Target>)> {
    let mut rules = Vec::new();
    for row in db.list_rules(tenant, None, i64::MAX).await? {
        if !row.enabled {
            continue;
        }
        // Conditions were checked when the rule was saved; one that no longer
        // parses (a stored row edited by hand) disables its rule, loudly.
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
    let targets = db
        .all_integrations(tenant)
        .await?
        .into_iter()
        .map(|i| (IntegrationId::from_stored(i.id), Target { channel: i.kind, enabled: i.enabled }))
        .collect();
    Ok((rules, targets))
}
