//! The one shared state of a running node, passed to every handler and task.

use std::{
    collections::{HashMap, HashSet},
    ops::Deref,
    sync::{Arc, Mutex, RwLock},
    time::Instant,
};

use herald_channels::{Context, Registry};
use herald_store::Db;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    api::test_send::TestLimiter,
    auth::Caller,
    config::Config,
    live::Live,
    pipeline::{ingest::IngestHandle, wake::Wake},
    recipient_token::SigningKeys,
    render::TemplateCache,
    secrets::MasterKey,
};

/// How the admin token is checked.
pub enum AdminToken {
    /// Given by configuration: compared as is, in constant time.
    Configured(String),
    /// Generated on first start: only its hash is kept.
    Hashed(String),
}

/// Cheap to clone: an `Arc` around [`Inner`].
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Arc<Config>,
    pub db: Db,
    pub key: MasterKey,
    pub admin: AdminToken,
    pub channels: Registry,
    pub channel_ctx: Context,
    pub ingest: IngestHandle,
    pub wake: Wake,
    /// Pushes inbox changes to open WebSocket and SSE connections.
    pub live: Live,
    /// Tenants' recipient-token signing secrets, opened.
    pub recipient_keys: SigningKeys,
    /// Tenants' templates, cached briefly for the workers.
    pub templates: TemplateCache,
    pub metrics: PrometheusHandle,
    /// Tenants known to exist (tenants are never deleted, so this only grows).
    pub tenants: RwLock<HashSet<String>>,
    /// API key hash → caller, for a few seconds, so ingest does not read the
    /// key table on every request. Deleting a key clears it on this node.
    pub key_cache: Mutex<HashMap<String, (Caller, Instant)>>,
    pub test_limiter: TestLimiter,
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Milliseconds since the Unix epoch: the one clock of stored times.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An RFC 3339 UTC rendering of stored milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
