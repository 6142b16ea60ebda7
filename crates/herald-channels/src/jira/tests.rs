use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::json;

use super::*;
use crate::{
    Severity,
    testing::{Answer, Sample, StandIn, ctx},
};

fn config(base: &str) -> Value {
    json!({
        "base_url": base, "email": "ops@example.com", "api_token": "ATATT3xFfGF0-token",
        "project_key": "ED", "issue_type": "Task", "labels": ["alerts"]
    })
}

fn field(config: Value) -> String {
    Jira.prepare(config, &ctx(false)).unwrap_err().field
}

fn with(key: &str, value: Value) -> Value {
    let mut c = config("https://example.atlassian.net");
    c[key] = value;
    c
}

#[test]
fn prepare_names_the_wrong_field() {
    let mut missing = config("https://example.atlassian.net");
    for key in ["base_url", "email", "api_token", "project_key", "issue_type"] {
        let mut c = missing.clone();
        c.as_object_mut().unwrap().remove(key);
        assert_eq!(field(c), key);
        assert_eq!(field(with(key, json!("  "))), key, "blank {key}");
    }
    for bad in [
        "ftp://example.com",
        "not a url",
        "https://example.com/?x=1",
        "https://example.com/#f",
        "https://u:p@example.com",
    ] {
        assert_eq!(field(with("base_url", json!(bad))), "base_url", "{bad}");
    }
    assert_eq!(field(with("base_url", json!("http://169.254.169.254/"))), "base_url");
    assert_eq!(field(with("base_url", json!("http://127.0.0.1:8080/"))), "base_url", "private follows the policy");
    for bad in ["ops", "@example.com", "ops@", "o ps@example.com"] {
        assert_eq!(field(with("email", json!(bad))), "email", "{bad}");
    }
    for bad in ["ed", "E", "1ED", "ED-1", "É"] {
        assert_eq!(field(with("project_key", json!(bad))), "project_key", "{bad}");
    }
    assert_eq!(field(with("issue_type", json!("Task\nBcc"))), "issue_type");
    assert_eq!(field(with("priority", json!(""))), "priority");
    assert_eq!(field(with("api_version", json!(4))), "api_version");
    assert_eq!(field(with("api_version", json!("3"))), "api_version");
    assert_eq!(field(with("labels", json!(["ok", "two words"]))), "labels[1]");
    assert_eq!(field(with("labels", json!([""]))), "labels[0]");
    assert_eq!(field(with("labels", json!(["x".repeat(256)]))), "labels[0]");
    assert_eq!(field(with("labels", json!([1]))), "labels[0]");
    assert_eq!(field(with("labels", json!(vec!["a"; 21]))), "labels");
    assert_eq!(field(with("extra", json!(1))), "extra");
    missing = json!("https://example.atlassian.net");
    assert_eq!(field(missing), "");
}

#[test]
fn prepare_normalises_and_fills_the_api_version() {
    let mut c = config("HTTPS://Example.Atlassian.NET/");
    c["labels"] = json!(["alerts", "alerts", "prod"]);
    let prepared = Jira.prepare(c, &ctx(false)).unwrap();
    assert_eq!(prepared["base_url"], "https://example.atlassian.net");
    assert_eq!(prepared["api_version"], 3);
    assert_eq!(prepared["labels"], json!(["alerts", "prod"]));
    assert_eq!(Jira.prepare(prepared.clone(), &ctx(false)).unwrap(), prepared, "preparing again changes nothing");
    let dc = Jira.prepare(with("base_url", json!("https://jira.example.com/jira/")), &ctx(false)).unwrap();
    assert_eq!(dc["base_url"], "https://jira.example.com/jira");
    assert!(Jira.build(&prepared, &ctx(false)).is_ok());
    assert_eq!(Jira.secret_fields(), ["api_token"]);
    assert_eq!(Jira.schema()["properties"]["api_token"]["secret"], true);
    assert!(Jira.check_recipient("someone@example.com").is_err(), "an issue goes to the configured project");
}

#[test]
fn debug_hides_the_token() {
    let target = JiraTarget {
        config: parse(&config("https://example.atlassian.net")).unwrap().1,
        client: ctx(false).http,
        policy: AddressPolicy::default(),
    };
    let debug = format!("{target:?}");
    assert!(!debug.contains("ATATT3") && debug.contains("[REDACTED]"), "{debug}");
}

const CREATED: &str = r#"{"id":"10000","key":"ED-24","self":"https://example.atlassian.net/rest/api/3/issue/10000"}"#;
const NO_ISSUES: &str = r#"{"issues":[],"isLast":true}"#;

fn sample() -> Sample {
    Sample::new(
        "disk.full",
        Severity::Error,
        json!({"title": "Disk full on db1", "message": "97% used.", "host": "db1"}),
    )
}

async fn send(config: Value) -> Outcome {
    let ctx = ctx(true);
    let target = Jira.build(&Jira.prepare(config, &ctx).unwrap(), &ctx).unwrap();
    let sample = sample();
    target.send(&sample.message(), Duration::from_secs(5)).await
}

fn basic_auth() -> String {
    format!("Basic {}", STANDARD.encode("ops@example.com:ATATT3xFfGF0-token"))
}

#[tokio::test]
async fn searches_then_creates_the_issue_as_documented() {
    let jira = StandIn::start(Answer::json(201, &serde_json::from_str(CREATED).unwrap())).await;
    jira.script([Answer::json(200, &serde_json::from_str(NO_ISSUES).unwrap())]);
    let outcome = send(config(&jira.base())).await;
    let base = jira.base();
    assert_eq!(
        outcome,
        Outcome::Delivered { status_code: Some(201), detail: Some(format!("created ED-24 ({base}/browse/ED-24)")) }
    );
    let seen = jira.seen();
    assert_eq!(seen.len(), 2);
    let search = &seen[0];
    assert_eq!(search.method, "GET");
    assert_eq!(
        search.uri.to_string(),
        "/rest/api/3/search/jql?jql=labels+%3D+%22herald-dlv_0190c6b6f3a87c2a9e1f0b1c2d3e4f50%22&maxResults=1&fields=summary"
    );
    assert_eq!(search.header("authorization"), Some(basic_auth().as_str()));
    let create = &seen[1];
    assert_eq!(create.method, "POST");
    assert_eq!(create.uri, "/rest/api/3/issue");
    assert_eq!(create.header("authorization"), Some(basic_auth().as_str()));
    assert_eq!(create.header("accept"), Some("application/json"));
    assert_eq!(create.header("content-type"), Some("application/json"));
    let sample = sample();
    assert_eq!(
        create.json(),
        json!({"fields": {
            "project": {"key": "ED"},
            "issuetype": {"name": "Task"},
            "summary": "Disk full on db1",
            "description": {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "97% used."}]},
                {"type": "bulletList", "content": [{"type": "listItem", "content": [{"type": "paragraph", "content": [
                    {"type": "text", "text": "host:", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": " db1"}
                ]}]}]},
                {"type": "paragraph", "content": [{"type": "text", "text": sample.content.link.clone().unwrap(),
                    "marks": [{"type": "link", "attrs": {"href": sample.content.link.clone().unwrap()}}]}]}
            ]},
            "labels": ["alerts", "herald", "herald-dlv_0190c6b6f3a87c2a9e1f0b1c2d3e4f50"]
        }})
    );
}

#[tokio::test]
async fn api_2_sends_wiki_markup_to_its_own_paths() {
    let jira = StandIn::start(Answer::json(201, &serde_json::from_str(CREATED).unwrap())).await;
    jira.script([Answer::json(200, &json!({"startAt": 0, "maxResults": 1, "total": 0, "issues": []}))]);
    let mut c = config(&format!("{}/jira", jira.base()));
    c["api_version"] = json!(2);
    c["priority"] = json!("High");
    assert_eq!(send(c).await.label(), "sent");
    let seen = jira.seen();
    assert!(seen[0].uri.to_string().starts_with("/jira/rest/api/2/search?jql="), "{}", seen[0].uri);
    assert_eq!(seen[1].uri, "/jira/rest/api/2/issue");
    let fields = &seen[1].json()["fields"];
    assert_eq!(
        fields["description"],
        json!("97% used.\n\n* *host:* db1\n\n[https://herald.example.com/v1/events/evt_1]")
    );
    assert_eq!(fields["priority"], json!({"name": "High"}));
}

#[tokio::test]
async fn an_issue_from_an_earlier_attempt_is_not_created_again() {
    let found = json!({"issues": [{"expand": "", "id": "10000", "self": "x", "key": "ED-24", "fields": {"summary": "Disk full on db1"}}], "isLast": true});
    let jira = StandIn::start(Answer::json(200, &found)).await;
    let outcome = send(config(&jira.base())).await;
    let base = jira.base();
    assert_eq!(
        outcome,
        Outcome::Delivered {
            status_code: Some(200),
            detail: Some(format!("found ED-24 created by an earlier attempt ({base}/browse/ED-24)"))
        }
    );
    assert_eq!(jira.one().method, "GET", "no second issue");
}

#[tokio::test]
async fn jiras_refusals_are_classified_with_its_words() {
    let no_issues = || Answer::json(200, &serde_json::from_str(NO_ISSUES).unwrap());
    let jira = StandIn::start(no_issues()).await;
    // Jira's own byte order (a `json!` map would sort the keys).
    let invalid = r#"{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue.","issuetype":"valid issue type is required"}}"#;
    jira.script([no_issues(), Answer::new(400, invalid).header("content-type", "application/json;charset=UTF-8")]);
    let outcome = send(config(&jira.base())).await;
    assert_eq!(outcome.label(), "failed");
    assert_eq!(
        outcome.error(),
        Some(
            "HTTP 400 Bad Request: summary: You must specify a summary of the issue.; issuetype: valid issue type is required"
        )
    );

    // A bad token: Jira Cloud answers 401 to the search and to the create.
    jira.script([
        Answer::new(401, "Client must be authenticated to access this resource."),
        Answer::new(401, "Client must be authenticated to access this resource."),
    ]);
    let outcome = send(config(&jira.base())).await;
    assert_eq!(outcome.status_code(), Some(401));
    assert_eq!(outcome.label(), "failed");
    assert!(outcome.error().unwrap().ends_with("(check email and api_token)"), "{outcome:?}");

    jira.script([no_issues(), Answer::new(429, "").header("retry-after", "30")]);
    let outcome = send(config(&jira.base())).await;
    assert!(
        matches!(outcome, Outcome::Retry { status_code: Some(429), after: Some(d), .. } if d == Duration::from_secs(30))
    );

    jira.script([no_issues(), Answer::new(502, "<html>Bad gateway</html>")]);
    let outcome = send(config(&jira.base())).await;
    assert_eq!((outcome.label(), outcome.error()), ("retry", Some("HTTP 502 Bad Gateway")));

    // A throttled search stops before the create.
    let before = jira.seen().len();
    jira.script([Answer::new(429, "").header("retry-after", "5")]);
    let outcome = send(config(&jira.base())).await;
    assert_eq!(outcome.label(), "retry");
    assert_eq!(jira.seen().len(), before + 1);
}

#[tokio::test]
async fn send_rechecks_the_policy() {
    let jira = StandIn::start(Answer::new(201, CREATED)).await;
    let c = Jira.prepare(config(&jira.base()), &ctx(true)).unwrap();
    let target = Jira.build(&c, &ctx(false)).unwrap();
    let sample = sample();
    let outcome = target.send(&sample.message(), Duration::from_secs(5)).await;
    assert_eq!(outcome.label(), "failed");
    assert!(jira.seen().is_empty());
}
