//! What the channels that call a provider's HTTP API share (Telegram,
//! Matrix, ntfy, Gotify, Pushover): reading a config with the wrong field
//! named, checking a base URL, building endpoint URLs, and putting the
//! provider's own words (and its requested wait) on an outcome.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::{AddressPolicy, ConfigError, Outcome, render};

/// The longest provider explanation kept in an error text, in characters.
const MAX_REASON: usize = 300;

/// Reads a config into `T`, naming the field that is wrong (`""` when the
/// config itself is not an object).
pub(crate) fn parse_config<T: DeserializeOwned>(config: &Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(config).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::new(field, e.into_inner().to_string())
    })
}

/// A required field: `is required` on that field when absent. Fields are
/// `Option` in the config structs so that a missing one is reported on its
/// own name rather than on the whole config.
pub(crate) fn required<T>(field: &str, value: Option<T>) -> Result<T, ConfigError> {
    value.ok_or_else(|| ConfigError::new(field, "is required"))
}

/// Parses the base URL of a provider's API (`api_url`, `server_url`,
/// `homeserver_url`): http or https with a host, and neither credentials,
/// a query nor a fragment (they would be lost or leak: credentials belong in
/// the secret fields). The address policy is checked by the caller.
pub(crate) fn parse_base_url(field: &str, value: &str) -> Result<Url, ConfigError> {
    let bad = |message: &str| ConfigError::new(field, message);
    let url = crate::http::parse_url(field, value)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials; use the token or password fields"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a ?query or #fragment"));
    }
    Ok(url)
}

/// How a base URL is stored: as parsed, without a trailing slash.
pub(crate) fn stored_url(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// `base` with `suffix` (already percent-encoded where needed) appended to
/// its path, so that a provider behind a path prefix keeps it.
pub(crate) fn endpoint(base: &Url, suffix: &str) -> Url {
    let mut url = base.clone();
    // `set_path` escapes what a path may not hold but leaves `%` alone, so
    // the encoded segments stay as they are.
    url.set_path(&format!("{}/{}", base.path().trim_end_matches('/'), suffix));
    url
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a
/// value that becomes one path segment (a Matrix room id `!a:b`, an alias `#a:b`).
pub(crate) fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The failure to report when the policy refuses `url` at send time (IP
/// literals never reach the resolver, and the policy may have tightened
/// since the config was saved).
pub(crate) fn refused(policy: &AddressPolicy, url: &Url) -> Option<Outcome> {
    policy.check_url(url).err().map(|e| Outcome::Failed { status_code: None, error: e.to_string(), detail: None })
}

/// The response excerpt read as the provider's JSON answer, when it is one.
pub(crate) fn answer<T: DeserializeOwned>(outcome: &Outcome) -> Option<T> {
    outcome.detail().and_then(|detail| serde_json::from_str(detail).ok())
}

/// Adds the provider's explanation to the error text of a retry or a
/// failure ("HTTP 400 Bad Request" becomes "HTTP 400 Bad Request: Bad
/// Request: chat not found"), and sets the wait the provider asked for
/// when it gave one in its body. A delivered outcome is returned unchanged.
pub(crate) fn explain(outcome: Outcome, reason: Option<&str>, after: Option<Duration>) -> Outcome {
    let reason = reason.map(|r| render::cut(&render::one_line(r), MAX_REASON)).filter(|r| !r.is_empty());
    let with_reason = |error: String| match &reason {
        Some(reason) => format!("{error}: {reason}"),
        None => error,
    };
    match outcome {
        Outcome::Retry { status_code, after: header_after, error, detail } => {
            Outcome::Retry { status_code, after: after.or(header_after), error: with_reason(error), detail }
        }
        Outcome::Failed { status_code, error, detail } => {
            Outcome::Failed { status_code, error: with_reason(error), detail }
        }
        delivered => delivered,
    }
}

/// A delivered outcome turned into a failure: the provider answered 2xx but
/// said in its body that it did not take the message.
pub(crate) fn not_taken(outcome: Outcome, error: String) -> Outcome {
    match outcome {
        Outcome::Delivered { status_code, detail } => Outcome::Failed { status_code, error, detail },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_joined() {
        let field = |v: &str| parse_base_url("api_url", v).unwrap_err().field;
        for bad in [
            "not a url",
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://example.com/?token=1",
            "https://example.com/#x",
        ] {
            assert_eq!(field(bad), "api_url", "{bad}");
        }
        let url = parse_base_url("api_url", "https://Example.com/prefix/").unwrap();
        assert_eq!(stored_url(&url), "https://example.com/prefix");
        assert_eq!(endpoint(&url, "a/%21b%3Ac/d").as_str(), "https://example.com/prefix/a/%21b%3Ac/d");
        let root = parse_base_url("api_url", "https://example.com").unwrap();
        assert_eq!(endpoint(&root, "message").as_str(), "https://example.com/message");
        assert_eq!(encode_segment("!room:example.org"), "%21room%3Aexample.org");
        assert_eq!(encode_segment("#a b/é"), "%23a%20b%2F%C3%A9");
        assert_eq!(encode_segment("dlv_0190-x.y~z"), "dlv_0190-x.y~z");
    }

    #[test]
    fn explanations_join_the_status_text() {
        let failed = Outcome::Failed { status_code: Some(400), error: "HTTP 400 Bad Request".into(), detail: None };
        let explained = explain(failed, Some("chat\nnot found"), Some(Duration::from_secs(3)));
        assert_eq!(explained.error(), Some("HTTP 400 Bad Request: chat not found"));
        let retry = Outcome::Retry {
            status_code: Some(429),
            after: Some(Duration::from_secs(9)),
            error: "HTTP 429 Too Many Requests".into(),
            detail: None,
        };
        let Outcome::Retry { after, .. } = explain(retry.clone(), None, Some(Duration::from_secs(2))) else { panic!() };
        assert_eq!(after, Some(Duration::from_secs(2)), "the body's wait wins");
        assert_eq!(explain(retry.clone(), Some(" "), None), retry, "nothing to add");
        let sent = Outcome::Delivered { status_code: Some(200), detail: None };
        assert_eq!(explain(sent.clone(), Some("x"), None), sent);
        assert_eq!(not_taken(sent, "no".into()).label(), "failed");
    }
}
