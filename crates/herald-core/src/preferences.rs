//! What a person wants to hear about, and where: the preferences document
//! and the pure decision of which channels an event reaches a person on.
//!
//! Layers, most specific first: the recipient's own preferences, then the
//! tenant's defaults for the recipient's roles, then the notification type's
//! own defaults. A `required` type ignores every switch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, ConditionInput};

/// A preferences document, replaced whole by a PUT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Global channel switches: `{"email": false}` turns email off for every type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, bool>,
    /// Per notification type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, TypePreference>,
}

/// A person's choice for one notification type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypePreference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Replaces the type's default channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// Only events for which this holds (same language as rule conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Address overrides for this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl Preferences {
    /// The types this document turns on explicitly: the recipient hears
    /// about them even when no one names them.
    pub fn subscribed_types(&self) -> impl Iterator<Item = &str> {
        self.types.iter().filter(|(_, p)| p.enabled == Some(true)).map(|(t, _)| t.as_str())
    }
}

/// A notification type as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDefaults {
    pub default_enabled: bool,
    pub channels: Vec<String>,
    pub required: bool,
}

impl TypeDefaults {
    /// A type nobody defined: on, in the inbox.
    pub fn undefined() -> Self {
        Self { default_enabled: true, channels: vec!["in_app".to_owned()], required: false }
    }
}

/// One channel of the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelChoice {
    pub channel: String,
    /// `Some(reason)`: recorded as a skipped delivery.
    pub skip: Option<String>,
    /// Address override from the type preference (`email` or `phone`).
    pub address: Option<String>,
}

/// Decides the channels `event` reaches one person on. `own` is the
/// person's preferences, `roles` the tenant's defaults for their roles (in
/// order; the first that says something wins). Every channel the type would
/// use appears once, either to deliver or skipped with the reason.
pub fn decide(
    defaults: &TypeDefaults,
    event: &ConditionInput<'_>,
    own: Option<&Preferences>,
    roles: &[&Preferences],
) -> Vec<ChannelChoice> {
    let layers: Vec<&Preferences> = own.into_iter().chain(roles.iter().copied()).collect();
    let type_pref = |f: &dyn Fn(&TypePreference) -> bool| {
        layers.iter().filter_map(|p| p.types.get(event.event_type)).find(|t| f(t))
    };
    if defaults.required {
        return defaults
            .channels
            .iter()
            .map(|c| ChannelChoice { channel: c.clone(), skip: None, address: override_for(c, type_pref(&|_| true)) })
            .collect();
    }
    let enabled_by = type_pref(&|t| t.enabled.is_some());
    let enabled = enabled_by.and_then(|t| t.enabled).unwrap_or(defaults.default_enabled);
    let channels = type_pref(&|t| t.channels.is_some())
        .and_then(|t| t.channels.clone())
        .unwrap_or_else(|| defaults.channels.clone());
    let condition = type_pref(&|t| t.condition.is_some()).and_then(|t| t.condition.as_deref());
    let type_skip = if !enabled {
        Some(match enabled_by {
            Some(_) => format!("preference: {} is turned off", event.event_type),
            None => format!("preference: {} is off by default", event.event_type),
        })
    } else {
        match condition.map(check_condition(event)) {
            Some(Ok(true)) | None => None,
            Some(Ok(false)) => Some("preference: the condition does not hold".to_owned()),
            Some(Err(e)) => Some(format!("preference: the condition could not be evaluated: {e}")),
        }
    };
    let mut out: Vec<ChannelChoice> = Vec::with_capacity(channels.len());
    for channel in channels {
        if out.iter().any(|c| c.channel == channel) {
            continue;
        }
        let switched_off = layers.iter().find_map(|p| p.channels.get(&channel)) == Some(&false);
        let skip = type_skip
            .clone()
            .or_else(|| switched_off.then(|| format!("preference: the {channel} channel is switched off")));
        let address = override_for(&channel, type_pref(&|t| t.email.is_some() || t.phone.is_some()));
        out.push(ChannelChoice { channel, skip, address });
    }
    out
}

fn check_condition<'a>(event: &'a ConditionInput<'a>) -> impl Fn(&str) -> Result<bool, String> + 'a {
    move |source| Condition::parse(source).map_err(|e| e.to_string())?.eval(event)
}

fn override_for(channel: &str, pref: Option<&TypePreference>) -> Option<String> {
    let pref = pref?;
    match channel {
        "email" => pref.email.clone(),
        "twilio_sms" => pref.phone.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn prefs(v: serde_json::Value) -> Preferences {
        serde_json::from_value(v).unwrap()
    }

    fn defaults(channels: &[&str], on: bool, required: bool) -> TypeDefaults {
        TypeDefaults { default_enabled: on, channels: channels.iter().map(|c| c.to_string()).collect(), required }
    }

    fn run(
        d: &TypeDefaults,
        data: serde_json::Value,
        own: Option<&Preferences>,
        roles: &[&Preferences],
    ) -> Vec<(String, Option<String>)> {
        let event = ConditionInput { id: "evt_1", event_type: "job_failed", severity: "error", data: &data };
        decide(d, &event, own, roles).into_iter().map(|c| (c.channel, c.skip)).collect()
    }

    fn sent(list: &[(String, Option<String>)]) -> Vec<&str> {
        list.iter().filter(|(_, s)| s.is_none()).map(|(c, _)| c.as_str()).collect()
    }

    #[test]
    fn type_defaults_apply_without_preferences() {
        let d = defaults(&["in_app", "email"], true, false);
        assert_eq!(sent(&run(&d, json!({}), None, &[])), vec!["in_app", "email"]);
        let off = defaults(&["in_app"], false, false);
        let r = run(&off, json!({}), None, &[]);
        assert_eq!(r[0].1.as_deref(), Some("preference: job_failed is off by default"));
    }

    #[test]
    fn switches_channels_and_conditions() {
        let d = defaults(&["in_app", "email"], true, false);
        let p = prefs(json!({"channels": {"email": false}}));
        let r = run(&d, json!({}), Some(&p), &[]);
        assert_eq!(sent(&r), vec!["in_app"]);
        assert_eq!(r[1].1.as_deref(), Some("preference: the email channel is switched off"));

        let p = prefs(
            json!({"types": {"job_failed": {"channels": ["twilio_sms"], "condition": "data.job_type in ['config_backup']"}}}),
        );
        assert_eq!(sent(&run(&d, json!({"job_type": "config_backup"}), Some(&p), &[])), vec!["twilio_sms"]);
        let r = run(&d, json!({"job_type": "other"}), Some(&p), &[]);
        assert_eq!(r, vec![("twilio_sms".into(), Some("preference: the condition does not hold".into()))]);

        let p = prefs(json!({"types": {"job_failed": {"enabled": false}}}));
        let r = run(&d, json!({}), Some(&p), &[]);
        assert!(sent(&r).is_empty());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn own_preferences_beat_role_defaults_which_beat_the_type() {
        let d = defaults(&["in_app"], false, false);
        let admin = prefs(
            json!({"types": {"job_failed": {"enabled": true, "channels": ["email"]}}, "channels": {"email": true}}),
        );
        assert_eq!(sent(&run(&d, json!({}), None, &[&admin])), vec!["email"]);
        let own = prefs(json!({"channels": {"email": false}}));
        assert!(sent(&run(&d, json!({}), Some(&own), &[&admin])).is_empty());
        let own = prefs(json!({"types": {"job_failed": {"enabled": false}}}));
        assert!(sent(&run(&d, json!({}), Some(&own), &[&admin])).is_empty());
    }

    #[test]
    fn required_types_ignore_switches_but_keep_overrides() {
        let d = defaults(&["email", "in_app"], false, true);
        let p = prefs(
            json!({"channels": {"email": false}, "types": {"job_failed": {"enabled": false, "email": "sec@example.com"}}}),
        );
        let event = ConditionInput { id: "e", event_type: "job_failed", severity: "error", data: &json!({}) };
        let out = decide(&d, &event, Some(&p), &[]);
        assert!(out.iter().all(|c| c.skip.is_none()));
        assert_eq!(out[0].address.as_deref(), Some("sec@example.com"));
        assert_eq!(out[1].address, None);
    }

    #[test]
    fn subscriptions_are_the_types_turned_on() {
        let p = prefs(json!({"types": {"a": {"enabled": true}, "b": {"enabled": false}, "c": {"channels": []}}}));
        assert_eq!(p.subscribed_types().collect::<Vec<_>>(), vec!["a"]);
        assert!(serde_json::from_value::<Preferences>(json!({"typo": 1})).is_err());
    }
}
