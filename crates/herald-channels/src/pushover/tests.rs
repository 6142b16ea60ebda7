use serde_json::json;

use super::*;
use crate::{
    html_text::units,
    testing::{Answer, Sample, StandIn, ctx},
};

const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
const OTHER_USER: &str = "gznej3rKEVAvPUxu9vvNnqpmZpokzF";
const APP: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const TIMEOUT: Duration = Duration::from_secs(5);

fn field(config: Value) -> String {
    Pushover.prepare(config, &ctx(false)).unwrap_err().field
}

fn with(extra: Value) -> Value {
    let mut config = json!({"user_key": USER, "app_token": APP});
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    config
}

#[test]
fn prepare_names_the_wrong_field() {
    assert_eq!(field(json!({"app_token": APP})), "user_key");
    assert_eq!(field(json!({"user_key": "short", "app_token": APP})), "user_key");
    assert_eq!(field(json!({"user_key": format!("{}!", &USER[..29]), "app_token": APP})), "user_key");
    assert_eq!(field(json!({"user_key": USER})), "app_token");
    assert_eq!(field(json!({"user_key": USER, "app_token": format!("{APP}x")})), "app_token");
    assert_eq!(field(with(json!({"device": "phone,"}))), "device");
    assert_eq!(field(with(json!({"device": "my phone"}))), "device");
    assert_eq!(field(with(json!({"sound": "a".repeat(21)}))), "sound");
    assert_eq!(field(with(json!({"sound": "si ren"}))), "sound");
    for priority in [json!(3), json!(-3), json!("high")] {
        assert_eq!(field(with(json!({"priority": priority}))), "priority", "{priority}");
    }
    assert_eq!(field(with(json!({"api_url": "http://169.254.169.254"}))), "api_url");
    assert_eq!(field(with(json!({"api_url": "http://127.0.0.1:9"}))), "api_url");
    assert_eq!(field(with(json!({"html": 1}))), "html");
}

#[test]
fn prepare_normalises() {
    let config = with(
        json!({"device": "iphone,pixel-8", "sound": "siren", "priority": -2, "api_url": "https://API.example.com/"}),
    );
    let prepared = Pushover.prepare(config, &ctx(false)).unwrap();
    assert_eq!(prepared["api_url"], json!("https://api.example.com"));
    assert_eq!(Pushover.prepare(prepared.clone(), &ctx(false)).unwrap(), prepared);
    assert_eq!(Pushover.secret_fields(), ["user_key", "app_token"]);
    let schema = Pushover.schema();
    assert_eq!(
        (schema["properties"]["user_key"]["secret"].clone(), schema["properties"]["app_token"]["secret"].clone()),
        (json!(true), json!(true))
    );
    assert!(schema["properties"].as_object().unwrap().values().all(|p| p["description"].is_string()));
    assert_eq!(Pushover.check_recipient(OTHER_USER), Ok(()));
    assert!(Pushover.check_recipient("someone@example.com").is_err());
}

const SENT: &str = r#"{"status":1,"request":"647d2300-702c-4b38-8b2f-d56326ae460b"}"#;

fn sample(severity: Severity) -> Sample {
    Sample::new(
        "job.failed",
        severity,
        json!({"title": "Job <nightly> failed", "message": "Exit code 2 & no output", "url": "https://ci.example.com/j/9?x=1&y=2", "host": "ci1"}),
    )
}

async fn send(extra: Value, severity: Severity, to: Option<&str>) -> (Outcome, crate::testing::Seen) {
    let stand_in = StandIn::start(Answer::new(200, SENT)).await;
    let ctx = ctx(true);
    let mut config = with(extra);
    config["api_url"] = json!(stand_in.base());
    let target = Pushover.build(&Pushover.prepare(config, &ctx).unwrap(), &ctx).unwrap();
    let sample = sample(severity);
    let message = Message { to, ..sample.message() };
    (target.send(&message, TIMEOUT).await, stand_in.one())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn posts_the_documented_form() {
    let (outcome, seen) = send(json!({}), Severity::Error, None).await;
    assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some(SENT.into()) });
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri.to_string(), "/1/messages.json");
    assert_eq!(seen.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(
        seen.form(),
        pairs(&[
            ("token", APP),
            ("user", USER),
            ("message", "Exit code 2 &amp; no output\n\n<b>host:</b> ci1"),
            ("title", "❌ Job <nightly> failed"),
            ("html", "1"),
            ("priority", "1"),
            ("url", "https://ci.example.com/j/9?x=1&y=2"),
            ("url_title", "Open"),
            // 2026-01-02T03:04:05Z
            ("timestamp", "1767323045"),
        ])
    );
}

#[tokio::test]
async fn emergency_sound_device_and_a_recipient() {
    let (_, seen) =
        send(json!({"priority": 2, "sound": "siren", "device": "pixel-8"}), Severity::Info, Some(OTHER_USER)).await;
    let form = seen.form();
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("user"), Some(OTHER_USER));
    assert_eq!((get("priority"), get("retry"), get("expire")), (Some("2"), Some("60"), Some("3600")));
    assert_eq!((get("sound"), get("device")), (Some("siren"), Some("pixel-8")));
    let (_, seen) = send(json!({}), Severity::Success, None).await;
    assert!(seen.form().contains(&("priority".into(), "-1".into())));
    assert!(!seen.form().iter().any(|(k, _)| k == "retry"));
}

#[test]
fn severities_map_to_priorities_and_the_message_is_bounded() {
    let all = [Severity::Info, Severity::Success, Severity::Warning, Severity::Error, Severity::Critical];
    assert_eq!(all.map(priority_of), [0, -1, 0, 1, 1]);
    let long = Content::from_event("x", Severity::Info, &json!({"message": "<&>".repeat(1000), "k": "v"}), None);
    let message = html_message(&long);
    assert!(units(&message) <= MAX_MESSAGE, "{}", units(&message));
    assert!(message.ends_with('…') && message.starts_with("&lt;&amp;&gt;"));
    let bare = Content::from_event("disk.full", Severity::Info, &json!({}), None);
    assert_eq!(html_message(&bare), "Disk full");
    let facts = Content::from_event("x", Severity::Info, &json!({"a": "1", "b": "<2>"}), None);
    assert_eq!(html_message(&facts), "<b>a:</b> 1\n<b>b:</b> &lt;2&gt;");
}

async fn outcome_of(answer: Answer) -> Outcome {
    let stand_in = StandIn::start(answer).await;
    let target = Pushover.build(&with(json!({"api_url": stand_in.base()})), &ctx(true)).unwrap();
    let sample = sample(Severity::Info);
    target.send(&sample.message(), TIMEOUT).await
}

#[tokio::test]
async fn classifies_the_api_answers() {
    let invalid = r#"{"user":"invalid","errors":["user identifier is not a valid user, group, or subscribed user key"],"status":0,"request":"5042853c-402d-4a18-abcb-168734a801de"}"#;
    assert_eq!(
        outcome_of(Answer::new(400, invalid)).await,
        Outcome::Failed {
            status_code: Some(400),
            error: "HTTP 400 Bad Request: user identifier is not a valid user, group, or subscribed user key".into(),
            detail: Some(invalid.into()),
        }
    );
    let two = r#"{"token":"invalid","errors":["application token is invalid","message cannot be blank"],"status":0,"request":"r"}"#;
    let outcome = outcome_of(Answer::new(400, two)).await;
    assert_eq!(outcome.error(), Some("HTTP 400 Bad Request: application token is invalid; message cannot be blank"));
    let quota = r#"{"errors":["application is over its monthly message quota"],"status":0,"request":"q"}"#;
    let outcome = outcome_of(Answer::new(429, quota)).await;
    assert_eq!(
        (outcome.label(), outcome.error()),
        ("retry", Some("HTTP 429 Too Many Requests: application is over its monthly message quota"))
    );
    let outcome = outcome_of(Answer::new(500, "Internal Server Error")).await;
    assert_eq!(outcome.label(), "retry");
    let odd = r#"{"status":0,"errors":["odd"],"request":"o"}"#;
    let outcome = outcome_of(Answer::new(200, odd)).await;
    assert_eq!((outcome.label(), outcome.error()), ("failed", Some("Pushover answered status 0: odd")));
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_the_policy_is_rechecked() {
    let stand_in = StandIn::start(Answer::new(200, SENT)).await;
    let target = Pushover.build(&with(json!({"api_url": stand_in.base()})), &ctx(false)).unwrap();
    let sample = sample(Severity::Info);
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert!(outcome.error().unwrap().starts_with("127.0.0.1 is loopback"), "{outcome:?}");
    assert!(stand_in.seen().is_empty());
    let ctx = ctx(true);
    let built = PushoverTarget {
        endpoint: Url::parse("https://api.pushover.net/1/messages.json").unwrap(),
        user: USER.into(),
        token: APP.into(),
        device: None,
        sound: None,
        priority: None,
        client: ctx.http.clone(),
        policy: ctx.policy,
    };
    let debug = format!("{built:?}");
    assert!(!debug.contains(USER) && !debug.contains(APP) && debug.contains("[REDACTED]"), "{debug}");
}
