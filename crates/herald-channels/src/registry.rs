//! The list of integration types Herald knows: adding a provider is one line here.

use std::{collections::BTreeMap, sync::Arc};

use crate::{Channel, chat::Chat};

/// Every channel, by its type name.
#[derive(Clone)]
pub struct Registry {
    channels: BTreeMap<&'static str, Arc<dyn Channel>>,
}

impl Registry {
    /// The registry with every built-in channel.
    pub fn builtin() -> Self {
        let list: Vec<Arc<dyn Channel>> = vec![
            Arc::new(crate::webhook::Webhook),
            Arc::new(crate::email::Email),
            Arc::new(crate::jira::Jira),
            Arc::new(crate::twilio_sms::TwilioSms),
            Arc::new(Chat(crate::slack::Slack)),
            Arc::new(Chat(crate::discord::Discord)),
            Arc::new(Chat(crate::teams::Teams)),
            Arc::new(Chat(crate::mattermost::Mattermost)),
            Arc::new(Chat(crate::google_chat::GoogleChat)),
            Arc::new(crate::telegram::Telegram),
            Arc::new(crate::matrix::Matrix),
            Arc::new(crate::ntfy::Ntfy),
            Arc::new(crate::gotify::Gotify),
            Arc::new(crate::pushover::Pushover),
            Arc::new(crate::web_push::WebPush),
        ];
        Self { channels: list.into_iter().map(|c| (c.kind(), c)).collect() }
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Channel>> {
        self.channels.get(kind)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Channel>> {
        self.channels.values()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.channels.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `GET /v1/channels` shows must agree with what is sealed: every
    /// secret field is marked in the schema, and only those are.
    #[test]
    fn every_schema_marks_exactly_its_secret_fields() {
        for channel in Registry::builtin().iter() {
            let kind = channel.kind();
            let schema = channel.schema();
            assert_eq!(schema["type"], "object", "{kind}");
            assert_eq!(schema["additionalProperties"], false, "{kind}: unknown config keys are refused");
            let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("{kind}: no properties"));
            let marked: Vec<&str> = properties
                .iter()
                .filter(|(_, p)| p["secret"] == serde_json::json!(true))
                .map(|(name, _)| name.as_str())
                .collect();
            let mut secret = channel.secret_fields().to_vec();
            secret.sort_unstable();
            assert_eq!(marked, secret, "{kind}: schema secret marks vs secret_fields");
            for (name, property) in properties {
                assert!(property["description"].is_string(), "{kind}.{name} has no description");
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                assert!(properties.contains_key(required.as_str().unwrap()), "{kind}: required {required} unknown");
            }
        }
    }
}
