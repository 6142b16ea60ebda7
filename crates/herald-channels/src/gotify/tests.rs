use serde_json::json;

use super::*;
use crate::testing::{Answer, Sample, StandIn, ctx};

const TOKEN: &str = "AzyoeNS.D4iJLVa";
const TIMEOUT: Duration = Duration::from_secs(5);

fn field(config: Value) -> String {
    Gotify.prepare(config, &ctx(false)).unwrap_err().field
}

#[test]
fn prepare_names_the_wrong_field() {
    assert_eq!(field(json!({"app_token": TOKEN})), "server_url");
    assert_eq!(field(json!({"server_url": "gotify.example.com", "app_token": TOKEN})), "server_url");
    assert_eq!(field(json!({"server_url": "http://127.0.0.1", "app_token": TOKEN})), "server_url");
    assert_eq!(field(json!({"server_url": "https://g.example.com/?token=x", "app_token": TOKEN})), "server_url");
    assert_eq!(field(json!({"server_url": "https://g.example.com"})), "app_token");
    assert_eq!(field(json!({"server_url": "https://g.example.com", "app_token": "a b"})), "app_token");
    assert_eq!(field(json!({"server_url": "https://g.example.com", "app_token": ""})), "app_token");
    for priority in [json!(11), json!(-1), json!("high")] {
        let config = json!({"server_url": "https://g.example.com", "app_token": TOKEN, "priority": priority});
        assert_eq!(field(config), "priority", "{priority}");
    }
    assert_eq!(field(json!({"server_url": "https://g.example.com", "app_token": TOKEN, "token": "x"})), "token");
}

#[test]
fn prepare_normalises() {
    let config = json!({"server_url": "https://G.example.com/gotify/", "app_token": TOKEN, "priority": 0});
    let prepared = Gotify.prepare(config, &ctx(false)).unwrap();
    assert_eq!(prepared, json!({"server_url": "https://g.example.com/gotify", "app_token": TOKEN, "priority": 0}));
    assert_eq!(Gotify.prepare(prepared.clone(), &ctx(false)).unwrap(), prepared);
    assert_eq!(Gotify.secret_fields(), ["app_token"]);
    let schema = Gotify.schema();
    assert_eq!(schema["properties"]["app_token"]["secret"], true);
    assert!(schema["properties"].as_object().unwrap().values().all(|p| p["description"].is_string()));
    assert!(Gotify.check_recipient("anything").is_err(), "a Gotify application has one destination");
}

const CREATED: &str = r#"{"id":25,"appid":5,"message":"Backup done","title":"Backup done","priority":3,"date":"2026-01-02T03:04:05.5045044Z"}"#;

fn sample() -> Sample {
    Sample::new(
        "backup.done",
        Severity::Success,
        json!({"title": "Backup *db1* done", "message": "Took 3 min\n[not a link](x) <b>", "size_gb": 12, "host": "db_1"}),
    )
}

#[tokio::test]
async fn posts_the_message_with_the_key_in_a_header() {
    let stand_in = StandIn::start(Answer::new(200, CREATED)).await;
    let ctx = ctx(true);
    let config = json!({"server_url": format!("{}/gotify", stand_in.base()), "app_token": TOKEN});
    let target = Gotify.build(&Gotify.prepare(config, &ctx).unwrap(), &ctx).unwrap();
    let sample = sample();
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some(CREATED.into()) });

    let seen = stand_in.one();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri.to_string(), "/gotify/message", "no token in the query string");
    assert_eq!(seen.header("x-gotify-key"), Some(TOKEN));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.json(),
        json!({
            "title": "✅ Backup *db1* done",
            "message": "Took 3 min\\\n\\[not a link\\]\\(x\\) \\<b\\>\n\n- **host:** db\\_1\n- **size\\_gb:** 12\n\n\
                        [Open](<https://herald.example.com/v1/events/evt_1>)",
            "priority": 3,
            "extras": {
                "client::display": {"contentType": "text/markdown"},
                "client::notification": {"click": {"url": "https://herald.example.com/v1/events/evt_1"}}
            }
        })
    );
}

#[test]
fn severities_map_to_priorities() {
    let all = [Severity::Info, Severity::Success, Severity::Warning, Severity::Error, Severity::Critical];
    assert_eq!(all.map(priority_of), [4, 3, 5, 7, 8]);
    let bare = Content::from_event("disk.full", Severity::Info, &json!({}), None);
    assert_eq!(markdown(&bare), "Disk full");
    let odd = Content::from_event("x", Severity::Info, &json!({"url": "https://e.com/a<b>\\c"}), None);
    assert_eq!(markdown(&odd), "[Open](<https://e.com/a%3Cb%3E%5Cc>)");
}

async fn outcome_of(answer: Answer) -> Outcome {
    let stand_in = StandIn::start(answer).await;
    let target =
        Gotify.build(&json!({"server_url": stand_in.base(), "app_token": TOKEN, "priority": 9}), &ctx(true)).unwrap();
    let sample = sample();
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert_eq!(stand_in.one().json()["priority"], json!(9), "a fixed priority wins");
    outcome
}

#[tokio::test]
async fn classifies_the_server_answers() {
    let unauthorized = r#"{"error":"Unauthorized","errorCode":401,"errorDescription":"you need to provide a valid access token or user credentials to access this api"}"#;
    assert_eq!(
        outcome_of(Answer::new(401, unauthorized)).await,
        Outcome::Failed {
            status_code: Some(401),
            error:
                "HTTP 401 Unauthorized: you need to provide a valid access token or user credentials to access this api"
                    .into(),
            detail: Some(unauthorized.into()),
        }
    );
    let bad = r#"{"error":"Bad Request","errorCode":400,"errorDescription":"Field 'message' is required"}"#;
    let outcome = outcome_of(Answer::new(400, bad)).await;
    assert_eq!(
        (outcome.label(), outcome.error()),
        ("failed", Some("HTTP 400 Bad Request: Field 'message' is required"))
    );
    let outcome = outcome_of(Answer::new(503, "").header("retry-after", "30")).await;
    let Outcome::Retry { after, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(after, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn the_token_stays_out_of_debug_and_the_policy_is_rechecked() {
    let stand_in = StandIn::start(Answer::new(200, CREATED)).await;
    let target = Gotify.build(&json!({"server_url": stand_in.base(), "app_token": TOKEN}), &ctx(false)).unwrap();
    let sample = sample();
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert!(outcome.error().unwrap().starts_with("127.0.0.1 is loopback"), "{outcome:?}");
    assert!(stand_in.seen().is_empty());
    let ctx = ctx(true);
    let built = GotifyTarget {
        endpoint: Url::parse("https://g.example.com/message").unwrap(),
        token: TOKEN.into(),
        priority: None,
        client: ctx.http.clone(),
        policy: ctx.policy,
    };
    let debug = format!("{built:?}");
    assert!(!debug.contains(TOKEN) && debug.contains("[REDACTED]"), "{debug}");
}
