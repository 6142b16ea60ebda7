//! The list of integration types Herald knows: adding a provider is one line here.

use std::{collections::BTreeMap, sync::Arc};

use crate::{Channel, web_push::WebPush, webhook::Webhook};

/// Every channel, by its type name.
#[derive(Clone)]
pub struct Registry {
    channels: BTreeMap<&'static str, Arc<dyn Channel>>,
}

impl Registry {
    /// The registry with every built-in channel.
    pub fn builtin() -> Self {
        let list: Vec<Arc<dyn Channel>> = vec![Arc::new(Webhook), Arc::new(WebPush)];
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
