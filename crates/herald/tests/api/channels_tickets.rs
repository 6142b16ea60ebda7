//! The `jira` and `twilio_sms` channels end to end: the exact requests a
//! local stand-in for Jira or Twilio receives, and how their answers are
//! recorded.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb},
    sink::{Reply, Sink},
};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
const JIRA_TOKEN: &str = "ATATT3xFfGF0-jira-token";

fn json_reply(status: u16, body: &str) -> Reply {
    Reply::status(status).with_header("content-type", "application/json").with_body(body)
}

fn no_issues() -> Reply {
    json_reply(200, r#"{"issues":[],"isLast":true}"#)
}

fn created_issue(key: &str) -> Reply {
    json_reply(
        201,
        &format!(r#"{{"id":"10000","key":"{key}","self":"https://example.atlassian.net/rest/api/3/issue/10000"}}"#),
    )
}

fn jira_config(sink: &Sink, version: u8) -> Value {
    json!({
        "base_url": sink.base(), "email": "ops@example.com", "api_token": JIRA_TOKEN,
        "project_key": "ED", "issue_type": "Incident", "labels": ["alerts"], "priority": "High", "api_version": version
    })
}

fn message(status: u16, sid: &str, to: &str) -> Reply {
    json_reply(
        status,
        &json!({"account_sid": ACCOUNT, "api_version": "2010-04-01", "body": "…", "direction": "outbound-api",
            "error_code": null, "from": "+15005550006", "num_segments": "1", "sid": sid, "status": "queued", "to": to})
        .to_string(),
    )
}

fn twilio_error(status: u16, code: u32, text: &str) -> Reply {
    json_reply(
        status,
        &json!({"code": code, "message": text, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status})
            .to_string(),
    )
}

fn twilio_config(sink: &Sink, to: &[&str]) -> Value {
    json!({"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN, "from": "+15005550006", "to": to, "api_url": sink.base()})
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

backend_test!(jira_opens_an_issue_and_records_its_key, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let jira = Sink::start().await;
    let int = app.integration("jira", jira_config(&jira, 3)).await;
    app.rule(&["backup.*"], None, &[&int]).await;

    // Secrets never come back.
    let (_, got) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(got["config"]["api_token"], json!("********"), "{got}");
    assert_eq!(got["config"]["api_version"], json!(3));

    jira.script([no_issues(), created_issue("ED-24")]);
    let (s, e) = app
        .post(
            "/v1/events",
            json!({"type": "backup.failed", "severity": "error", "data": {
                "title": "Backup of db1 failed", "message": "Exit code 3.", "url": "https://ci.example.com/jobs/7", "host": "db1"
            }}),
        )
        .await;
    assert_eq!(s, 202, "{e}");
    let deliveries = app.routed(e["id"].as_str().unwrap()).await;
    let id = deliveries[0]["id"].as_str().unwrap().to_owned();
    let done = app.wait_for_delivery(&id, "sent").await;
    let base = jira.base();
    assert_eq!(done["attempts"][0]["status_code"], json!(201), "{done}");
    assert_eq!(done["attempts"][0]["response"], json!(format!("created ED-24 ({base}/browse/ED-24)")), "{done}");

    let got = jira.received();
    assert_eq!(got.len(), 2, "a search for an earlier issue, then the create");
    assert_eq!(got[0].method, "GET");
    assert!(
        got[0].uri.to_string().starts_with("/rest/api/3/search/jql?jql=labels+%3D+%22herald-dlv_"),
        "{}",
        got[0].uri
    );
    let create = &got[1];
    assert_eq!((create.method.as_str(), create.uri.path()), ("POST", "/rest/api/3/issue"));
    assert_eq!(create.header("authorization"), basic("ops@example.com", JIRA_TOKEN));
    assert_eq!(create.header("accept"), "application/json");
    assert_eq!(
        create.json(),
        json!({"fields": {
            "project": {"key": "ED"},
            "issuetype": {"name": "Incident"},
            "summary": "Backup of db1 failed",
            "description": {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Exit code 3."}]},
                {"type": "bulletList", "content": [{"type": "listItem", "content": [{"type": "paragraph", "content": [
                    {"type": "text", "text": "host:", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": " db1"}
                ]}]}]},
                {"type": "paragraph", "content": [{"type": "text", "text": "https://ci.example.com/jobs/7",
                    "marks": [{"type": "link", "attrs": {"href": "https://ci.example.com/jobs/7"}}]}]}
            ]},
            "labels": ["alerts", "herald", format!("herald-{id}")],
            "priority": {"name": "High"}
        }})
    );

    // Jira refuses the issue: failed at once, with Jira's own words.
    jira.script([
        no_issues(),
        json_reply(
            400,
            r#"{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue.","issuetype":"valid issue type is required"}}"#,
        ),
    ]);
    let id = app.event_with_delivery("backup.failed", json!({"title": "again"})).await;
    let failed = app.wait_for_delivery(&id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(
        failed["attempts"][0]["error"],
        json!(
            "HTTP 400 Bad Request: summary: You must specify a summary of the issue.; issuetype: valid issue type is required"
        )
    );
    assert!(!app.log.lock().unwrap().contains(JIRA_TOKEN), "the API token was logged");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_api_2_gets_wiki_markup_and_a_found_issue_is_not_opened_twice() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let jira = Sink::start().await;
    let int = app.integration("jira", jira_config(&jira, 2)).await;
    app.rule(&["*"], None, &[&int]).await;

    // The first create times out after Jira made the issue (test attempt
    // timeout: 2 s); the retry finds it by its label instead of opening another.
    jira.script([
        json_reply(200, r#"{"startAt":0,"maxResults":1,"total":0,"issues":[]}"#),
        created_issue("ED-7").with_delay(std::time::Duration::from_secs(3)),
    ]);
    let id = app.event_with_delivery("job.failed", json!({"message": "Job [nightly] failed.", "job": "nightly"})).await;
    jira.script([json_reply(200, r#"{"startAt":0,"maxResults":1,"total":1,"issues":[{"id":"10007","key":"ED-7"}]}"#)]);
    let done = app.wait_for_delivery(&id, "sent").await;
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{done}");
    assert_eq!(attempts[0]["outcome"], json!("retry"));
    let base = jira.base();
    assert_eq!(
        attempts[1]["response"],
        json!(format!("found ED-7 created by an earlier attempt ({base}/browse/ED-7)"))
    );

    let got = jira.received();
    assert_eq!(got.iter().filter(|r| r.method == "POST").count(), 1, "one issue only");
    assert!(got[0].uri.to_string().starts_with("/rest/api/2/search?jql="), "{}", got[0].uri);
    assert_eq!(got[1].uri.path(), "/rest/api/2/issue");
    assert_eq!(got[1].json()["fields"]["description"], json!("Job \\[nightly\\] failed.\n\n* *job:* nightly"));
    assert_eq!(got[1].json()["fields"]["summary"], json!("Job failed"));
}

backend_test!(twilio_texts_every_number_and_classifies_by_code, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let (team, oncall) = (Sink::start().await, Sink::start().await);
    let team_int = app.integration("twilio_sms", twilio_config(&team, &["+15005550001", "+15005550002"])).await;
    let oncall_int = app.integration("twilio_sms", twilio_config(&oncall, &["+15005550003"])).await;
    app.rule(&["team.*"], None, &[&team_int]).await;
    app.rule(&["oncall.*"], None, &[&oncall_int]).await;
    let (_, got) = app.get(&format!("/v1/integrations/{team_int}")).await;
    assert_eq!(got["config"]["auth_token"], json!("********"), "{got}");
    assert_eq!(got["config"]["account_sid"], json!(ACCOUNT));

    // Two numbers: two form requests, in order.
    team.script([message(201, "SM1", "+15005550001"), message(201, "SM2", "+15005550002")]);
    let id = app.event_with_delivery("team.deploy", json!({"title": "Deploy done", "message": "v1.2 is live."})).await;
    let done = app.wait_for_delivery(&id, "sent").await;
    assert_eq!(done["attempts"][0]["response"], json!("sent to +15005550001: SM1 queued; +15005550002: SM2 queued"));
    let got = team.received();
    assert_eq!(got.len(), 2);
    for (request, to) in got.iter().zip(["+15005550001", "+15005550002"]) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.uri.path(), format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json"));
        assert_eq!(request.header("authorization"), basic(ACCOUNT, AUTH_TOKEN));
        assert_eq!(request.header("content-type"), "application/x-www-form-urlencoded");
        assert_eq!(
            request.form(),
            vec![
                ("To".to_owned(), to.to_owned()),
                ("From".to_owned(), "+15005550006".to_owned()),
                ("Body".to_owned(), "Deploy done\n\nv1.2 is live.".to_owned())
            ]
        );
    }

    // Rate limited, then accepted.
    oncall.script([
        twilio_error(429, 20429, "Too Many Requests").with_header("retry-after", "1"),
        message(201, "SM3", "+15005550003"),
    ]);
    let id = app.event_with_delivery("oncall.page", json!({"title": "Disk full"})).await;
    let done = app.wait_for_delivery(&id, "sent").await;
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{done}");
    assert_eq!(attempts[0]["outcome"], json!("retry"));
    assert_eq!(attempts[0]["status_code"], json!(429));
    assert!(attempts[0]["error"].as_str().unwrap().contains("20429: Too Many Requests"), "{done}");
    assert_eq!(attempts[1]["response"], json!("sent to +15005550003: SM3 queued"));

    // An invalid number: failed at once, with Twilio's code and words.
    oncall.script([twilio_error(400, 21211, "The 'To' number +15005550003 is not a valid phone number.")]);
    let id = app.event_with_delivery("oncall.page", json!({"title": "Disk full"})).await;
    let failed = app.wait_for_delivery(&id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(
        failed["attempts"][0]["error"],
        json!(
            "HTTP 400 Bad Request: 21211: The 'To' number +15005550003 is not a valid phone number. (https://www.twilio.com/docs/errors/21211)"
        )
    );
    assert!(!app.log.lock().unwrap().contains(AUTH_TOKEN), "the auth token was logged");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_test_send_goes_to_the_given_number() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let twilio = Sink::start().await;
    let int = app.integration("twilio_sms", twilio_config(&twilio, &["+15005550001"])).await;

    twilio.script([message(201, "SM9", "+15005550006")]);
    let (s, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "+15005550006"})).await;
    assert_eq!(s, 200, "{test}");
    assert_eq!(test["success"], json!(true), "{test}");
    let got = twilio.received();
    assert_eq!(got.len(), 1, "only the given number");
    let form = got[0].form();
    assert_eq!(form[0], ("To".to_owned(), "+15005550006".to_owned()));
    assert!(form[2].1.contains("This is a test message from Herald."), "{form:?}");

    let (s, problem) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "555"})).await;
    assert_eq!(s, 400, "{problem}");
    assert_eq!(problem["field"], json!("recipient"));
    assert_eq!(twilio.received().len(), 1, "nothing sent to a bad number");

    // A config error names its field.
    let (s, problem) = app
        .post(
            "/v1/integrations",
            json!({"name": "t", "type": "twilio_sms", "config": {"account_sid": ACCOUNT, "auth_token": "x", "from": "+15005550006", "to": ["+15005550001", "555"]}}),
        )
        .await;
    assert_eq!(s, 400, "{problem}");
    assert_eq!(problem["field"], json!("config.to[1]"));
}
