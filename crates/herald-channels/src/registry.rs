//! The list of integration types Herald knows: adding a provider is one line here.

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    Channel, chat::Chat, discord::Discord, google_chat::GoogleChat, mattermost::Mattermost, slack::Slack, teams::Teams,
    webhook::Webhook,
};

/// Every channel, by its type name.
#[derive(Clone)]
pub struct Registry {
    channels: BTreeMap<&'static str, Arc<dyn Channel>>,
}

impl Registry {
    /// The registry with every built-in channel.
    pub fn builtin() -> Self {
        let list: Vec<Arc<dyn Channel>> = vec![
            Arc::new(Webhook),
            Arc::new(Chat(Slack)),
            Arc::new(Chat(Discord)),
            Arc::new(Chat(Teams)),
            Arc::new(Chat(Mattermost)),
            Arc::new(Chat(GoogleChat)),
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
