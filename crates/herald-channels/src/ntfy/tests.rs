use serde_json::json;

use super::*;
use crate::testing::{Answer, Sample, StandIn, ctx};

const TIMEOUT: Duration = Duration::from_secs(5);

fn field(config: Value) -> String {
    Ntfy.prepare(config, &ctx(false)).unwrap_err().field
}

fn with(extra: Value) -> Value {
    let mut config = json!({"topic": "ops-alerts"});
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    config
}

#[test]
fn prepare_names_the_wrong_field() {
    assert_eq!(field(json!({})), "topic");
    for topic in ["", "has space", "a/b", &"x".repeat(65), "émoji"] {
        assert_eq!(field(json!({"topic": topic})), "topic", "{topic}");
    }
    assert_eq!(field(with(json!({"server_url": "ntfy.sh"}))), "server_url");
    assert_eq!(field(with(json!({"server_url": "http://192.168.1.2"}))), "server_url");
    assert_eq!(field(with(json!({"token": "tk_a", "username": "u", "password": "p"}))), "token");
    assert_eq!(field(with(json!({"token": "tk a"}))), "token");
    assert_eq!(field(with(json!({"username": "u"}))), "password");
    assert_eq!(field(with(json!({"password": "p"}))), "username");
    assert_eq!(field(with(json!({"username": "a:b", "password": "p"}))), "username");
    assert_eq!(field(with(json!({"username": "u", "password": "p\n"}))), "password");
    for priority in [json!(0), json!(6), json!("high"), json!(-1)] {
        assert_eq!(field(with(json!({"priority": priority}))), "priority", "{priority}");
    }
    assert_eq!(field(with(json!({"tags": "a,b"}))), "tags");
    assert_eq!(field(with(json!({"tags": ["ok", "a,b"]}))), "tags[1]");
    assert_eq!(field(with(json!({"tags": ["ok", ""]}))), "tags[1]");
    assert_eq!(field(with(json!({"tags": vec!["t"; 11]}))), "tags");
    assert_eq!(field(with(json!({"markdown": true}))), "markdown");
}

#[test]
fn prepare_normalises() {
    let prepared = Ntfy.prepare(with(json!({"server_url": "https://Ntfy.Example.com/push/"})), &ctx(false)).unwrap();
    assert_eq!(prepared, json!({"server_url": "https://ntfy.example.com/push", "topic": "ops-alerts"}));
    assert_eq!(Ntfy.prepare(prepared.clone(), &ctx(false)).unwrap(), prepared);
    assert_eq!(Ntfy.prepare(with(json!({})), &ctx(false)).unwrap(), json!({"topic": "ops-alerts"}));
    assert_eq!(Ntfy.secret_fields(), ["token", "password"]);
    let schema = Ntfy.schema();
    assert_eq!(
        (schema["properties"]["token"]["secret"].clone(), schema["properties"]["password"]["secret"].clone()),
        (json!(true), json!(true))
    );
    assert!(schema["properties"].as_object().unwrap().values().all(|p| p["description"].is_string()));
    assert_eq!(Ntfy.check_recipient("other_topic"), Ok(()));
    assert!(Ntfy.check_recipient("not a topic").is_err());
}

const PUBLISHED: &str = r#"{"id":"sPs71M8A2T","time":1767322800,"expires":1767366000,"event":"message","topic":"ops-alerts","title":"Disk full","message":"/ at 97%","priority":4,"tags":["prod","warning"],"click":"https://grafana.example.com/d/disk"}"#;

fn sample(severity: Severity) -> Sample {
    Sample::new(
        "disk.full",
        severity,
        json!({"title": "Disk full", "message": "/ at 97% <b>", "url": "https://grafana.example.com/d/disk", "host": "db1"}),
    )
}

async fn send(config: Value, severity: Severity, to: Option<&str>) -> (Outcome, crate::testing::Seen) {
    let stand_in = StandIn::start(Answer::new(200, PUBLISHED)).await;
    let ctx = ctx(true);
    let mut config = config;
    config["server_url"] = json!(stand_in.base());
    let target = Ntfy.build(&Ntfy.prepare(config, &ctx).unwrap(), &ctx).unwrap();
    let sample = sample(severity);
    let message = Message { to, ..sample.message() };
    let outcome = target.send(&message, TIMEOUT).await;
    (outcome, stand_in.one())
}

#[tokio::test]
async fn publishes_json_to_the_root_with_a_token() {
    let (outcome, seen) =
        send(with(json!({"token": "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2", "tags": ["prod"]})), Severity::Warning, None)
            .await;
    assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some(PUBLISHED.into()) });
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri.to_string(), "/");
    assert_eq!(seen.header("authorization"), Some("Bearer tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.json(),
        json!({
            "topic": "ops-alerts",
            "title": "Disk full",
            "message": "/ at 97% <b>\n\nhost: db1",
            "priority": 4,
            "tags": ["prod", "warning"],
            "click": "https://grafana.example.com/d/disk"
        })
    );
}

#[tokio::test]
async fn basic_auth_fixed_priority_and_a_recipient_topic() {
    let config = with(json!({"username": "herald", "password": "s3cret:pw", "priority": 1}));
    let (_, seen) = send(config, Severity::Critical, Some("other_topic")).await;
    // base64("herald:s3cret:pw")
    assert_eq!(seen.header("authorization"), Some("Basic aGVyYWxkOnMzY3JldDpwdw=="));
    let body = seen.json();
    assert_eq!((body["topic"].clone(), body["priority"].clone()), (json!("other_topic"), json!(1)));
    assert_eq!(body["tags"], json!(["rotating_light"]));
    let (_, seen) = send(with(json!({})), Severity::Success, None).await;
    assert_eq!(seen.header("authorization"), None);
    assert_eq!((seen.json()["priority"].clone(), seen.json()["tags"].clone()), (json!(2), json!(["white_check_mark"])));
}

#[test]
fn severities_map_to_priorities_and_emoji() {
    let all = [Severity::Info, Severity::Success, Severity::Warning, Severity::Error, Severity::Critical];
    assert_eq!(all.map(priority_of), [3, 2, 4, 4, 5]);
    assert_eq!(all.map(tag_of), ["information_source", "white_check_mark", "warning", "x", "rotating_light"]);
    let long = "é".repeat(3000);
    let cut = crate::render::cut_bytes_marked(&long, MAX_MESSAGE_BYTES);
    assert!(cut.len() <= MAX_MESSAGE_BYTES && cut.ends_with('…'));
    assert_eq!(crate::render::cut_bytes_marked("short", 10), "short");
}

async fn outcome_of(answer: Answer) -> Outcome {
    let stand_in = StandIn::start(answer).await;
    let ctx = ctx(true);
    let target = Ntfy.build(&with(json!({"server_url": stand_in.base()})), &ctx).unwrap();
    let sample = sample(Severity::Info);
    target.send(&sample.message(), TIMEOUT).await
}

#[tokio::test]
async fn classifies_the_server_answers() {
    let forbidden =
        r#"{"code":40301,"http":403,"error":"forbidden","link":"https://ntfy.sh/docs/publish/#authentication"}"#;
    assert_eq!(
        outcome_of(Answer::new(403, forbidden)).await,
        Outcome::Failed {
            status_code: Some(403),
            error: "HTTP 403 Forbidden: forbidden (code 40301, see https://ntfy.sh/docs/publish/#authentication)"
                .into(),
            detail: Some(forbidden.into()),
        }
    );
    let limited = r#"{"code":42901,"http":429,"error":"limit reached: too many requests"}"#;
    assert_eq!(
        outcome_of(Answer::new(429, limited).header("retry-after", "4")).await,
        Outcome::Retry {
            status_code: Some(429),
            after: Some(Duration::from_secs(4)),
            error: "HTTP 429 Too Many Requests: limit reached: too many requests (code 42901)".into(),
            detail: Some(limited.into()),
        }
    );
    let outcome = outcome_of(Answer::new(429, limited)).await;
    assert_eq!(outcome.label(), "retry");
    let outcome = outcome_of(Answer::new(500, "oops")).await;
    assert_eq!((outcome.label(), outcome.error()), ("retry", Some("HTTP 500 Internal Server Error")));
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_the_policy_is_rechecked() {
    let stand_in = StandIn::start(Answer::new(200, PUBLISHED)).await;
    let config = with(json!({"server_url": stand_in.base(), "password": "hunter2", "username": "u"}));
    let target = Ntfy.build(&config, &ctx(false)).unwrap();
    let sample = sample(Severity::Info);
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert!(outcome.error().unwrap().starts_with("127.0.0.1 is loopback"), "{outcome:?}");
    assert!(stand_in.seen().is_empty());
    let ctx = ctx(true);
    let built = NtfyTarget {
        root: Url::parse(DEFAULT_SERVER_URL).unwrap(),
        topic: "t".into(),
        auth: Auth::Basic { username: "u".into(), password: "hunter2".into() },
        priority: None,
        tags: Vec::new(),
        client: ctx.http.clone(),
        policy: ctx.policy,
    };
    let debug = format!("{built:?}");
    assert!(!debug.contains("hunter2") && debug.contains("[REDACTED]"), "{debug}");
}
