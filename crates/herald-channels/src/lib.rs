//! Herald's delivery channels: one module per provider behind the
//! [`Channel`] trait, and the outbound address policy every one of them obeys.
//!
//! A channel never sleeps, retries or touches the database: given a rendered
//! message and a built target it sends once and classifies the outcome. The
//! worker owns time, retries and recording.

use std::{future::Future, pin::Pin, sync::Arc};

pub use herald_core::Outcome;

pub mod apprise;
pub mod chat;
pub mod discord;
pub mod email;
pub mod google_chat;
pub mod gotify;
pub(crate) mod html_text;
pub mod http;
pub mod jira;
pub mod matrix;
pub mod mattermost;
pub mod ntfy;
pub mod outbound;
pub(crate) mod provider_api;
pub mod pushover;
pub mod registry;
pub mod render;
pub mod slack;
pub mod teams;
pub mod telegram;
#[cfg(test)]
pub(crate) mod testing;
pub mod twilio_sms;
pub mod web_push;
pub mod webhook;

pub use herald_core::Severity;
pub use outbound::AddressPolicy;
pub use registry::Registry;
pub use render::{Content, Theme};

/// A boxed future returned by [`Target::send`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// What a channel sends: one event, for one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The delivery id: stable across retries (`webhook-id` for webhooks,
    /// the Matrix transaction id, the email `Message-ID`).
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// When the event was accepted, RFC 3339 UTC.
    pub timestamp: &'a str,
    pub data: &'a serde_json::Value,
    /// The event rendered for people (title, body, facts, link, severity).
    pub content: &'a Content,
    /// An address to send to instead of the configured one: the `recipient`
    /// of a test send, or a person's own address. Checked by
    /// [`Channel::check_recipient`] before it gets here.
    pub to: Option<&'a str>,
    /// Web Push subscriptions to send to (resolved by the worker); empty for
    /// every other channel.
    pub push: &'a [PushSubscription],
    /// Side effects the worker must record (subscriptions found gone).
    pub report: &'a Report,
}

impl<'a> Message<'a> {
    /// A message with no address override, no push subscriptions and `report`.
    pub fn new(
        ids: (&'a str, &'a str),
        event_type: &'a str,
        timestamp: &'a str,
        data: &'a serde_json::Value,
        content: &'a Content,
        report: &'a Report,
    ) -> Self {
        let (delivery_id, event_id) = ids;
        Message { delivery_id, event_id, event_type, timestamp, data, content, to: None, push: &[], report }
    }
}

/// A browser's Web Push subscription (the `PushSubscription` JSON of the
/// Push API: endpoint and the `p256dh` / `auth` keys, base64url). The
/// endpoint is a capability (whoever has it and the keys can push), so
/// `Debug` shows only its origin.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushSubscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

impl std::fmt::Debug for PushSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSubscription")
            .field("endpoint", &endpoint_origin(&self.endpoint))
            .field("keys", &"[REDACTED]")
            .finish()
    }
}

/// `https://push.example.net/…`: where a URL points, without the path and
/// query that may carry a capability or a token.
pub fn endpoint_origin(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(url) if url.has_host() => format!("{}/…", url.origin().ascii_serialization()),
        _ => "[invalid endpoint]".to_owned(),
    }
}

/// What a send found out besides its outcome, for the worker to record.
#[derive(Default)]
pub struct Report {
    gone: std::sync::Mutex<Vec<String>>,
    destination_gone: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gone = self.gone.lock().map(|g| g.len()).unwrap_or_default();
        f.debug_struct("Report")
            .field("gone_subscriptions", &gone)
            .field("destination_gone", &self.is_destination_gone())
            .finish()
    }
}

impl Report {
    /// A push endpoint answered 404 or 410: its subscription is to be deleted.
    pub fn subscription_gone(&self, endpoint: &str) {
        self.gone.lock().expect("report lock").push(endpoint.to_owned());
    }

    /// The endpoints reported gone.
    pub fn gone_subscriptions(&self) -> Vec<String> {
        self.gone.lock().expect("report lock").clone()
    }

    /// The destination said it is gone for good (a webhook endpoint's 410,
    /// which the Standard Webhooks spec reads as "disable me"): the
    /// integration is to be disabled.
    pub fn destination_gone(&self) {
        self.destination_gone.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_destination_gone(&self) -> bool {
        self.destination_gone.load(std::sync::atomic::Ordering::Relaxed)
    }
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

    /// Whether sends read [`Message::content`]. A channel that forwards the
    /// event as it is (`webhook`) says no, and the worker skips rendering.
    fn renders(&self) -> bool {
        true
    }

    /// Whether a send can go to a person's own address ([`Message::to`]: an
    /// email address, a chat id, a number). Channels bound to one
    /// destination say no: a person's delivery of that kind is skipped
    /// rather than posted to that one place once per person.
    fn reaches_people(&self) -> bool {
        false
    }

    /// Checks an address given instead of the configured one (the
    /// `recipient` of a test send): an email address, a chat id, a phone
    /// number. Channels bound to one destination (a chat webhook URL) refuse.
    fn check_recipient(&self, to: &str) -> Result<(), String> {
        let _ = to;
        Err(format!("a {} integration sends to its configured destination; change the config instead", self.kind()))
    }
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
