//! What one attempt of a delivery came to, as a channel reports it.

use std::time::Duration;

/// The result of one send, classified by the channel; the worker decides
/// what happens next from it (see [`crate::retry::RetryPolicy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted the message.
    Delivered { status_code: Option<u16>, detail: Option<String> },
    /// A transient failure: try again, not before `after` when the provider said so.
    Retry { status_code: Option<u16>, after: Option<Duration>, error: String, detail: Option<String> },
    /// A permanent failure: retrying would not help.
    Failed { status_code: Option<u16>, error: String, detail: Option<String> },
}

impl Outcome {
    /// The short word stored with an attempt: `sent`, `retry` or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "sent",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub fn status_code(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status_code, .. }
            | Outcome::Retry { status_code, .. }
            | Outcome::Failed { status_code, .. } => *status_code,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::Retry { error, .. } | Outcome::Failed { error, .. } => Some(error),
        }
    }

    /// The same outcome with `note` after its error (what Herald did about
    /// it); a delivery has no error to note.
    pub fn noted(mut self, note: &str) -> Outcome {
        if let Outcome::Retry { error, .. } | Outcome::Failed { error, .. } = &mut self {
            error.push_str("; ");
            error.push_str(note);
        }
        self
    }

    /// A bounded excerpt of what the provider answered, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { detail, .. } | Outcome::Retry { detail, .. } | Outcome::Failed { detail, .. } => {
                detail.as_deref()
            }
        }
    }
}
