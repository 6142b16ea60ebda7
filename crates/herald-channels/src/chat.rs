//! What the webhook-URL chat channels (`slack`, `discord`, `teams`,
//! `mattermost`, `google_chat`) share: a secret `webhook_url` checked against
//! the address policy at save time and on every send, one JSON POST per
//! attempt, and the provider's own error text in the outcome. A provider
//! module only says what its payload looks like and how its answers read
//! (the [`Provider`] trait); [`Chat`] turns that into a [`Channel`].

use std::{fmt, sync::Arc, time::Duration};

use reqwest::header::CONTENT_TYPE;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};
use url::Url;

use crate::{
    AddressPolicy, Channel, ConfigError, Context, Message, Outcome, SendFuture, Target, http::parse_target_url, render,
};

/// The config key of the webhook URL, the one secret of every chat channel.
pub const URL_FIELD: &str = "webhook_url";
/// The longest webhook URL accepted.
use crate::http::MAX_URL_LEN;
/// At most this many characters of a provider's error text go into an attempt's error.
const MAX_PROVIDER_ERROR: usize = 300;

/// What makes one chat provider different from the others.
pub trait Provider: Clone + Send + Sync + 'static {
    /// The config keys besides `webhook_url`, parsed strictly (declare the
    /// struct `#[serde(deny_unknown_fields)]`).
    type Options: DeserializeOwned + Serialize + Send + Sync + 'static;

    /// The integration type (`slack`).
    fn kind(&self) -> &'static str;

    /// What to paste into `webhook_url`, for the schema.
    fn url_help(&self) -> &'static str;

    /// JSON Schema properties of the options (each with a `description`).
    fn options_schema(&self) -> Map<String, Value>;

    /// Checks what serde cannot (lengths, formats), naming the field.
    fn check(&self, options: &Self::Options) -> Result<(), ConfigError> {
        let _ = options;
        Ok(())
    }

    /// Where the POST goes: the webhook URL, or the URL with a query added.
    fn endpoint(&self, url: &Url, message: &Message<'_>) -> Url {
        let _ = message;
        url.clone()
    }

    /// The JSON body for `message`.
    fn payload(&self, options: &Self::Options, message: &Message<'_>) -> Value;

    /// Refines the shared classification with what the provider's answer
    /// says (its error text, a `retry_after` in the body, a failure hidden in a 200).
    fn read(&self, options: &Self::Options, outcome: Outcome) -> Outcome;
}

/// A chat provider as a [`Channel`]: `Chat(Slack)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chat<P>(pub P);

impl<P: Provider> Channel for Chat<P> {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn schema(&self) -> Value {
        let mut properties = Map::new();
        properties.insert(
            URL_FIELD.into(),
            json!({
                "type": "string",
                "format": "uri",
                "maxLength": MAX_URL_LEN,
                "secret": true,
                "description": self.0.url_help(),
            }),
        );
        properties.extend(self.0.options_schema());
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": [URL_FIELD],
            "properties": properties,
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &[URL_FIELD]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (url, options) = parse(&self.0, &config)?;
        ctx.policy.check_url(&url).map_err(|e| ConfigError::new(URL_FIELD, e.to_string()))?;
        let mut stored = match serde_json::to_value(&options) {
            Ok(Value::Object(map)) => map,
            Ok(_) => Map::new(),
            Err(e) => return Err(ConfigError::new("", e.to_string())),
        };
        stored.insert(URL_FIELD.into(), Value::String(url.to_string()));
        Ok(Value::Object(stored))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        // The policy is checked on every send rather than here, so a target
        // built before the policy tightened still cannot reach a refused address.
        let (url, options) = parse(&self.0, config)?;
        Ok(Arc::new(ChatTarget {
            provider: self.0.clone(),
            url,
            options,
            client: ctx.http.clone(),
            policy: ctx.policy,
        }))
    }
}

fn parse<P: Provider>(provider: &P, config: &Value) -> Result<(Url, P::Options), ConfigError> {
    let Value::Object(map) = config else {
        return Err(ConfigError::new("", "must be a JSON object"));
    };
    let mut rest = map.clone();
    let url = match rest.remove(URL_FIELD) {
        None | Some(Value::Null) => return Err(ConfigError::new(URL_FIELD, "is required")),
        Some(Value::String(url)) => parse_target_url(URL_FIELD, &url)?,
        Some(_) => return Err(ConfigError::new(URL_FIELD, "must be a string")),
    };
    let options = deserialize(Value::Object(rest))?;
    provider.check(&options)?;
    Ok((url, options))
}

/// Deserializes `value`, naming the offending field on error.
pub fn deserialize<T: DeserializeOwned>(value: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::new(field, e.into_inner().to_string())
    })
}

/// An optional text option: when given, 1 to `max` characters.
pub fn check_text(value: Option<&str>, field: &str, max: usize) -> Result<(), ConfigError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(ConfigError::new(field, "must not be empty")),
        Some(v) if v.chars().count() > max => Err(ConfigError::new(field, format!("must be at most {max} characters"))),
        _ => Ok(()),
    }
}

/// A built chat webhook.
struct ChatTarget<P: Provider> {
    provider: P,
    url: Url,
    options: P::Options,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl<P: Provider> fmt::Debug for ChatTarget<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is the credential.
        f.debug_struct("ChatTarget")
            .field("kind", &self.provider.kind())
            .field("webhook_url", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl<P: Provider> ChatTarget<P> {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        // IP literals never reach the resolver, so the policy is applied here.
        if let Err(refused) = self.policy.check_url(&self.url) {
            return Outcome::Failed { status_code: None, error: refused.to_string(), detail: None };
        }
        let body = match serde_json::to_vec(&self.provider.payload(&self.options, message)) {
            Ok(body) => body,
            Err(e) => return Outcome::Failed { status_code: None, error: format!("payload: {e}"), detail: None },
        };
        let request = self
            .client
            .post(self.provider.endpoint(&self.url, message))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let outcome = crate::http::send_and_classify(request, timeout).await;
        self.provider.read(&self.options, outcome)
    }
}

impl<P: Provider> Target for ChatTarget<P> {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

/// Appends the provider's own words to a retry's or failure's error
/// ("HTTP 404 Not Found: no_service"); a delivery is left alone.
pub fn with_provider_error(outcome: Outcome, said: Option<String>) -> Outcome {
    let Some(said) = said.filter(|s| !s.is_empty()) else { return outcome };
    match outcome {
        Outcome::Retry { status_code, after, error, detail } => {
            Outcome::Retry { status_code, after, error: format!("{error}: {said}"), detail }
        }
        Outcome::Failed { status_code, error, detail } => {
            Outcome::Failed { status_code, error: format!("{error}: {said}"), detail }
        }
        delivered => delivered,
    }
}

/// A response body as one bounded line of error text.
pub fn said(text: &str) -> Option<String> {
    let line = render::one_line(text);
    (!line.is_empty()).then(|| render::cut(&line, MAX_PROVIDER_ERROR))
}

/// The outcome's response excerpt parsed as JSON, if it is JSON.
pub fn detail_json(outcome: &Outcome) -> Option<Value> {
    outcome.detail().and_then(|d| serde_json::from_str(d).ok())
}

/// The same outcome with another detail (a delivery's detail reduced to the
/// ids worth keeping).
pub fn with_detail(outcome: Outcome, new: Option<String>) -> Outcome {
    match outcome {
        Outcome::Delivered { status_code, .. } => Outcome::Delivered { status_code, detail: new },
        Outcome::Retry { status_code, after, error, .. } => Outcome::Retry { status_code, after, error, detail: new },
        Outcome::Failed { status_code, error, .. } => Outcome::Failed { status_code, error, detail: new },
    }
}

/// `escape(raw)` in at most `max` characters: when the escaped text is too
/// long, the raw text is cut (with "…") before escaping, so an escape
/// sequence is never cut in half.
pub fn fit(raw: &str, max: usize, escape: impl Fn(&str) -> String) -> String {
    let full = escape(raw);
    if full.chars().count() <= max {
        return full;
    }
    // The longest cut whose escaped form fits: escaping only lengthens, so
    // the escaped length grows with the cut and a binary search finds it.
    let fits = |keep: usize| {
        let escaped = escape(&render::cut(raw, keep));
        (escaped.chars().count() <= max).then_some(escaped)
    };
    let (mut lo, mut hi) = (1, raw.chars().count().min(max));
    let mut best = fits(1).unwrap_or_default();
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        match fits(mid) {
            Some(escaped) => {
                best = escaped;
                lo = mid + 1;
            }
            None => hi = mid - 1,
        }
    }
    best
}

/// `&`, `<` and `>` as HTML entities: what Slack's mrkdwn and Google Chat's
/// card HTML both ask for.
pub fn escape_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A backslash before every character of `special` (Markdown dialects).
pub fn escape_with_backslash(s: &str, special: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `url` with `name=value` as the last query parameter (replacing any
/// `name` already there); the other parameters are kept byte for byte, since
/// they often carry the webhook's token.
pub fn with_query(url: &Url, name: &str, value: &str) -> Url {
    let mut query: Vec<String> = url
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    let value: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    query.push(format!("{name}={value}"));
    let mut url = url.clone();
    url.set_query(Some(&query.join("&")));
    url
}

/// "2026-01-02T03:04:05Z" as seconds since the epoch.
pub fn unix_seconds(timestamp: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(timestamp).ok().map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_never_cuts_an_escape_in_half() {
        let esc = |s: &str| escape_entities(s);
        assert_eq!(fit("a<b", 10, esc), "a&lt;b");
        let cut = fit(&"<".repeat(100), 20, esc);
        assert!(cut.chars().count() <= 20, "{cut}");
        assert!(cut.ends_with("&lt;…"), "{cut}");
        assert_eq!(fit("abcdef", 4, |s: &str| s.to_owned()), "abc…");
        assert_eq!(fit("*_*_", 6, |s: &str| escape_with_backslash(s, "*_")), "\\*\\_…");
    }

    #[test]
    fn debug_hides_the_url() {
        let ctx = crate::testing::ctx(false);
        let target = ChatTarget {
            provider: crate::slack::Slack,
            url: Url::parse("https://hooks.slack.com/services/T0/B0/SECRET").unwrap(),
            options: Default::default(),
            client: ctx.http,
            policy: ctx.policy,
        };
        let debug = format!("{target:?}");
        assert!(!debug.contains("SECRET") && debug.contains("[REDACTED]"), "{debug}");
    }

    #[test]
    fn urls_are_checked_without_repeating_them() {
        let err = |u: &str| parse_target_url(URL_FIELD, u).unwrap_err();
        assert_eq!(err("ftp://h/x").message, "must be an http or https URL");
        assert_eq!(err("https://h/x#f").field, URL_FIELD);
        let e = err("https://[h/secret-token");
        assert!(!e.message.contains("secret-token"), "{e:?}");
        assert_eq!(parse_target_url(URL_FIELD, " https://H/a?b=1 ").unwrap().as_str(), "https://h/a?b=1");
        assert_eq!(said("  line one\nline two "), Some("line one line two".into()));
        assert_eq!(said(" \n"), None);
        let url = Url::parse("https://h/p?token=a%2Bb~c&wait=false&x").unwrap();
        assert_eq!(with_query(&url, "wait", "true").as_str(), "https://h/p?token=a%2Bb~c&x&wait=true");
        let bare = Url::parse("https://h/p").unwrap();
        assert_eq!(with_query(&bare, "requestId", "dlv_1").as_str(), "https://h/p?requestId=dlv_1");
        assert_eq!(unix_seconds("2026-01-02T03:04:05.678Z"), Some(1_767_323_045));
    }
}
