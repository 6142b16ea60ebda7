use serde_json::json;

use super::*;
use crate::{
    Severity,
    testing::{Answer, Sample, StandIn, ctx},
};

const TOKEN: &str = "syt_aGVyYWxk_kXyBzYqAhZpWuNdPjJwE_0abcde";
const ROOM: &str = "!opaqueRoom:example.org";
const TIMEOUT: Duration = Duration::from_secs(5);

fn field(config: Value) -> String {
    Matrix.prepare(config, &ctx(false)).unwrap_err().field
}

fn config(homeserver: &str, room: &str) -> Value {
    json!({"homeserver_url": homeserver, "access_token": TOKEN, "room_id": room})
}

#[test]
fn prepare_names_the_wrong_field() {
    assert_eq!(field(json!({"access_token": TOKEN, "room_id": ROOM})), "homeserver_url");
    assert_eq!(field(config("matrix.example.org", ROOM)), "homeserver_url");
    assert_eq!(field(config("http://169.254.169.254", ROOM)), "homeserver_url");
    assert_eq!(field(config("http://10.0.0.1:8008", ROOM)), "homeserver_url");
    assert_eq!(field(json!({"homeserver_url": "https://m.example.org", "room_id": ROOM})), "access_token");
    for token in ["", "two words", "line\nbreak"] {
        let config = json!({"homeserver_url": "https://m.example.org", "access_token": token, "room_id": ROOM});
        assert_eq!(field(config), "access_token", "{token:?}");
    }
    assert_eq!(field(json!({"homeserver_url": "https://m.example.org", "access_token": TOKEN})), "room_id");
    for room in ["room", "!", "!abc:", "!:example.org", "#alias", "#:example.org", "@user:example.org", "!a b:c"] {
        assert_eq!(field(config("https://m.example.org", room)), "room_id", "{room}");
    }
    let mut extra = config("https://m.example.org", ROOM);
    extra["msgtype"] = json!("m.notice");
    assert_eq!(field(extra), "msgtype");
}

#[test]
fn prepare_normalises() {
    let prepared =
        Matrix.prepare(config("https://Matrix.Example.org/", " !opaqueRoom:example.org "), &ctx(false)).unwrap();
    assert_eq!(prepared, config("https://matrix.example.org", ROOM));
    assert_eq!(Matrix.prepare(prepared.clone(), &ctx(false)).unwrap(), prepared);
    // Room version 12 ids have no server part; aliases are kept for resolution at send time.
    for room in ["!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM", "#ops:example.org"] {
        assert!(Matrix.prepare(config("https://m.example.org", room), &ctx(false)).is_ok(), "{room}");
        assert_eq!(Matrix.check_recipient(room), Ok(()));
    }
    assert!(Matrix.check_recipient("@someone:example.org").is_err());
    assert_eq!(Matrix.secret_fields(), ["access_token"]);
    let schema = Matrix.schema();
    assert_eq!(schema["properties"]["access_token"]["secret"], true);
    assert!(schema["properties"].as_object().unwrap().values().all(|p| p["description"].is_string()));
}

fn sample() -> Sample {
    Sample::new(
        "backup.failed",
        Severity::Error,
        json!({"title": "Backup <db1> failed", "message": "Disk full\nat 03:00 & retrying", "host": "db1"}),
    )
}

const PLAIN: &str = "❌ Backup <db1> failed\n\nDisk full\nat 03:00 & retrying\n\nhost: db1\n\n\
                     https://herald.example.com/v1/events/evt_1";
const HTML: &str = "<p><strong>❌ Backup &lt;db1&gt; failed</strong></p><p>Disk full<br>at 03:00 &amp; retrying</p>\
                    <ul><li><strong>host:</strong> db1</li></ul>\
                    <p><a href=\"https://herald.example.com/v1/events/evt_1\">Open</a></p>";
const SENT: &str = r#"{"event_id":"$YUwRidLecu:example.org"}"#;
const DELIVERY: &str = "dlv_0190c6b6f3a87c2a9e1f0b1c2d3e4f50";

async fn target(stand_in: &StandIn, room: &str) -> Arc<dyn Target> {
    let ctx = ctx(true);
    Matrix.build(&Matrix.prepare(config(&stand_in.base(), room), &ctx).unwrap(), &ctx).unwrap()
}

#[tokio::test]
async fn sends_the_documented_request() {
    let stand_in = StandIn::start(Answer::new(200, SENT)).await;
    let target = target(&stand_in, ROOM).await;
    let sample = sample();
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some(SENT.into()) });

    let seen = stand_in.one();
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        seen.uri.to_string(),
        format!("/_matrix/client/v3/rooms/%21opaqueRoom%3Aexample.org/send/m.room.message/{DELIVERY}")
    );
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.json(),
        json!({"msgtype": "m.text", "body": PLAIN, "format": "org.matrix.custom.html", "formatted_body": HTML,
               "m.mentions": {}})
    );
}

#[tokio::test]
async fn an_alias_is_resolved_then_the_room_used() {
    let stand_in = StandIn::start(Answer::new(200, SENT)).await;
    // A long servers list cuts the excerpt; the room id comes first.
    let servers: Vec<String> = (0..100).map(|i| format!("server{i}.example.org")).collect();
    let directory = json!({"room_id": "!resolved:example.org", "servers": servers}).to_string();
    stand_in.script([Answer::new(200, &directory)]);
    let target = target(&stand_in, "#ops:example.org").await;
    let sample = sample();
    assert_eq!(target.send(&sample.message(), TIMEOUT).await.label(), "sent");
    let seen = stand_in.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.path()),
        ("GET", "/_matrix/client/v3/directory/room/%23ops%3Aexample.org")
    );
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(
        seen[1].uri.path(),
        format!("/_matrix/client/v3/rooms/%21resolved%3Aexample.org/send/m.room.message/{DELIVERY}")
    );

    let unknown = r#"{"errcode":"M_NOT_FOUND","error":"Room alias #gone:example.org not found"}"#;
    stand_in.script([Answer::new(404, unknown)]);
    let message = Message { to: Some("#gone:example.org"), ..sample.message() };
    let outcome = target.send(&message, TIMEOUT).await;
    assert_eq!(outcome.label(), "failed");
    assert_eq!(
        outcome.error(),
        Some("resolving #gone:example.org: HTTP 404 Not Found: M_NOT_FOUND: Room alias #gone:example.org not found")
    );
    assert_eq!(stand_in.seen().len(), 3, "nothing is sent when the alias resolves to nothing");
}

#[tokio::test]
async fn a_recipient_room_replaces_the_configured_one() {
    let stand_in = StandIn::start(Answer::new(200, SENT)).await;
    let target = target(&stand_in, ROOM).await;
    let sample = sample();
    let message = Message { to: Some("!other:example.net"), ..sample.message() };
    assert_eq!(target.send(&message, TIMEOUT).await.label(), "sent");
    assert!(stand_in.one().uri.path().starts_with("/_matrix/client/v3/rooms/%21other%3Aexample.net/send/"));
}

async fn outcome_of(answer: Answer) -> Outcome {
    let stand_in = StandIn::start(answer).await;
    let target = target(&stand_in, ROOM).await;
    let sample = sample();
    target.send(&sample.message(), TIMEOUT).await
}

#[tokio::test]
async fn classifies_the_homeserver_answers() {
    let forbidden =
        r#"{"errcode":"M_FORBIDDEN","error":"User @herald:example.org not in room !opaqueRoom:example.org"}"#;
    assert_eq!(
        outcome_of(Answer::new(403, forbidden)).await,
        Outcome::Failed {
            status_code: Some(403),
            error: "HTTP 403 Forbidden: M_FORBIDDEN: User @herald:example.org not in room !opaqueRoom:example.org"
                .into(),
            detail: Some(forbidden.into()),
        }
    );
    let unknown_token = r#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed.","soft_logout":false}"#;
    let outcome = outcome_of(Answer::new(401, unknown_token)).await;
    assert_eq!(outcome.label(), "failed");
    assert_eq!(outcome.error(), Some("HTTP 401 Unauthorized: M_UNKNOWN_TOKEN: Invalid access token passed."));
    let limited = r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":2000}"#;
    assert_eq!(
        outcome_of(Answer::new(429, limited)).await,
        Outcome::Retry {
            status_code: Some(429),
            after: Some(Duration::from_secs(2)),
            error: "HTTP 429 Too Many Requests: M_LIMIT_EXCEEDED: Too many requests".into(),
            detail: Some(limited.into()),
        }
    );
    // Newer homeservers may give only the header.
    let outcome = outcome_of(
        Answer::new(429, r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests"}"#).header("retry-after", "3"),
    )
    .await;
    let Outcome::Retry { after, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(after, Some(Duration::from_secs(3)));
    let not_found = r#"{"errcode":"M_NOT_FOUND","error":"Unknown room"}"#;
    let outcome = outcome_of(Answer::new(404, not_found)).await;
    assert_eq!((outcome.label(), outcome.error()), ("failed", Some("HTTP 404 Not Found: M_NOT_FOUND: Unknown room")));
    let outcome = outcome_of(Answer::new(502, "<html>Bad Gateway</html>")).await;
    assert_eq!((outcome.label(), outcome.error()), ("retry", Some("HTTP 502 Bad Gateway")));
}

#[tokio::test]
async fn the_token_stays_out_of_debug_and_the_policy_is_rechecked() {
    let stand_in = StandIn::start(Answer::new(200, SENT)).await;
    let target = Matrix.build(&config(&stand_in.base(), ROOM), &ctx(false)).unwrap();
    let sample = sample();
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert_eq!(outcome.label(), "failed");
    assert!(outcome.error().unwrap().starts_with("127.0.0.1 is loopback"), "{outcome:?}");
    assert!(stand_in.seen().is_empty());
    let ctx = ctx(true);
    let built = MatrixTarget {
        base: Url::parse("https://m.example.org").unwrap(),
        token: TOKEN.into(),
        room: Room::Id(ROOM.into()),
        client: ctx.http.clone(),
        policy: ctx.policy,
    };
    let debug = format!("{built:?}");
    assert!(!debug.contains(TOKEN) && debug.contains("[REDACTED]"), "{debug}");
}
