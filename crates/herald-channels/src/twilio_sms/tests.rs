use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::json;

use super::{send::MAX_BODY, *};
use crate::{
    Message, Outcome, Severity,
    testing::{Answer, Sample, StandIn, ctx},
};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";
const TOKEN: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

fn config(api_url: &str) -> Value {
    json!({"account_sid": SID, "auth_token": TOKEN, "from": "+15005550006", "to": ["+15005550001", "+15005550002"], "api_url": api_url})
}

fn field(config: Value) -> String {
    TwilioSms.prepare(config, &ctx(false)).unwrap_err().field
}

fn with(key: &str, value: Value) -> Value {
    let mut c = config("https://api.twilio.com");
    c[key] = value;
    c
}

#[test]
fn prepare_names_the_wrong_field() {
    for key in ["account_sid", "auth_token"] {
        let mut c = config("https://api.twilio.com");
        c.as_object_mut().unwrap().remove(key);
        assert_eq!(field(c), key);
    }
    for bad in [
        "AC123",
        "MG0123456789abcdef0123456789abcdef",
        "AC0123456789abcdef0123456789abcdeg",
        "ac0123456789abcdef0123456789abcdef",
    ] {
        assert_eq!(field(with("account_sid", json!(bad))), "account_sid", "{bad}");
    }
    assert_eq!(field(with("auth_token", json!(""))), "auth_token");
    for bad in ["15005550006", "+0123", "+1", "+1234567890123456", "+1 500 555 0006", "Too long sender", "1234"] {
        assert_eq!(field(with("from", json!(bad))), "from", "{bad}");
    }
    let mut neither = config("https://api.twilio.com");
    neither.as_object_mut().unwrap().remove("from");
    assert_eq!(field(neither.clone()), "from");
    neither["messaging_service_sid"] = json!("MG123");
    assert_eq!(field(neither), "messaging_service_sid");
    assert_eq!(field(with("messaging_service_sid", json!(SERVICE))), "messaging_service_sid", "not both");
    assert_eq!(field(with("to", json!(["+15005550001", "+15005550002", "555"]))), "to[2]");
    assert_eq!(field(with("to", json!(["+15005550001", "+15005550001"]))), "to[1]");
    assert_eq!(field(with("to", json!(["+15005550001", 5]))), "to[1]");
    let many: Vec<String> = (0..21).map(|i| format!("+1500555{i:04}")).collect();
    assert_eq!(field(with("to", json!(many))), "to");
    for bad in ["ftp://api.twilio.com", "https://api.twilio.com/?x=1", "http://169.254.169.254", "http://127.0.0.1:9"] {
        assert_eq!(field(with("api_url", json!(bad))), "api_url", "{bad}");
    }
    assert_eq!(field(with("extra", json!(1))), "extra");
}

#[test]
fn prepare_accepts_the_documented_shapes() {
    let ok = |c: Value| TwilioSms.prepare(c, &ctx(false)).unwrap();
    let prepared = ok(with("api_url", json!("https://api.twilio.com/")));
    assert_eq!(prepared["api_url"], "https://api.twilio.com");
    assert_eq!(ok(prepared.clone()), prepared, "preparing again changes nothing");
    let mut service = config("https://api.twilio.com");
    service.as_object_mut().unwrap().remove("from");
    service.as_object_mut().unwrap().remove("to");
    service.as_object_mut().unwrap().remove("api_url");
    service["messaging_service_sid"] = json!(SERVICE);
    assert_eq!(ok(service.clone()), service, "no `to` and no api_url are fine");
    for from in ["Herald", "ACME 24", "12345", "+442071838750"] {
        ok(with("from", json!(from)));
    }
    assert_eq!(TwilioSms.secret_fields(), ["auth_token"]);
    assert_eq!(TwilioSms.schema()["properties"]["auth_token"]["secret"], true);
    assert!(TwilioSms.check_recipient("+15005550006").is_ok());
    for bad in ["555", "15005550006", "+1555abc", "ops@example.com"] {
        assert!(TwilioSms.check_recipient(bad).is_err(), "{bad}");
    }
}

#[test]
fn debug_hides_the_token() {
    let parsed = parse(&config("https://api.twilio.com")).unwrap().1;
    let target = TwilioTarget { config: parsed, client: ctx(false).http, policy: AddressPolicy::default() };
    let debug = format!("{target:?}");
    assert!(!debug.contains(TOKEN) && debug.contains("[REDACTED]"), "{debug}");
}

fn created(to: &str, sid: &str) -> Answer {
    Answer::json(
        201,
        &json!({
            "account_sid": SID, "api_version": "2010-04-01", "body": "…", "direction": "outbound-api",
            "error_code": null, "error_message": null, "from": "+15005550006", "messaging_service_sid": null,
            "num_segments": "1", "sid": sid, "status": "queued", "to": to,
            "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json")
        }),
    )
}

fn twilio_error(status: u16, code: u32, message: &str) -> Answer {
    Answer::json(
        status,
        &json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}),
    )
}

fn sample() -> Sample {
    Sample::new(
        "disk.full",
        Severity::Error,
        json!({"title": "Disk full on db1", "message": "97% used.", "host": "db1"}),
    )
}

async fn send_with(config: Value, to: Option<&str>) -> Outcome {
    let ctx = ctx(true);
    let target = TwilioSms.build(&TwilioSms.prepare(config, &ctx).unwrap(), &ctx).unwrap();
    let sample = sample();
    let message = Message { to, ..sample.message() };
    target.send(&message, Duration::from_secs(5)).await
}

#[tokio::test]
async fn one_form_request_per_number_as_documented() {
    let twilio = StandIn::start(created("+15005550002", "SM2")).await;
    twilio.script([created("+15005550001", "SM1")]);
    let outcome = send_with(config(&twilio.base()), None).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            status_code: Some(201),
            detail: Some("sent to +15005550001: SM1 queued; +15005550002: SM2 queued".into())
        }
    );
    let seen = twilio.seen();
    assert_eq!(seen.len(), 2);
    let auth = format!("Basic {}", STANDARD.encode(format!("{SID}:{TOKEN}")));
    let text = sample().content.plain_text();
    assert_eq!(text, "Disk full on db1\n\n97% used.\n\nhost: db1\n\nhttps://herald.example.com/v1/events/evt_1");
    for (request, to) in seen.iter().zip(["+15005550001", "+15005550002"]) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.uri, format!("/2010-04-01/Accounts/{SID}/Messages.json").as_str());
        assert_eq!(request.header("authorization"), Some(auth.as_str()));
        assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(
            request.form(),
            vec![("To".into(), to.into()), ("From".into(), "+15005550006".into()), ("Body".into(), text.clone())]
        );
    }
    // The raw body is form-encoded: `+` of the numbers as %2B.
    assert!(std::str::from_utf8(&seen[0].body).unwrap().starts_with("To=%2B15005550001&From=%2B15005550006&Body="));
}

#[tokio::test]
async fn a_messaging_service_and_an_override_number() {
    let twilio = StandIn::start(created("+15005550009", "SM9")).await;
    let mut c = config(&twilio.base());
    c.as_object_mut().unwrap().remove("from");
    c["messaging_service_sid"] = json!(SERVICE);
    let outcome = send_with(c, Some("+15005550009")).await;
    assert_eq!(outcome.label(), "sent");
    assert_eq!(
        twilio.one().form(),
        vec![
            ("To".into(), "+15005550009".into()),
            ("MessagingServiceSid".into(), SERVICE.into()),
            ("Body".into(), sample().content.plain_text())
        ]
    );
}

#[tokio::test]
async fn long_texts_are_cut_to_1600_characters() {
    let twilio = StandIn::start(created("+15005550001", "SM1")).await;
    let ctx = ctx(true);
    let target = TwilioSms.build(&TwilioSms.prepare(config(&twilio.base()), &ctx).unwrap(), &ctx).unwrap();
    let sample = Sample::new("x", Severity::Info, json!({"message": "é".repeat(3000)}));
    let message = Message { to: Some("+15005550001"), ..sample.message() };
    target.send(&message, Duration::from_secs(5)).await;
    let (_, body) = twilio.one().form().into_iter().find(|(k, _)| k == "Body").unwrap();
    assert_eq!(body.chars().count(), MAX_BODY);
    assert!(body.ends_with('…'));
}

#[tokio::test]
async fn twilios_refusals_are_classified_by_code() {
    let twilio = StandIn::start(created("+15005550002", "SM2")).await;
    let invalid = "The 'To' number +15005550001 is not a valid phone number.";
    // The first number is invalid, the second gets it: sent, the failure named.
    twilio.script([twilio_error(400, 21211, invalid)]);
    let outcome = send_with(config(&twilio.base()), None).await;
    assert_eq!(
        outcome.detail(),
        Some(
            "sent to +15005550002: SM2 queued; failed: +15005550001: HTTP 400 Bad Request: 21211: The 'To' number +15005550001 is not a valid phone number. (https://www.twilio.com/docs/errors/21211)"
        )
    );
    assert_eq!(outcome.label(), "sent");

    // Bad credentials: the first answer stops the round.
    let before = twilio.seen().len();
    twilio.script([Answer::json(
        401,
        &json!({"code": 20003, "detail": "Your AccountSid or AuthToken was incorrect.", "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}),
    )]);
    let outcome = send_with(config(&twilio.base()), None).await;
    assert_eq!(outcome.label(), "failed");
    assert_eq!(outcome.status_code(), Some(401));
    assert!(outcome.error().unwrap().contains("20003: Authenticate"), "{outcome:?}");
    assert!(outcome.error().unwrap().ends_with("not tried: +15005550002"), "{outcome:?}");
    assert_eq!(twilio.seen().len(), before + 1);

    // A rate limit on the second number: retry when Twilio says.
    twilio.script([
        created("+15005550001", "SM1"),
        twilio_error(429, 20429, "Too Many Requests").header("retry-after", "3"),
    ]);
    let outcome = send_with(config(&twilio.base()), None).await;
    let Outcome::Retry { status_code: Some(429), after: Some(after), error, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(*after, Duration::from_secs(3));
    assert_eq!(
        error,
        "+15005550002: HTTP 429 Too Many Requests: 20429: Too Many Requests (https://www.twilio.com/docs/errors/20429); already sent to +15005550001 (the retry sends to them again)"
    );

    // Nobody to send to.
    let mut none = config(&twilio.base());
    none.as_object_mut().unwrap().remove("to");
    let outcome = send_with(none, None).await;
    assert_eq!(outcome.error(), Some("no recipient number: the integration has no `to` numbers"));
}

#[tokio::test]
async fn send_rechecks_the_policy() {
    let twilio = StandIn::start(created("+15005550001", "SM1")).await;
    let c = TwilioSms.prepare(config(&twilio.base()), &ctx(true)).unwrap();
    let target = TwilioSms.build(&c, &ctx(false)).unwrap();
    let sample = sample();
    let outcome = target.send(&sample.message(), Duration::from_secs(5)).await;
    assert_eq!(outcome.label(), "failed");
    assert!(twilio.seen().is_empty());
}
