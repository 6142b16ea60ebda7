//! Where an event becomes deliveries: a pure function of the event, the
//! tenant's rules and its integrations.

use std::{collections::HashMap, sync::Arc};

use crate::{Condition, IntegrationId, RuleId, condition::ConditionInput, glob};

/// A rule as the router needs it (already parsed).
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: RuleId,
    pub enabled: bool,
    pub event_types: Vec<String>,
    pub condition: Option<Arc<Condition>>,
    pub integration_ids: Vec<IntegrationId>,
    /// The recipients the rule also reaches.
    pub audience: Option<Audience>,
}

/// Which recipients a rule reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    All,
    /// Every recipient whose attribute `name` has (or, for an array,
    /// contains) the value, as canonical JSON text: `("role", "\"admin\"")`.
    Attributes(Vec<(String, String)>),
}

/// An integration as the router needs it.
#[derive(Debug, Clone)]
pub struct Target {
    pub channel: String,
    pub enabled: bool,
}

/// The event being routed.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub severity: &'a str,
    pub data: &'a serde_json::Value,
}

/// One delivery the router decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDelivery {
    pub integration_id: IntegrationId,
    pub channel: String,
    /// The first rule that matched; kept for "why did this go out?".
    pub rule_id: RuleId,
    /// `Some(reason)` when the delivery is recorded as `skipped` at once.
    pub skip_reason: Option<String>,
}

/// The router's decision for one event.
#[derive(Debug, Default)]
pub struct Plan {
    pub deliveries: Vec<PlannedDelivery>,
    /// Conditions that could not be evaluated (counted as no match).
    pub condition_errors: Vec<(RuleId, String)>,
    /// The audiences of the rules that matched, in rule order.
    pub audiences: Vec<(RuleId, Audience)>,
}

/// Decides which integrations hear about `event`: every enabled rule whose
/// `event_types` match and whose condition holds contributes its
/// integrations; each integration appears once, in rule order. A disabled
/// integration is planned as skipped so the history says why nothing went out.
/// Rule integrations that no longer exist are left out.
pub fn plan(event: EventView<'_>, rules: &[Rule], targets: &HashMap<IntegrationId, Target>) -> Plan {
    let mut out = Plan::default();
    let input =
        ConditionInput { id: event.id, event_type: event.event_type, severity: event.severity, data: event.data };
    for rule in rules.iter().filter(|r| r.enabled) {
        if !rule.event_types.iter().any(|p| glob::matches(p, event.event_type)) {
            continue;
        }
        if let Some(cond) = &rule.condition {
            match cond.eval(&input) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    out.condition_errors.push((rule.id.clone(), e));
                    continue;
                }
            }
        }
        if let Some(audience) = &rule.audience {
            out.audiences.push((rule.id.clone(), audience.clone()));
        }
        for id in &rule.integration_ids {
            if out.deliveries.iter().any(|d| &d.integration_id == id) {
                continue;
            }
            let Some(target) = targets.get(id) else { continue };
            out.deliveries.push(PlannedDelivery {
                integration_id: id.clone(),
                channel: target.channel.clone(),
                rule_id: rule.id.clone(),
                skip_reason: (!target.enabled).then(|| "integration disabled".to_owned()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(types: &[&str], cond: Option<&str>, ints: &[&IntegrationId]) -> Rule {
        Rule {
            id: RuleId::new(),
            enabled: true,
            event_types: types.iter().map(|s| s.to_string()).collect(),
            condition: cond.map(|c| Arc::new(Condition::parse(c).unwrap())),
            integration_ids: ints.iter().map(|i| (*i).clone()).collect(),
            audience: None,
        }
    }

    fn targets(list: &[(&IntegrationId, bool)]) -> HashMap<IntegrationId, Target> {
        list.iter().map(|(id, en)| ((*id).clone(), Target { channel: "webhook".into(), enabled: *en })).collect()
    }

    fn ev<'a>(t: &'a str, sev: &'a str, data: &'a serde_json::Value) -> EventView<'a> {
        EventView { id: "evt_1", event_type: t, severity: sev, data }
    }

    #[test]
    fn globs_conditions_and_dedup() {
        let (a, b) = (IntegrationId::new(), IntegrationId::new());
        let rules = vec![
            rule(&["auth.*"], None, &[&a]),
            rule(&["*"], Some("data.n > 1"), &[&a, &b]),
            rule(&["billing.*"], None, &[&b]),
        ];
        let t = targets(&[(&a, true), (&b, true)]);
        let data = json!({"n": 2});
        let p = plan(ev("auth.failed", "error", &data), &rules, &t);
        let ids: Vec<_> = p.deliveries.iter().map(|d| d.integration_id.clone()).collect();
        assert_eq!(ids, vec![a.clone(), b.clone()]);
        assert_eq!(p.deliveries[0].rule_id, rules[0].id);

        let low = json!({"n": 1});
        let p = plan(ev("auth.failed", "error", &low), &rules, &t);
        assert_eq!(p.deliveries.len(), 1);
        let p = plan(ev("job.done", "info", &low), &rules, &t);
        assert!(p.deliveries.is_empty());
    }

    #[test]
    fn disabled_rules_and_integrations() {
        let (a, b, gone) = (IntegrationId::new(), IntegrationId::new(), IntegrationId::new());
        let mut off = rule(&["*"], None, &[&a]);
        off.enabled = false;
        let rules = vec![off, rule(&["*"], None, &[&b, &gone])];
        let t = targets(&[(&a, true), (&b, false)]);
        let data = json!({});
        let p = plan(ev("x", "info", &data), &rules, &t);
        assert_eq!(p.deliveries.len(), 1);
        assert_eq!(p.deliveries[0].integration_id, b);
        assert_eq!(p.deliveries[0].skip_reason.as_deref(), Some("integration disabled"));
    }

    #[test]
    fn matching_rules_contribute_their_audiences() {
        let mut admins = rule(&["job.*"], Some("severity == 'error'"), &[]);
        admins.audience = Some(Audience::Attributes(vec![("role".into(), "\"admin\"".into())]));
        let mut everyone = rule(&["billing.*"], None, &[]);
        everyone.audience = Some(Audience::All);
        let rules = vec![admins.clone(), everyone];
        let data = json!({});
        let p = plan(ev("job.failed", "error", &data), &rules, &HashMap::new());
        assert_eq!(p.audiences, vec![(admins.id.clone(), admins.audience.clone().unwrap())]);
        assert!(plan(ev("job.failed", "info", &data), &rules, &HashMap::new()).audiences.is_empty());
    }

    #[test]
    fn condition_errors_are_reported_not_matched() {
        let a = IntegrationId::new();
        let rules = vec![rule(&["*"], Some("data.x + 1 > 2"), &[&a])];
        let data = json!({"x": "text"});
        let p = plan(ev("x", "info", &data), &rules, &targets(&[(&a, true)]));
        assert!(p.deliveries.is_empty());
        assert_eq!(p.condition_errors.len(), 1);
    }
}
