//! What push services' answers come to: per subscription (with the
//! service's own words and what 404/410, 403 and 413 mean for Web Push),
//! then one outcome for the delivery.

use serde_json::Value;

use crate::{Outcome, render::cut_bytes};

/// The longest error text kept (the completer keeps 1 KiB of detail).
const MAX_TEXT: usize = 1024;

/// What one subscription came to, with its endpoint shown as its origin.
pub(super) struct Sent {
    pub origin: String,
    pub outcome: Outcome,
}

/// Adds the push service's own words to the error, and what 404/410, 403
/// and 413 mean for Web Push.
pub(super) fn refine(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Failed { status_code, mut error, detail } => {
            if let Some(text) = detail.as_deref().and_then(provider_text) {
                error = format!("{error}: {text}");
            }
            let hint = match status_code {
                Some(404 | 410) => Some("the subscription has expired or was unsubscribed; it is removed"),
                Some(403) => Some(
                    "the push service refused the VAPID signature (a subscription made with another applicationServerKey?)",
                ),
                Some(413) => Some("the encrypted message is larger than the push service accepts"),
                _ => None,
            };
            if let Some(hint) = hint {
                error = format!("{error} ({hint})");
            }
            Outcome::Failed { status_code, error, detail }
        }
        Outcome::Retry { status_code, after, mut error, detail } => {
            if let Some(text) = detail.as_deref().and_then(provider_text) {
                error = format!("{error}: {text}");
            }
            Outcome::Retry { status_code, after, error, detail }
        }
        delivered => delivered,
    }
}

/// The error text in a push service's answer: autopush's `message`, Apple's
/// `reason`, or a short plain-text body (FCM).
fn provider_text(detail: &str) -> Option<String> {
    if let Ok(value) = serde_json::from_str::<Value>(detail) {
        return ["message", "reason", "error"]
            .iter()
            .find_map(|k| value.get(*k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()))
            .map(|s| cut_bytes(s, 300).to_owned());
    }
    let text = detail.trim();
    let line = text.lines().next().unwrap_or_default().trim();
    (!line.is_empty() && !text.starts_with('<')).then(|| cut_bytes(line, 300).to_owned())
}

/// One outcome for the delivery: sent when any push service accepted it,
/// retried when none did and one may later, failed otherwise.
pub(super) fn aggregate(results: Vec<Sent>) -> Outcome {
    let line = |s: &Sent| match &s.outcome {
        Outcome::Delivered { status_code, .. } => {
            format!("{}: accepted{}", s.origin, status_code.map(|c| format!(" (HTTP {c})")).unwrap_or_default())
        }
        other => format!("{}: {}", s.origin, other.error().unwrap_or_default()),
    };
    let summary = cut_bytes(&results.iter().map(line).collect::<Vec<_>>().join("\n"), MAX_TEXT).to_owned();
    let detail = Some(summary);
    if let Some(accepted) = results.iter().find(|s| matches!(s.outcome, Outcome::Delivered { .. })) {
        return Outcome::Delivered { status_code: accepted.outcome.status_code(), detail };
    }
    let error = match results.as_slice() {
        [one] => one.outcome.error().unwrap_or_default().to_owned(),
        many => cut_bytes(
            &format!(
                "no push service accepted the message ({} subscriptions): {}",
                many.len(),
                many.iter().map(line).collect::<Vec<_>>().join("; ")
            ),
            MAX_TEXT,
        )
        .to_owned(),
    };
    let retries: Vec<&Sent> = results.iter().filter(|s| matches!(s.outcome, Outcome::Retry { .. })).collect();
    if let Some(first) = retries.first() {
        let after = retries
            .iter()
            .filter_map(|s| if let Outcome::Retry { after, .. } = s.outcome { after } else { None })
            .max();
        return Outcome::Retry { status_code: first.outcome.status_code(), after, error, detail };
    }
    Outcome::Failed { status_code: results.first().and_then(|s| s.outcome.status_code()), error, detail }
}
