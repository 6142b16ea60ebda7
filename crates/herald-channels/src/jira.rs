//! The `jira` channel: one issue per delivery through Jira's REST API
//! (`POST {base_url}/rest/api/{2|3}/issue`, Basic auth with an account's
//! email and API token).
//!
//! A retried delivery must not open a second issue when the first attempt's
//! answer was lost (a timeout after Jira created it). Every issue carries the
//! label `herald-<delivery id>`, and each attempt first searches for it: an
//! issue found there is the delivery, already done.

use std::{fmt, sync::Arc, time::Duration};

use reqwest::header::ACCEPT;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::{AddressPolicy, Channel, ConfigError, Context, Message, Outcome, SendFuture, Target};

mod answer;
mod issue;

const MAX_URL_LEN: usize = 2048;
/// Jira's limit on a label's length (labels may not contain spaces either).
const MAX_LABEL: usize = 255;
const MAX_LABELS: usize = 20;
/// Issue type and priority names; Jira's own limit is 60 for issue types.
const MAX_NAME: usize = 255;
const MAX_EMAIL: usize = 254;

/// The `jira` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jira;

/// The config as the API accepts and stores it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct JiraConfig {
    // Required fields are optional here so that a missing one is reported on its own field.
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    api_token: Option<String>,
    #[serde(default)]
    project_key: Option<String>,
    #[serde(default)]
    issue_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<u8>,
}

/// The validated config.
struct Parsed {
    /// Without a trailing slash; issue links are `{base}/browse/{key}`.
    base: String,
    issue_url: Url,
    search_url: Url,
    email: String,
    api_token: String,
    project_key: String,
    issue_type: String,
    labels: Vec<String>,
    priority: Option<String>,
    version: ApiVersion,
}

/// REST API version 3 takes the description as an Atlassian Document Format
/// document (Jira Cloud); version 2 as a wiki-markup string (Jira Data Center
/// and Server, and Cloud too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    V2,
    V3,
}

fn parse(config: &Value) -> Result<(JiraConfig, Parsed), ConfigError> {
    let raw: JiraConfig = serde_path_to_error::deserialize(config).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::new(field, e.into_inner().to_string())
    })?;
    let version = match raw.api_version {
        None | Some(3) => ApiVersion::V3,
        Some(2) => ApiVersion::V2,
        Some(_) => return Err(ConfigError::new("api_version", "must be 2 or 3")),
    };
    let base_url = parse_base_url(required(&raw.base_url, "base_url")?)?;
    let base = base_url.as_str().trim_end_matches('/').to_owned();
    let v = match version {
        ApiVersion::V2 => 2,
        ApiVersion::V3 => 3,
    };
    let endpoint = |path: &str| {
        Url::parse(&format!("{base}/rest/api/{v}/{path}"))
            .map_err(|e| ConfigError::new("base_url", format!("is not a valid URL: {e}")))
    };
    // Jira Cloud retired `/search` for `/search/jql`; Data Center (API 2) only has `/search`.
    let search_url = endpoint(if version == ApiVersion::V3 { "search/jql" } else { "search" })?;
    let email = required(&raw.email, "email")?.to_owned();
    let at = email.find('@');
    if email.len() > MAX_EMAIL
        || !at.is_some_and(|i| i > 0 && i + 1 < email.len())
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::new("email", "must be the Jira account's email address, such as ops@example.com"));
    }
    let api_token = required(&raw.api_token, "api_token")?.to_owned();
    if api_token.chars().any(char::is_control) {
        return Err(ConfigError::new("api_token", "must not contain control characters"));
    }
    let project_key = required(&raw.project_key, "project_key")?.to_owned();
    if !is_project_key(&project_key) {
        return Err(ConfigError::new(
            "project_key",
            "must be a project key: an upper-case letter, then upper-case letters, digits or _ (such as OPS)",
        ));
    }
    let issue_type = name(required(&raw.issue_type, "issue_type")?, "issue_type")?;
    let priority = match raw.priority.as_deref().map(str::trim) {
        None => None,
        Some("") => return Err(ConfigError::new("priority", "must not be empty")),
        Some(p) => Some(name(p, "priority")?),
    };
    let labels = parse_labels(&raw.labels)?;
    Ok((
        raw,
        Parsed {
            issue_url: endpoint("issue")?,
            search_url,
            base,
            email,
            api_token,
            project_key,
            issue_type,
            labels,
            priority,
            version,
        },
    ))
}

/// A required string field, trimmed.
fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, ConfigError> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| ConfigError::new(field, "is required"))
}

fn parse_base_url(url: &str) -> Result<Url, ConfigError> {
    let bad = |message: &str| ConfigError::new("base_url", message);
    if url.len() > MAX_URL_LEN {
        return Err(bad(&format!("must be at most {MAX_URL_LEN} characters")));
    }
    let url = Url::parse(url).map_err(|e| bad(&format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL, such as https://example.atlassian.net"));
    }
    if url.host().is_none() {
        return Err(bad("must have a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "must not have a ?query or #fragment; give the site's address, such as https://example.atlassian.net",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials; use email and api_token"));
    }
    Ok(url)
}

/// `[A-Z][A-Z0-9_]+`, Jira's default project key pattern.
fn is_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && key.len() >= 2
        && key.len() <= MAX_NAME
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// An issue type or priority name: one line, bounded.
fn name(value: &str, field: &str) -> Result<String, ConfigError> {
    if value.chars().count() > MAX_NAME {
        return Err(ConfigError::new(field, format!("must be at most {MAX_NAME} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(ConfigError::new(field, "must be one line without control characters"));
    }
    Ok(value.to_owned())
}

fn parse_labels(labels: &[String]) -> Result<Vec<String>, ConfigError> {
    if labels.len() > MAX_LABELS {
        return Err(ConfigError::new("labels", format!("at most {MAX_LABELS} labels")));
    }
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for (i, label) in labels.iter().enumerate() {
        let bad = |message: &str| ConfigError::new(format!("labels[{i}]"), message);
        if label.is_empty() {
            return Err(bad("must not be empty"));
        }
        if label.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces (Jira labels are single words; use - or _)"));
        }
        if label.chars().count() > MAX_LABEL {
            return Err(bad(&format!("must be at most {MAX_LABEL} characters")));
        }
        if !out.contains(label) {
            out.push(label.clone());
        }
    }
    Ok(out)
}

impl Channel for Jira {
    fn kind(&self) -> &'static str {
        "jira"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["base_url", "email", "api_token", "project_key", "issue_type"],
            "properties": {
                "base_url": {
                    "type": "string",
                    "format": "uri",
                    "maxLength": MAX_URL_LEN,
                    "description": "The Jira site, such as https://example.atlassian.net (with its context path on Data Center)."
                },
                "email": {
                    "type": "string",
                    "maxLength": MAX_EMAIL,
                    "description": "Email address of the Jira account that creates the issues (the Basic auth user)."
                },
                "api_token": {
                    "type": "string",
                    "secret": true,
                    "description": "API token of that account (on Data Center, a password or personal access token usable with Basic auth)."
                },
                "project_key": {
                    "type": "string",
                    "pattern": "^[A-Z][A-Z0-9_]+$",
                    "description": "Key of the project the issues are created in, such as OPS."
                },
                "issue_type": {
                    "type": "string",
                    "maxLength": MAX_NAME,
                    "description": "Name of the issue type, such as Task, Bug or Incident."
                },
                "labels": {
                    "type": "array",
                    "maxItems": MAX_LABELS,
                    "items": { "type": "string", "pattern": "^\\S+$", "maxLength": MAX_LABEL },
                    "description": "Labels added to every issue (no spaces); `herald` and `herald-<delivery id>` are always added."
                },
                "priority": {
                    "type": "string",
                    "maxLength": MAX_NAME,
                    "description": "Name of the priority to set, such as High; the project's default when omitted."
                },
                "api_version": {
                    "type": "integer",
                    "enum": [2, 3],
                    "default": 3,
                    "description": "REST API version: 3 (Jira Cloud, description in Atlassian Document Format) or 2 (Data Center and Server, wiki markup)."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["api_token"]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        ctx.policy.check_url(&parsed.issue_url).map_err(|e| ConfigError::new("base_url", e.to_string()))?;
        raw.base_url = Some(parsed.base);
        raw.email = Some(parsed.email);
        raw.project_key = Some(parsed.project_key);
        raw.issue_type = Some(parsed.issue_type);
        raw.priority = parsed.priority;
        raw.labels = parsed.labels;
        raw.api_version = Some(match parsed.version {
            ApiVersion::V2 => 2,
            ApiVersion::V3 => 3,
        });
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        // The policy is checked on every send, not here: a target built
        // before the policy tightened still cannot reach a refused address.
        let (_, parsed) = parse(config)?;
        Ok(Arc::new(JiraTarget { config: parsed, client: ctx.http.clone(), policy: ctx.policy }))
    }
}

/// A built Jira project to open issues in.
pub struct JiraTarget {
    config: Parsed,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for JiraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraTarget")
            .field("issue_url", &self.config.issue_url.as_str())
            .field("email", &self.config.email)
            .field("api_token", &"[REDACTED]")
            .field("project_key", &self.config.project_key)
            .finish_non_exhaustive()
    }
}

/// The label that ties an issue to the delivery that created it. Delivery
/// ids are `dlv_` and hex, so the label needs no quoting in JQL.
fn delivery_label(delivery_id: &str) -> String {
    let id: String =
        delivery_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(200).collect();
    format!("herald-{id}")
}

impl JiraTarget {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        // IP literals never reach the resolver, so the policy is applied here.
        if let Err(refused) = self.policy.check_url(&self.config.issue_url) {
            return Outcome::Failed { status_code: None, error: refused.to_string(), detail: None };
        }
        let started = std::time::Instant::now();
        let label = delivery_label(message.delivery_id);
        match self.find_issue(&label, timeout).await {
            answer::Search::Found(issue) => {
                return Outcome::Delivered {
                    status_code: Some(200),
                    detail: Some(format!("found {issue} created by an earlier attempt ({})", self.browse(&issue))),
                };
            }
            answer::Search::Stop(outcome) => return outcome,
            answer::Search::NotFound => {}
        }
        let Some(left) = timeout.checked_sub(started.elapsed()).filter(|d| !d.is_zero()) else {
            return Outcome::Retry {
                status_code: None,
                after: None,
                error: "timed out while searching for an earlier issue".into(),
                detail: None,
            };
        };
        let c = &self.config;
        let mut labels = c.labels.clone();
        for extra in ["herald".to_owned(), label] {
            if !labels.contains(&extra) {
                labels.push(extra);
            }
        }
        let fields = issue::Fields {
            project_key: &c.project_key,
            issue_type: &c.issue_type,
            labels: &labels,
            priority: c.priority.as_deref(),
            version: c.version,
        };
        let request = self
            .client
            .post(c.issue_url.clone())
            .basic_auth(&c.email, Some(&c.api_token))
            .header(ACCEPT, "application/json")
            .json(&issue::body(&fields, message.content));
        let outcome = crate::http::send_and_classify(request, left).await;
        answer::created(outcome, &|key| self.browse(key), &c.project_key)
    }

    /// Looks for an issue an earlier attempt of this delivery created.
    async fn find_issue(&self, label: &str, timeout: Duration) -> answer::Search {
        let c = &self.config;
        let mut url = c.search_url.clone();
        url.query_pairs_mut()
            .append_pair("jql", &format!("labels = \"{label}\""))
            .append_pair("maxResults", "1")
            .append_pair("fields", "summary");
        let request = self.client.get(url).basic_auth(&c.email, Some(&c.api_token)).header(ACCEPT, "application/json");
        answer::search(crate::http::send_and_classify(request, timeout).await)
    }

    fn browse(&self, key: &str) -> String {
        format!("{}/browse/{key}", self.config.base)
    }
}

impl Target for JiraTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

#[cfg(test)]
mod tests;
