//! What Jira's answers mean: the created issue's key, an earlier issue found
//! by label, and the error text of a refusal (`errorMessages` and the
//! per-field `errors`, in Jira's order).

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, Visitor},
};

use crate::Outcome;

/// The longest plain-text (non-JSON) answer quoted in an error.
const MAX_PLAIN: usize = 200;

/// Jira's error body: `{"errorMessages": [...], "errors": {"field": "message"}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "errorMessages")]
    error_messages: Vec<String>,
    #[serde(default)]
    errors: Ordered,
}

/// A JSON object's string entries in the order they were written (so the
/// error text follows Jira's order whatever map type serde_json uses).
#[derive(Debug, Default)]
struct Ordered(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.push((key, text));
                }
                Ok(Ordered(out))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

/// Jira's own words from an error answer: "summary: You must specify a
/// summary of the issue.; issuetype: valid issue type is required". A short
/// plain-text answer is quoted as it is; HTML and long bodies are not.
fn provider_text(detail: Option<&str>) -> Option<String> {
    let detail = detail?.trim();
    if let Ok(body) = serde_json::from_str::<ErrorBody>(detail) {
        let parts: Vec<String> = body
            .error_messages
            .into_iter()
            .filter(|m| !m.trim().is_empty())
            .chain(body.errors.0.into_iter().map(|(field, message)| format!("{field}: {message}")))
            .collect();
        return (!parts.is_empty()).then(|| parts.join("; "));
    }
    let plain = !detail.is_empty()
        && !detail.starts_with('<')
        && !detail.starts_with('{')
        && detail.chars().count() <= MAX_PLAIN
        && !detail.contains('\n');
    plain.then(|| detail.to_owned())
}

/// The create answer: a 201 names the issue (`created ED-24 (…/browse/ED-24)`,
/// so the key is recorded with the attempt); a refusal gets Jira's error text.
pub fn created(outcome: Outcome, browse: &dyn Fn(&str) -> String, project: &str) -> Outcome {
    match outcome {
        Outcome::Delivered { status_code, detail } => {
            let key = detail
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|v| v.get("key").and_then(|k| k.as_str()).filter(|k| is_issue_key(k)).map(str::to_owned));
            let detail = match key {
                Some(key) => Some(format!("created {key} ({})", browse(&key))),
                None => detail,
            };
            Outcome::Delivered { status_code, detail }
        }
        Outcome::Failed { status_code, error, detail } => {
            let hint = match status_code {
                Some(401) => Some("check email and api_token".to_owned()),
                Some(403) => {
                    Some(format!("check email and api_token, and that the account may create issues in {project}"))
                }
                Some(404) => Some("check base_url and api_version".to_owned()),
                _ => None,
            };
            let error = with_text(error, provider_text(detail.as_deref()), hint);
            Outcome::Failed { status_code, error, detail }
        }
        Outcome::Retry { status_code, after, error, detail } => {
            let error = with_text(error, provider_text(detail.as_deref()), None);
            Outcome::Retry { status_code, after, error, detail }
        }
    }
}

/// "HTTP 400 Bad Request: <Jira's text> (<hint>)".
fn with_text(mut error: String, text: Option<String>, hint: Option<String>) -> String {
    if let Some(text) = text {
        error.push_str(": ");
        error.push_str(&text);
    }
    if let Some(hint) = hint {
        error.push_str(" (");
        error.push_str(&hint);
        error.push(')');
    }
    error
}

/// `ED-24`: a project key, a dash, a number. Anything else is not put in a link.
fn is_issue_key(key: &str) -> bool {
    key.len() <= 300
        && key.rsplit_once('-').is_some_and(|(project, number)| {
            !project.is_empty()
                && project.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
        })
}

/// What the search for an earlier issue of the same delivery found.
#[derive(Debug, PartialEq, Eq)]
pub enum Search {
    /// An issue with the delivery's label exists: its key.
    Found(String),
    NotFound,
    /// Do not create now: this is the attempt's outcome.
    Stop(Outcome),
}

/// Reads a search answer. Only a throttled or unreachable Jira stops the
/// attempt; any other refusal (an old server without the endpoint, a
/// permission problem) goes on to the create, whose answer says what is wrong.
pub fn search(outcome: Outcome) -> Search {
    match outcome {
        Outcome::Delivered { detail, .. } => {
            let found = detail
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|v| v.get("issues")?.as_array()?.first().cloned())
                .and_then(|issue| {
                    issue.get("key").and_then(|k| k.as_str()).filter(|k| is_issue_key(k)).map(str::to_owned)
                });
            found.map_or(Search::NotFound, Search::Found)
        }
        // Any temporary trouble (429, 5xx, 408) stops the attempt: an unhealthy
        // Jira is exactly when an earlier create's answer may have been lost,
        // so creating now could open a second issue.
        Outcome::Retry { status_code: Some(code), after, error, detail } => Search::Stop(Outcome::Retry {
            status_code: Some(code),
            after,
            error: with_text(
                format!("searching for an earlier issue: {error}"),
                provider_text(detail.as_deref()),
                None,
            ),
            detail,
        }),
        Outcome::Retry { status_code: None, after, error, detail } => Search::Stop(Outcome::Retry {
            status_code: None,
            after,
            error: format!("searching for an earlier issue: {error}"),
            detail,
        }),
        // Refused by the address policy: the create would be too.
        Outcome::Failed { status_code: None, error, detail } => {
            Search::Stop(Outcome::Failed { status_code: None, error, detail })
        }
        Outcome::Failed { .. } => Search::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn browse(key: &str) -> String {
        format!("https://example.atlassian.net/browse/{key}")
    }

    fn failed(status: u16, error: &str, body: &str) -> Outcome {
        Outcome::Failed { status_code: Some(status), error: error.into(), detail: Some(body.into()) }
    }

    #[test]
    fn a_created_issue_is_named_with_its_link() {
        let body = r#"{"id":"10000","key":"ED-24","self":"https://example.atlassian.net/rest/api/3/issue/10000"}"#;
        let outcome = created(Outcome::Delivered { status_code: Some(201), detail: Some(body.into()) }, &browse, "ED");
        assert_eq!(
            outcome,
            Outcome::Delivered {
                status_code: Some(201),
                detail: Some("created ED-24 (https://example.atlassian.net/browse/ED-24)".into())
            }
        );
        // An answer without a usable key keeps its excerpt.
        let odd = Outcome::Delivered { status_code: Some(201), detail: Some(r#"{"key":"../x"}"#.into()) };
        assert_eq!(created(odd.clone(), &browse, "ED"), odd);
    }

    #[test]
    fn field_errors_come_through_in_jiras_order() {
        let body = r#"{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue.","issuetype":"valid issue type is required"}}"#;
        let outcome = created(failed(400, "HTTP 400 Bad Request", body), &browse, "ED");
        assert_eq!(
            outcome.error(),
            Some(
                "HTTP 400 Bad Request: summary: You must specify a summary of the issue.; issuetype: valid issue type is required"
            )
        );
        assert_eq!(outcome.detail(), Some(body));
        let body = r#"{"errorMessages":["Field 'priority' cannot be set. It is not on the appropriate screen, or unknown."],"errors":{}}"#;
        let outcome = created(failed(400, "HTTP 400 Bad Request", body), &browse, "ED");
        assert_eq!(
            outcome.error(),
            Some(
                "HTTP 400 Bad Request: Field 'priority' cannot be set. It is not on the appropriate screen, or unknown."
            )
        );
    }

    #[test]
    fn auth_and_missing_project_answers_say_what_to_check() {
        let outcome = created(
            failed(401, "HTTP 401 Unauthorized", "Client must be authenticated to access this resource."),
            &browse,
            "ED",
        );
        assert_eq!(
            outcome.error(),
            Some(
                "HTTP 401 Unauthorized: Client must be authenticated to access this resource. (check email and api_token)"
            )
        );
        let outcome = created(failed(403, "HTTP 403 Forbidden", "<html><body>CAPTCHA</body></html>"), &browse, "ED");
        assert_eq!(
            outcome.error(),
            Some("HTTP 403 Forbidden (check email and api_token, and that the account may create issues in ED)")
        );
        let body = r#"{"errorMessages":["No project could be found with key 'ED'."],"errors":{}}"#;
        let outcome = created(failed(404, "HTTP 404 Not Found", body), &browse, "ED");
        assert_eq!(
            outcome.error(),
            Some("HTTP 404 Not Found: No project could be found with key 'ED'. (check base_url and api_version)")
        );
    }

    #[test]
    fn retries_keep_their_wait() {
        let outcome = Outcome::Retry {
            status_code: Some(429),
            after: Some(Duration::from_secs(9)),
            error: "HTTP 429 Too Many Requests".into(),
            detail: Some(r#"{"errorMessages":["Rate limit exceeded."]}"#.into()),
        };
        let refined = created(outcome, &browse, "ED");
        assert_eq!(refined.error(), Some("HTTP 429 Too Many Requests: Rate limit exceeded."));
        assert!(matches!(refined, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(9)));
    }

    #[test]
    fn search_answers() {
        let found = |body: &str| search(Outcome::Delivered { status_code: Some(200), detail: Some(body.into()) });
        // API 3 (`/search/jql`) and API 2 (`/search`) shapes.
        assert_eq!(
            found(
                r#"{"issues":[{"expand":"","id":"10000","self":"https://e/rest/api/3/issue/10000","key":"ED-24","fields":{"summary":"x"}}],"isLast":true}"#
            ),
            Search::Found("ED-24".into())
        );
        assert_eq!(
            found(
                r#"{"expand":"schema,names","startAt":0,"maxResults":1,"total":1,"issues":[{"id":"10000","key":"ED-24"}]}"#
            ),
            Search::Found("ED-24".into())
        );
        assert_eq!(found(r#"{"issues":[],"isLast":true}"#), Search::NotFound);
        assert_eq!(search(Outcome::Delivered { status_code: Some(204), detail: None }), Search::NotFound);
        assert_eq!(search(failed(410, "HTTP 410 Gone", "")), Search::NotFound);
        assert_eq!(search(failed(401, "HTTP 401 Unauthorized", "")), Search::NotFound);
        let busy = Outcome::Retry { status_code: Some(503), after: None, error: "HTTP 503".into(), detail: None };
        assert_eq!(
            search(busy),
            Search::Stop(Outcome::Retry {
                status_code: Some(503),
                after: None,
                error: "searching for an earlier issue: HTTP 503".into(),
                detail: None
            })
        );
        let limited = Outcome::Retry {
            status_code: Some(429),
            after: Some(Duration::from_secs(3)),
            error: "HTTP 429 Too Many Requests".into(),
            detail: None,
        };
        let Search::Stop(stop) = search(limited) else { panic!("a 429 stops the attempt") };
        assert_eq!(stop.error(), Some("searching for an earlier issue: HTTP 429 Too Many Requests"));
        let down = Outcome::Retry { status_code: None, after: None, error: "connection refused".into(), detail: None };
        assert!(matches!(search(down), Search::Stop(Outcome::Retry { .. })));
    }
}
