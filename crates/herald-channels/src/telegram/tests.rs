use serde_json::json;

use super::*;
use crate::{
    Severity,
    testing::{Answer, Sample, StandIn, ctx},
};

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const TIMEOUT: Duration = Duration::from_secs(5);

fn field(config: Value) -> String {
    Telegram.prepare(config, &ctx(false)).unwrap_err().field
}

#[test]
fn prepare_names_the_wrong_field() {
    let ok = |extra: Value| {
        let mut config = json!({"bot_token": TOKEN, "chat_id": -1001234567890_i64});
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        config
    };
    assert_eq!(field(json!({"chat_id": 1})), "bot_token");
    assert_eq!(field(json!({"bot_token": "nope", "chat_id": 1})), "bot_token");
    assert_eq!(field(json!({"bot_token": "12:ab cd", "chat_id": 1})), "bot_token");
    assert_eq!(field(json!({"bot_token": TOKEN})), "chat_id");
    for chat in [json!(0), json!("abc"), json!(1.5), json!("@ab"), json!("@1abcdef"), json!(true), json!("")] {
        assert_eq!(field(json!({"bot_token": TOKEN, "chat_id": chat})), "chat_id", "{chat}");
    }
    assert_eq!(field(ok(json!({"api_url": "ftp://example.com"}))), "api_url");
    assert_eq!(field(ok(json!({"api_url": "http://169.254.169.254"}))), "api_url");
    assert_eq!(field(ok(json!({"api_url": "http://127.0.0.1:8081"}))), "api_url", "private refused by this policy");
    assert_eq!(field(ok(json!({"message_thread_id": 0}))), "message_thread_id");
    assert_eq!(field(ok(json!({"message_thread_id": "7"}))), "message_thread_id");
    assert_eq!(field(ok(json!({"silent": "yes"}))), "silent");
    assert_eq!(field(ok(json!({"parse_mode": "Markdown"}))), "parse_mode");
    assert_eq!(field(json!("x")), "");
}

#[test]
fn errors_never_echo_the_token() {
    let err = Telegram.prepare(json!({"bot_token": format!("{TOKEN} "), "chat_id": 1}), &ctx(false)).unwrap_err();
    assert!(!err.message.contains("AAHdq"), "{err}");
}

#[test]
fn prepare_normalises() {
    let prepared = Telegram
        .prepare(
            json!({"bot_token": TOKEN, "chat_id": "-1001234567890", "api_url": "HTTPS://Tg.Example.com/"}),
            &ctx(false),
        )
        .unwrap();
    assert_eq!(
        prepared,
        json!({"bot_token": TOKEN, "chat_id": -1001234567890_i64, "api_url": "https://tg.example.com"})
    );
    assert_eq!(Telegram.prepare(prepared.clone(), &ctx(false)).unwrap(), prepared, "preparing twice changes nothing");
    let channel =
        Telegram.prepare(json!({"bot_token": TOKEN, "chat_id": " @my_channel", "silent": true}), &ctx(false)).unwrap();
    assert_eq!(channel, json!({"bot_token": TOKEN, "chat_id": "@my_channel", "silent": true}));
    assert_eq!(Telegram.secret_fields(), ["bot_token"]);
    assert_eq!(Telegram.schema()["properties"]["bot_token"]["secret"], true);
    for (name, property) in Telegram.schema()["properties"].as_object().unwrap() {
        assert!(property["description"].is_string(), "{name}");
    }
}

#[test]
fn recipients_are_chat_ids_or_channel_names() {
    for good in ["12345", "-1001234567890", "@my_channel"] {
        assert_eq!(Telegram.check_recipient(good), Ok(()), "{good}");
    }
    for bad in ["", "me@example.com", "+15551234567", "@x", "0", "#room"] {
        assert!(Telegram.check_recipient(bad).is_err(), "{bad}");
    }
}

fn sample() -> Sample {
    Sample::new(
        "deploy.finished",
        Severity::Success,
        json!({
            "title": "Deploy <api> & co", "message": "Version 1.2 is \"live\"",
            "url": "https://ci.example.com/d/7?a=1&b=2", "env": "prod"
        }),
    )
}

const EXPECTED_TEXT: &str = "<b>✅ Deploy &lt;api&gt; &amp; co</b>\n\nVersion 1.2 is &quot;live&quot;\n\n\
                             <b>env:</b> prod\n\n<a href=\"https://ci.example.com/d/7?a=1&amp;b=2\">Open</a>";

const SENT: &str = r#"{"ok":true,"result":{"message_id":42,"from":{"id":123456789,"is_bot":true,"first_name":"Herald","username":"herald_bot"},"chat":{"id":-1001234567890,"title":"Ops","type":"supergroup"},"date":1767322800,"text":"Deploy"}}"#;

async fn target(stand_in: &StandIn, extra: Value) -> Arc<dyn Target> {
    let ctx = ctx(true);
    let mut config = json!({"bot_token": TOKEN, "chat_id": -1001234567890_i64, "api_url": stand_in.base()});
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    Telegram.build(&Telegram.prepare(config, &ctx).unwrap(), &ctx).unwrap()
}

#[tokio::test]
async fn sends_the_documented_request() {
    let stand_in = StandIn::start(Answer::new(200, SENT).header("content-type", "application/json")).await;
    let target = target(&stand_in, json!({"message_thread_id": 7, "silent": true})).await;
    let sample = sample();
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some(SENT.into()) });
    assert!(outcome.detail().unwrap().contains(r#""message_id":42"#));

    let seen = stand_in.one();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri.path(), format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(seen.uri.query(), None);
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.json(),
        json!({
            "chat_id": -1001234567890_i64,
            "text": EXPECTED_TEXT,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
            "message_thread_id": 7,
            "disable_notification": true
        })
    );
}

#[tokio::test]
async fn a_recipient_replaces_the_chat_and_its_topic() {
    let stand_in = StandIn::start(Answer::new(200, SENT)).await;
    let target = target(&stand_in, json!({"message_thread_id": 7})).await;
    let sample = sample();
    let message = Message { to: Some("@other_channel"), ..sample.message() };
    assert_eq!(target.send(&message, TIMEOUT).await.label(), "sent");
    let message = Message { to: Some("-42"), ..sample.message() };
    assert_eq!(target.send(&message, TIMEOUT).await.label(), "sent");
    let seen = stand_in.seen();
    assert_eq!(
        seen[0].json(),
        json!({"chat_id": "@other_channel", "text": EXPECTED_TEXT, "parse_mode": "HTML", "link_preview_options": {"is_disabled": true}})
    );
    assert_eq!(seen[1].json()["chat_id"], json!(-42));
    assert!(seen[1].json().get("message_thread_id").is_none());
}

async fn outcome_of(answer: Answer) -> Outcome {
    let stand_in = StandIn::start(answer).await;
    let target = target(&stand_in, json!({})).await;
    let sample = sample();
    target.send(&sample.message(), TIMEOUT).await
}

#[tokio::test]
async fn classifies_the_bot_api_answers() {
    let chat_not_found = r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#;
    assert_eq!(
        outcome_of(Answer::new(400, chat_not_found)).await,
        Outcome::Failed {
            status_code: Some(400),
            error: "HTTP 400 Bad Request: Bad Request: chat not found".into(),
            detail: Some(chat_not_found.into()),
        }
    );
    let unauthorized = r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#;
    let outcome = outcome_of(Answer::new(401, unauthorized)).await;
    assert_eq!(outcome.label(), "failed");
    assert_eq!(outcome.error(), Some("HTTP 401 Unauthorized: Unauthorized (check bot_token)"));
    let blocked = r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#;
    let outcome = outcome_of(Answer::new(403, blocked)).await;
    assert_eq!(outcome.label(), "failed");
    assert_eq!(outcome.error(), Some("HTTP 403 Forbidden: Forbidden: bot was blocked by the user"));

    // The wait comes from the body, with no Retry-After header.
    let flood = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}"#;
    assert_eq!(
        outcome_of(Answer::new(429, flood)).await,
        Outcome::Retry {
            status_code: Some(429),
            after: Some(Duration::from_secs(5)),
            error: "HTTP 429 Too Many Requests: Too Many Requests: retry after 5".into(),
            detail: Some(flood.into()),
        }
    );

    let migrated = r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#;
    let outcome = outcome_of(Answer::new(400, migrated)).await;
    assert_eq!(outcome.label(), "failed");
    assert_eq!(
        outcome.error(),
        Some(
            "HTTP 400 Bad Request: Bad Request: group chat was upgraded to a supergroup chat \
             (the group is now a supergroup: set chat_id to -1001234567890)"
        )
    );

    let outcome = outcome_of(Answer::new(502, "<html>Bad Gateway</html>")).await;
    assert_eq!((outcome.label(), outcome.error()), ("retry", Some("HTTP 502 Bad Gateway")));
    let odd = r#"{"ok":false,"error_code":400,"description":"Bad Request: odd"}"#;
    let outcome = outcome_of(Answer::new(200, odd)).await;
    assert_eq!((outcome.label(), outcome.error()), ("failed", Some("HTTP 200 OK: Bad Request: odd")));
}

#[test]
fn long_text_is_cut_in_the_text_never_in_an_entity() {
    let data = json!({"title": "<&>".repeat(100), "message": "&".repeat(5000), "url": "https://e.com/?q=\"x\"&y", "host": "db1"});
    let sample = Sample::new("x", Severity::Critical, data);
    let text = render(&sample.content);
    assert!(units(&text) <= MAX_TEXT, "{}", units(&text));
    assert!(text.starts_with("<b>🚨 &lt;&amp;&gt;"));
    assert!(text.ends_with("&amp;…\n\n<a href=\"https://e.com/?q=&quot;x&quot;&amp;y\">Open</a>"), "{text}");
    for (i, _) in text.match_indices('&') {
        assert!(["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| text[i..].starts_with(e)));
    }
    // Facts after a cut body are left out whole, never half written.
    assert!(!text.contains("host"));
}

#[tokio::test]
async fn the_token_stays_out_of_debug_and_errors() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let ctx = ctx(true);
    let config = json!({"bot_token": TOKEN, "chat_id": 1, "api_url": format!("http://{closed}")});
    let target = Telegram.build(&config, &ctx).unwrap();
    let sample = sample();
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert_eq!(outcome.label(), "retry");
    assert!(!format!("{outcome:?}").contains("AAHdq"), "{outcome:?}");
    let built = TelegramTarget {
        api: Url::parse(DEFAULT_API_URL).unwrap(),
        endpoint: Url::parse(&format!("{DEFAULT_API_URL}/bot{TOKEN}/sendMessage")).unwrap(),
        chat: ChatId::Id(1),
        thread: None,
        silent: false,
        client: ctx.http.clone(),
        policy: ctx.policy,
    };
    let debug = format!("{built:?}");
    assert!(!debug.contains("AAHdq") && debug.contains("[REDACTED]"), "{debug}");
}

#[tokio::test]
async fn send_rechecks_the_policy() {
    let stand_in = StandIn::start(Answer::new(200, SENT)).await;
    let config = json!({"bot_token": TOKEN, "chat_id": 1, "api_url": stand_in.base()});
    let target = Telegram.build(&config, &ctx(false)).unwrap();
    let sample = sample();
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert_eq!(outcome.label(), "failed");
    assert!(outcome.error().unwrap().starts_with("127.0.0.1 is loopback"), "{outcome:?}");
    assert!(stand_in.seen().is_empty());
}

#[test]
fn mentions_in_event_data_notify_nobody() {
    let sample = Sample::new("x", Severity::Info, json!({"title": "ping @admin", "message": "cc @ops", "by": "@eve"}));
    let text = render(&sample.content);
    assert!(text.contains("ping @\u{2060}admin") && text.contains("cc @\u{2060}ops") && text.contains("@\u{2060}eve"));
    assert!(!text.contains("@admin") && !text.contains("@ops"), "{text}");
}
