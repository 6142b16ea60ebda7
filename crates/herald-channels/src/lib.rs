//! Herald's delivery channels: one module per provider behind the
//! [`Channel`] trait, and the outbound address policy every one of them obeys.
//!
//! A channel never sleeps, retries or touches the database: given a rendered
//! message and a built target it sends once and classifies the outcome. The
//! worker owns time, retries and recording.

use std::{future::Future, pin::Pin, sync::Arc};

pub use herald_core::Outcome;

pub mod http;
pub mod outbound;
pub mod registry;
pub mod webhook;

pub use outbound::AddressPolicy;
pub use registry::Registry;

/// A boxed future returned by [`Target::send`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// What a channel sends: one event, for one delivery.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The delivery id: stable across retries (`webhook-id` for webhooks).
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// When the event was accepted, RFC 3339 UTC.
    pub timestamp: &'a str,
    pub severity: &'a str,
    pub data: &'a serde_json::Value,
}

/// A config value that is wrong, naming the field (a JSON pointer below
/// `config`, such as `url` or `headers.X-Thing`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Shared things a channel needs to build targets: the HTTP client (with the
/// address policy in its resolver) and the policy itself for IP literals.
#[derive(Clone)]
pub struct Context {
    pub http: reqwest::Client,
    pub policy: AddressPolicy,
}

/// An integration type (`webhook`, `email`, …).
pub trait Channel: Send + Sync + 'static {
    /// The type name used in the API (`webhook`).
    fn kind(&self) -> &'static str;

    /// A JSON Schema of the config, for `GET /v1/channels`; secret fields
    /// carry `"secret": true`.
    fn schema(&self) -> serde_json::Value;

    /// Top-level config fields that are secret: encrypted at rest, masked as
    /// `"********"` in answers, never logged.
    fn secret_fields(&self) -> &'static [&'static str];

    /// Validates and normalises a config received from the API, filling in
    /// generated values (a webhook signing secret). Called at create and
    /// update time with the secrets already in plain text.
    fn prepare(&self, config: serde_json::Value, ctx: &Context) -> Result<serde_json::Value, ConfigError>;

    /// Builds the ready-to-send target from a stored (prepared, decrypted) config.
    fn build(&self, config: &serde_json::Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError>;
}

/// A built destination: a parsed URL, a signing key, a connection pool.
pub trait Target: Send + Sync {
    /// Sends once and classifies the result; `timeout` bounds the attempt.
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: std::time::Duration) -> SendFuture<'a>;
}

/// Installs rustls' `ring` provider once per process; building a client
/// without a provider panics. Safe to call any number of times.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
