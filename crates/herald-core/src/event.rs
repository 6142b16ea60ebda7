//! What an event is, as the core sees it: a validated type name and a severity.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest event type name accepted.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// An event type name such as `job_failed` or `auth.failed`: 1–128 characters
/// of letters, digits and `_ . : -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventType(String);

/// Why a string is not an event type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_EVENT_TYPE_LEN} characters")]
    TooLong,
    #[error("must start with a letter or digit")]
    BadStart,
    #[error("may only contain letters, digits and `_ . : -` (found {0:?})")]
    BadChar(char),
}

impl EventType {
    pub fn parse(value: &str) -> Result<Self, EventTypeError> {
        let first = value.chars().next().ok_or(EventTypeError::Empty)?;
        if value.len() > MAX_EVENT_TYPE_LEN {
            return Err(EventTypeError::TooLong);
        }
        if !first.is_ascii_alphanumeric() {
            return Err(EventTypeError::BadStart);
        }
        if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))) {
            return Err(EventTypeError::BadChar(bad));
        }
        Ok(Self(value.to_owned()))
    }

    /// Wraps a type read back from storage.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How bad (or good) the news is; channels theme messages by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Success,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Success => "success",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Parses a stored severity; unknown strings read as `info`.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "success" => Severity::Success,
            "warning" => Severity::Warning,
            "error" => Severity::Error,
            "critical" => Severity::Critical,
            _ => Severity::Info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for name in ["job_failed", "auth.failed", "a", "backup:done", "x-1.y_2"] {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(EventType::parse(""), Err(EventTypeError::Empty));
        assert_eq!(EventType::parse(".x"), Err(EventTypeError::BadStart));
        assert_eq!(EventType::parse("a b"), Err(EventTypeError::BadChar(' ')));
        assert_eq!(EventType::parse(&"a".repeat(129)), Err(EventTypeError::TooLong));
    }

    #[test]
    fn severity_round_trips() {
        for s in [Severity::Info, Severity::Success, Severity::Warning, Severity::Error, Severity::Critical] {
            assert_eq!(Severity::from_stored(s.as_str()), s);
        }
    }
}
