use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::SecretKey;

use super::*;
use crate::testing::{Answer, Sample, Seen, StandIn, ctx};

const TIMEOUT: Duration = Duration::from_secs(5);

fn prepare_err(config: Value) -> ConfigError {
    WebPush.prepare(config, &ctx(false)).unwrap_err()
}

#[test]
fn prepare_names_the_wrong_field() {
    let field = |config: Value| prepare_err(config).field;
    let ok = "mailto:ops@example.com";
    assert_eq!(field(json!({})), "subject");
    assert_eq!(field(json!({"subject": "ops@example.com"})), "subject");
    assert_eq!(field(json!({"subject": "mailto:"})), "subject");
    assert_eq!(field(json!({"subject": "mailto:ops example.com"})), "subject");
    assert_eq!(field(json!({"subject": "http://example.com"})), "subject");
    assert_eq!(field(json!({"subject": "https://example.com/\"x"})), "subject");
    assert_eq!(field(json!({"subject": 5})), "subject");
    assert_eq!(field(json!({"subject": ok, "extra": 1})), "extra");
    assert_eq!(field(json!({"subject": ok, "vapid_private_key": "short"})), "vapid_private_key");
    let other = VapidKey::generate();
    let mine = VapidKey::generate();
    let mismatch =
        json!({"subject": ok, "vapid_private_key": mine.private_b64(), "vapid_public_key": other.public_b64()});
    let err = prepare_err(mismatch);
    assert_eq!(err.field, "vapid_public_key");
    assert!(err.message.contains("does not match"), "{}", err.message);
    assert!(!err.message.contains(&mine.private_b64()), "errors never carry the private key");
    assert_eq!(field(json!({"subject": ok, "vapid_public_key": other.public_b64()})), "vapid_public_key");
    assert_eq!(field(json!({"subject": ok, "ttl": MAX_TTL + 1})), "ttl");
    assert_eq!(field(json!({"subject": ok, "ttl": -1})), "ttl");
    assert_eq!(field(json!({"subject": ok, "ttl": "1d"})), "ttl");
    assert_eq!(field(json!({"subject": ok, "to": [""]})), "to.0");
    assert_eq!(field(json!({"subject": ok, "to": ["alice", "b\nob"]})), "to.1");
    assert_eq!(field(json!({"subject": ok, "to": ["x".repeat(201)]})), "to.0");
    assert_eq!(field(json!({"subject": ok, "to": "alice"})), "to");
    let many: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
    assert_eq!(field(json!({"subject": ok, "to": many})), "to");
}

#[test]
fn prepare_generates_or_keeps_the_key_pair() {
    let prepared = WebPush
        .prepare(json!({"subject": " https://ops.example.com/contact ", "to": ["alice", "bob", "alice"]}), &ctx(false))
        .unwrap();
    assert_eq!(prepared["subject"], "https://ops.example.com/contact");
    assert_eq!(prepared["to"], json!(["alice", "bob"]));
    let key = VapidKey::from_private(prepared["vapid_private_key"].as_str().unwrap()).unwrap();
    assert_eq!(prepared["vapid_public_key"], key.public_b64());
    assert_eq!(crypto::decode_b64url(prepared["vapid_public_key"].as_str().unwrap()).unwrap().len(), 65);
    // Preparing again (an update that keeps the key) changes nothing.
    assert_eq!(WebPush.prepare(prepared.clone(), &ctx(false)).unwrap(), prepared);
    // A given private key is kept and its public key derived; a padded public key matches too.
    let given = VapidKey::generate();
    let config = json!({"subject": "mailto:a@b.example", "vapid_private_key": given.private_b64(), "ttl": 60,
                        "vapid_public_key": format!("{}=", given.public_b64())});
    let prepared = WebPush.prepare(config, &ctx(false)).unwrap();
    assert_eq!(prepared["vapid_private_key"], given.private_b64());
    assert_eq!(prepared["vapid_public_key"], given.public_b64());
    assert_eq!(prepared["ttl"], 60);
    assert!(prepared.get("to").is_none());
    assert!(WebPush.build(&prepared, &ctx(false)).is_ok());
    let err = WebPush.build(&json!({"subject": "mailto:a@b.example"}), &ctx(false)).err().unwrap();
    assert_eq!(err.field, "vapid_private_key");
}

#[test]
fn schema_secrets_and_recipients() {
    let schema = WebPush.schema();
    assert_eq!(schema["properties"]["vapid_private_key"]["secret"], true);
    assert!(schema["properties"]["vapid_public_key"].get("secret").is_none());
    assert!(schema["properties"].as_object().unwrap().values().all(|p| p["description"].is_string()));
    assert_eq!(WebPush.secret_fields(), ["vapid_private_key"]);
    assert_eq!(WebPush.kind(), "web_push");
    assert!(WebPush.check_recipient("user-42").is_ok());
    assert!(WebPush.check_recipient("").is_err());
    assert!(WebPush.check_recipient("a\u{7}").is_err());
    assert!(WebPush.check_recipient(&"é".repeat(200)).is_ok());
    assert!(WebPush.check_recipient(&"é".repeat(201)).is_err());
    let config = json!({"to": ["a", "b"]});
    assert_eq!(recipients(&config, None), ["a", "b"]);
    assert_eq!(recipients(&config, Some("c")), ["c"]);
    assert!(recipients(&json!({}), None).is_empty());
}

#[test]
fn headers_by_severity_and_delivery() {
    assert_eq!(topic("dlv_0190c6b6f3a87c2a9e1f0b1c2d3e4f50").as_deref(), Some("0190c6b6f3a87c2a9e1f0b1c2d3e4f50"));
    assert_eq!(topic("dlv_").as_deref(), None);
    assert_eq!(urgency(Severity::Info), "normal");
    assert_eq!(urgency(Severity::Success), "normal");
    assert_eq!(urgency(Severity::Warning), "normal");
    assert_eq!(urgency(Severity::Error), "high");
    assert_eq!(urgency(Severity::Critical), "high");
    assert_eq!(default_ttl(Severity::Info), 86_400);
    assert_eq!(default_ttl(Severity::Warning), 259_200);
    assert_eq!(default_ttl(Severity::Critical), 604_800);
    assert!(default_ttl(Severity::Critical) <= MAX_TTL);
}

/// A browser: its keys and the subscription it would hand to Herald.
struct Browser {
    secret: SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        Browser { secret: crypto::random_secret_key(), auth: rand::random() }
    }

    fn subscription(&self, endpoint: &str) -> PushSubscription {
        PushSubscription {
            endpoint: endpoint.to_owned(),
            p256dh: URL_SAFE_NO_PAD.encode(crypto::uncompressed(&self.secret.public_key())),
            auth: URL_SAFE_NO_PAD.encode(self.auth),
        }
    }

    fn open(&self, seen: &Seen) -> Value {
        serde_json::from_slice(&crypto::decrypt(&seen.body, &self.secret, &self.auth).unwrap()).unwrap()
    }
}

fn target(ttl: Option<u32>) -> (Arc<dyn Target>, String) {
    let ctx = ctx(true);
    let mut config = json!({"subject": "mailto:ops@example.com", "to": ["alice"]});
    if let Some(ttl) = ttl {
        config["ttl"] = json!(ttl);
    }
    let prepared = WebPush.prepare(config, &ctx).unwrap();
    let public = prepared["vapid_public_key"].as_str().unwrap().to_owned();
    (WebPush.build(&prepared, &ctx).unwrap(), public)
}

#[tokio::test]
async fn sends_an_encrypted_signed_push_to_every_subscription() {
    let service = StandIn::start(Answer::new(201, "")).await;
    let (one, two) = (Browser::new(), Browser::new());
    let subs = [
        one.subscription(&format!("{}/push/v1/token-one", service.base())),
        two.subscription(&format!("{}/push/v1/token-two", service.base())),
    ];
    let (target, public) = target(None);
    let sample = Sample::new("disk.full", Severity::Critical, json!({"title": "Disk full", "message": "/ at 97%"}));
    let message = Message { push: &subs, ..sample.message() };
    let before = chrono::Utc::now().timestamp();
    let outcome = target.send(&message, TIMEOUT).await;
    let Outcome::Delivered { status_code: Some(201), detail: Some(detail) } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(detail, &format!("{0}: accepted (HTTP 201)\n{0}: accepted (HTTP 201)", service.base()));
    assert!(!detail.contains("token-"), "endpoints are capabilities: only their origin is shown");

    let mut seen = service.seen();
    seen.sort_by_key(|s| s.uri.to_string());
    assert_eq!(seen.len(), 2);
    for (browser, seen, path) in [(&one, &seen[0], "/push/v1/token-one"), (&two, &seen[1], "/push/v1/token-two")] {
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.uri, path);
        assert_eq!(seen.header("content-encoding"), Some("aes128gcm"));
        assert_eq!(seen.header("content-type"), Some("application/octet-stream"));
        assert_eq!(seen.header("ttl"), Some("604800"));
        assert_eq!(seen.header("urgency"), Some("high"));
        assert_eq!(seen.header("topic"), Some("0190c6b6f3a87c2a9e1f0b1c2d3e4f50"));
        let authorization = seen.header("authorization").unwrap();
        let (token, k) = authorization.strip_prefix("vapid t=").unwrap().split_once(", k=").unwrap();
        assert_eq!(k, public);
        let claims = vapid::verify(token, k).unwrap();
        assert_eq!(claims.aud, service.base());
        assert_eq!(claims.sub, "mailto:ops@example.com");
        assert!(claims.exp > before && claims.exp <= chrono::Utc::now().timestamp() + 24 * 3600);
        let payload = browser.open(seen);
        assert_eq!(payload["title"], "Disk full");
        assert_eq!(payload["body"], "/ at 97%");
        assert_eq!(payload["severity"], "critical");
        assert_eq!(payload["url"], "https://herald.example.com/v1/events/evt_1");
        assert_eq!(payload["delivery_id"], message.delivery_id);
    }
    assert!(sample.report.gone_subscriptions().is_empty());
}

#[tokio::test]
async fn ttl_from_config_and_urgency_for_info() {
    let service = StandIn::start(Answer::new(201, "")).await;
    let browser = Browser::new();
    let subs = [browser.subscription(&format!("{}/p", service.base()))];
    let (target, _) = target(Some(0));
    let sample = Sample::new("user.signup", Severity::Info, json!({}));
    let message = Message { push: &subs, ..sample.message() };
    assert_eq!(target.send(&message, TIMEOUT).await.label(), "sent");
    let seen = service.one();
    assert_eq!(seen.header("ttl"), Some("0"));
    assert_eq!(seen.header("urgency"), Some("normal"));
}

/// Sends to one subscription answered with `answer`; returns the outcome
/// and the endpoints reported gone.
async fn one_answer(answer: Answer) -> (Outcome, Vec<String>) {
    let service = StandIn::start(answer).await;
    let subs = [Browser::new().subscription(&format!("{}/wpush/v2/secret-token", service.base()))];
    let (target, _) = target(None);
    let sample = Sample::new("disk.full", Severity::Warning, json!({}));
    let message = Message { push: &subs, ..sample.message() };
    let outcome = target.send(&message, TIMEOUT).await;
    assert_eq!(service.seen().len(), 1);
    (outcome, sample.report.gone_subscriptions())
}

#[tokio::test]
async fn push_service_answers_are_classified() {
    // Mozilla autopush, on an expired subscription.
    let gone = json!({"code": 410, "errno": 106, "error": "Gone", "message": "Request did not validate subscription has expired",
                      "more_info": "http://autopush.readthedocs.io/en/latest/http.html#error-codes"});
    let (outcome, removed) = one_answer(Answer::json(410, &gone)).await;
    let Outcome::Failed { status_code: Some(410), error, detail: Some(detail) } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(error.starts_with("HTTP 410 Gone: Request did not validate subscription has expired"), "{error}");
    assert!(error.contains("removed"), "{error}");
    assert!(!detail.contains("secret-token") && !error.contains("secret-token"));
    assert_eq!(removed.len(), 1);
    assert!(removed[0].ends_with("/wpush/v2/secret-token"));

    let (outcome, removed) = one_answer(Answer::new(404, "")).await;
    assert_eq!((outcome.label(), removed.len()), ("failed", 1));

    // Rate limited, with the service's wait.
    let (outcome, removed) = one_answer(Answer::new(429, "Too many requests").header("retry-after", "30")).await;
    let Outcome::Retry { status_code: Some(429), after, error, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(*after, Some(Duration::from_secs(30)));
    assert_eq!(error, "HTTP 429 Too Many Requests: Too many requests");
    assert!(removed.is_empty());
    let (outcome, _) = one_answer(Answer::new(503, "")).await;
    assert_eq!(outcome.label(), "retry");

    // FCM's plain-text answer to a VAPID key that is not the subscription's.
    let fcm = "the key in the authorization header does not correspond to the sender ID used to subscribe this user. Please ensure you are using the correct sender ID and server Key from the Firebase console.\n";
    let (outcome, removed) = one_answer(Answer::new(403, fcm)).await;
    let Outcome::Failed { status_code: Some(403), error, .. } = &outcome else { panic!("{outcome:?}") };
    assert!(
        error.starts_with("HTTP 403 Forbidden: the key in the authorization header does not correspond"),
        "{error}"
    );
    assert!(error.contains("VAPID"), "{error}");
    assert!(removed.is_empty());
    // Apple's JSON reason.
    let (outcome, _) = one_answer(Answer::json(400, &json!({"reason": "BadJwtToken"}))).await;
    assert_eq!(outcome.error(), Some("HTTP 400 Bad Request: BadJwtToken"));
    let (outcome, _) = one_answer(Answer::new(413, "")).await;
    assert!(outcome.error().unwrap().contains("larger than the push service accepts"));
    // A redirect is not followed.
    let (outcome, _) = one_answer(Answer::new(307, "").header("location", "http://127.0.0.1:9/elsewhere")).await;
    assert_eq!(outcome.label(), "failed");
}

#[tokio::test]
async fn one_accepting_service_makes_the_delivery_sent() {
    let (ok, gone, busy) = (
        StandIn::start(Answer::new(201, "")).await,
        StandIn::start(Answer::new(410, "")).await,
        StandIn::start(Answer::new(503, "").header("retry-after", "5")).await,
    );
    let (a, b, c) = (Browser::new(), Browser::new(), Browser::new());
    let gone_endpoint = format!("{}/gone", gone.base());
    let (target, _) = target(None);
    let sample = Sample::new("disk.full", Severity::Error, json!({}));

    let subs = [
        a.subscription(&format!("{}/ok", ok.base())),
        b.subscription(&gone_endpoint),
        c.subscription(&format!("{}/busy", busy.base())),
    ];
    let outcome = target.send(&Message { push: &subs, ..sample.message() }, TIMEOUT).await;
    let Outcome::Delivered { status_code: Some(201), detail: Some(detail) } = &outcome else { panic!("{outcome:?}") };
    assert!(detail.contains(&format!("{}: HTTP 410 Gone", gone.base())), "{detail}");
    assert!(detail.contains(&format!("{}: HTTP 503 Service Unavailable", busy.base())), "{detail}");
    assert_eq!(sample.report.gone_subscriptions(), std::slice::from_ref(&gone_endpoint));

    // None accepted, one may later: retry, after the longest wait asked.
    let sample = Sample::new("disk.full", Severity::Error, json!({}));
    let subs = [b.subscription(&gone_endpoint), c.subscription(&format!("{}/busy", busy.base()))];
    let outcome = target.send(&Message { push: &subs, ..sample.message() }, TIMEOUT).await;
    let Outcome::Retry { status_code: Some(503), after: Some(after), error, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(*after, Duration::from_secs(5));
    assert!(error.starts_with("no push service accepted the message (2 subscriptions)"), "{error}");
    assert!(!error.contains("/gone") && !error.contains("/busy"), "{error}");
    assert_eq!(sample.report.gone_subscriptions(), [gone_endpoint]);
}

#[tokio::test]
async fn without_subscriptions_or_with_bad_ones_it_fails() {
    let (target, _) = target(None);
    let sample = Sample::new("disk.full", Severity::Info, json!({}));
    let outcome = target.send(&sample.message(), TIMEOUT).await;
    assert_eq!(outcome.error(), Some("no push subscriptions for recipient `alice`"));
    let outcome = target.send(&Message { to: Some("bob"), ..sample.message() }, TIMEOUT).await;
    assert_eq!(outcome.error(), Some("no push subscriptions for recipient `bob`"));

    // Keys that are not a P-256 point fail that subscription without sending.
    let service = StandIn::start(Answer::new(201, "")).await;
    let mut bad = Browser::new().subscription(&format!("{}/p", service.base()));
    bad.p256dh = URL_SAFE_NO_PAD.encode([4u8; 65]);
    let subs = [bad];
    let outcome = target.send(&Message { push: &subs, ..sample.message() }, TIMEOUT).await;
    assert_eq!(outcome.label(), "failed");
    assert!(outcome.error().unwrap().starts_with("subscription keys:"), "{outcome:?}");
    assert!(service.seen().is_empty());
}

#[tokio::test]
async fn endpoints_obey_the_address_policy() {
    let service = StandIn::start(Answer::new(201, "")).await;
    let strict = ctx(false);
    let prepared = WebPush.prepare(json!({"subject": "mailto:ops@example.com"}), &strict).unwrap();
    let target = WebPush.build(&prepared, &strict).unwrap();
    let sample = Sample::new("disk.full", Severity::Info, json!({}));
    for endpoint in
        [format!("{}/p", service.base()), "http://169.254.169.254/latest".into(), "http://[::ffff:127.0.0.1]/p".into()]
    {
        let subs = [Browser::new().subscription(&endpoint)];
        let outcome = target.send(&Message { push: &subs, ..sample.message() }, TIMEOUT).await;
        assert_eq!(outcome.label(), "failed", "{endpoint}: {outcome:?}");
    }
    assert!(service.seen().is_empty());
}

#[test]
fn subscriptions_are_checked_field_by_field() {
    let policy = AddressPolicy { allow_private: false };
    let good = Browser::new().subscription("https://updates.push.services.mozilla.com/wpush/v2/gAAAA");
    assert_eq!(check_subscription(&good, &policy), Ok(()));
    let field = |sub: PushSubscription| check_subscription(&sub, &policy).unwrap_err().0;
    assert_eq!(field(PushSubscription { endpoint: "not a url".into(), ..good.clone() }), "endpoint");
    assert_eq!(field(PushSubscription { endpoint: "ftp://push.example.com/x".into(), ..good.clone() }), "endpoint");
    assert_eq!(field(PushSubscription { endpoint: "http://10.0.0.1/x".into(), ..good.clone() }), "endpoint");
    assert_eq!(field(PushSubscription { endpoint: "http://169.254.169.254/x".into(), ..good.clone() }), "endpoint");
    assert_eq!(field(PushSubscription { p256dh: good.auth.clone(), ..good.clone() }), "keys.p256dh");
    assert_eq!(field(PushSubscription { p256dh: "***".into(), ..good.clone() }), "keys.p256dh");
    assert_eq!(field(PushSubscription { auth: good.p256dh.clone(), ..good.clone() }), "keys.auth");
}
