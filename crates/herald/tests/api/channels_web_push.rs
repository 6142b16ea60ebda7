//! The `web_push` channel end to end: subscriptions stored per recipient,
//! an encrypted, VAPID-signed push to a local stand-in for the push service,
//! decrypted here with the browser's keys (and by Python's `http_ece`), and
//! what 410 and 429 answers lead to.

use std::io::Write as _;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::{
    ecdsa::{Signature, VerifyingKey, signature::Verifier},
    elliptic_curve::sec1::ToSec1Point as _,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{ADMIN, App, Backend, TempDir, TestDb},
    sink::{Received, Reply, Sink},
};

/// A browser: the keys it subscribes with.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        let mut bytes = [0u8; 32];
        loop {
            rand::fill(&mut bytes);
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                return Browser { secret, auth: rand::random() };
            }
        }
    }

    /// What `PushSubscription.toJSON()` gives.
    fn subscription(&self, endpoint: &str) -> Value {
        let public = self.secret.public_key().to_sec1_point(false);
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {"p256dh": URL_SAFE_NO_PAD.encode(public.as_bytes()), "auth": URL_SAFE_NO_PAD.encode(self.auth)}
        })
    }

    /// Decrypts a push body as the browser would.
    fn open(&self, body: &[u8]) -> Value {
        let plaintext = herald_channels::web_push::crypto::decrypt(body, &self.secret, &self.auth).expect("decrypts");
        serde_json::from_slice(&plaintext).expect("the push message is JSON")
    }
}

/// Registers `subscription` for `recipient`; returns the answer.
async fn subscribe(app: &App, recipient: &str, subscription: &Value) -> (StatusCode, Value) {
    app.post(&format!("/v1/recipients/{recipient}/push-subscriptions"), subscription.clone()).await
}

/// Checks the `Authorization: vapid t=…, k=…` header with p256 alone and
/// returns the token's claims.
fn vapid_claims(received: &Received, public_key: &str) -> Value {
    let header = received.header("authorization");
    let (token, k) = header.strip_prefix("vapid t=").and_then(|r| r.split_once(", k=")).expect("vapid t=…, k=…");
    assert_eq!(k, public_key, "k is the integration's public key");
    let key = VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(k).unwrap()).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).expect("raw r || s");
    key.verify(signing_input.as_bytes(), &signature).expect("ES256 signature verifies");
    let (header, claims) = signing_input.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

/// Creates a web_push integration sending to `to`; returns (id, public key).
async fn integration(app: &App, to: &[&str]) -> (String, String) {
    let (status, body) = app
        .post(
            "/v1/integrations",
            json!({"name": "browsers", "type": "web_push", "config": {"subject": "mailto:ops@example.com", "to": to}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let public = body["config"]["vapid_public_key"].as_str().expect("the public key is readable").to_owned();
    assert_eq!(URL_SAFE_NO_PAD.decode(&public).unwrap().len(), 65);
    // The generated private key is shown this once.
    let private = body["config"]["vapid_private_key"].as_str().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(private).unwrap().len(), 32);
    (body["id"].as_str().unwrap().to_owned(), public)
}

/// Posts an event with a severity; returns its one delivery id.
async fn event(app: &App, severity: &str, data: Value) -> String {
    let (status, body) = app.post("/v1/events", json!({"type": "disk.full", "severity": severity, "data": data})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let deliveries = app.routed(body["id"].as_str().unwrap()).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries[0]["id"].as_str().unwrap().to_owned()
}

backend_test!(web_push_end_to_end, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let service = Sink::start().await;
    let (int, public) = integration(&app, &["alice"]).await;
    let (_, got) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(got["config"]["vapid_private_key"], "********");
    assert_eq!(got["config"]["vapid_public_key"], public.as_str());
    assert_eq!(got["config"]["subject"], "mailto:ops@example.com");

    // A subscription from alice's browser, stored by her id.
    let alice = Browser::new();
    let endpoint = format!("{}/wpush/v2/alice-capability-token", service.base());
    let (status, sub) = subscribe(&app, "alice", &alice.subscription(&endpoint)).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert!(sub["id"].as_str().unwrap().starts_with("psub_"));
    assert_eq!(sub["recipient_id"], "alice");
    assert_eq!(sub["endpoint"], endpoint.as_str());
    assert!(sub["created_at"].as_str().unwrap().ends_with('Z'));
    // The same endpoint again updates it in place.
    let (status, again) = subscribe(&app, "alice", &alice.subscription(&endpoint)).await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &sub["id"]));
    let (_, list) = app.get("/v1/recipients/alice/push-subscriptions").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");

    // An event through a rule reaches the push service.
    app.rule(&["disk.*"], None, &[&int]).await;
    service.script([Reply::status(201)]);
    let delivery =
        event(&app, "critical", json!({"title": "Disk full", "message": "/ is at 97%", "host": "db1"})).await;
    let done = app.wait_for_delivery(&delivery, "sent").await;
    assert_eq!(done["attempts"][0]["status_code"], 201);
    let received = service.received();
    assert_eq!(received.len(), 1);
    let push = &received[0];
    assert_eq!(push.method, "POST");
    assert_eq!(push.uri, "/wpush/v2/alice-capability-token");
    assert_eq!(push.header("content-encoding"), "aes128gcm");
    assert_eq!(push.header("content-type"), "application/octet-stream");
    assert_eq!(push.header("ttl"), "604800");
    assert_eq!(push.header("urgency"), "high");
    assert_eq!(push.header("topic"), delivery.strip_prefix("dlv_").unwrap());
    let claims = vapid_claims(push, &public);
    assert_eq!(claims["aud"], service.base().as_str(), "aud is the push service's origin");
    assert_eq!(claims["sub"], "mailto:ops@example.com");
    let exp = claims["exp"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp} is within 24 hours");
    // salt 16 | rs 4096 | idlen 65 | sender key | one record.
    assert_eq!(&push.body[16..21], &[0, 0, 16, 0, 65]);
    let payload = alice.open(&push.body);
    assert_eq!(payload["title"], "Disk full");
    assert_eq!(payload["body"], "/ is at 97%\n\nhost: db1");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["event_type"], "disk.full");
    assert_eq!(payload["delivery_id"], delivery.as_str());
    assert!(payload["event_id"].as_str().unwrap().starts_with("evt_"));
    assert!(payload["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(payload.get("url").is_none(), "no link without a public URL or an event url: {payload}");

    // A rate limit, then acceptance: retried, then sent.
    service.script([Reply::status(429).with_header("retry-after", "1"), Reply::status(201)]);
    let delivery = event(&app, "info", json!({"message": "second"})).await;
    let done = app.wait_for_delivery(&delivery, "sent").await;
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{done}");
    assert_eq!((&attempts[0]["outcome"], &attempts[0]["status_code"]), (&json!("retry"), &json!(429)));
    assert_eq!(attempts[1]["status_code"], 201);
    let retried = &service.received()[2];
    assert_eq!((retried.header("urgency"), retried.header("ttl")), ("normal".into(), "86400".into()));
    assert_eq!(alice.open(&retried.body)["body"], "second");

    // The push service says the subscription is gone: failed for good, and forgotten.
    service.script([Reply::status(410).with_body("push subscription has unsubscribed or expired.")]);
    let delivery = event(&app, "error", json!({"message": "third"})).await;
    let done = app.wait_for_delivery(&delivery, "failed").await;
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1, "a gone subscription is not retried: {done}");
    let error = done["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("HTTP 410 Gone: push subscription has unsubscribed or expired."), "{error}");
    let (_, list) = app.get("/v1/recipients/alice/push-subscriptions").await;
    assert_eq!(list["data"], json!([]), "the gone subscription is deleted");

    // Nobody subscribed: failed, saying for whom.
    let delivery = event(&app, "info", json!({})).await;
    let done = app.wait_for_delivery(&delivery, "failed").await;
    assert_eq!(done["attempts"][0]["error"], "no push subscriptions for recipient `alice`");
    assert_eq!(service.count(), 4);
    // A push endpoint is a capability: never in the server's log.
    assert!(!app.log.lock().unwrap().contains("alice-capability-token"));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_send_goes_to_a_recipients_browsers() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let service = Sink::start().await;
    let int = app.integration("web_push", json!({"subject": "https://ops.example.com/contact"})).await;
    let (_, got) = app.get(&format!("/v1/integrations/{int}")).await;
    let public = got["config"]["vapid_public_key"].as_str().unwrap().to_owned();
    let bob = Browser::new();
    let (status, sub) = subscribe(&app, "bob", &bob.subscription(&format!("{}/push/bob", service.base()))).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");

    service.script([Reply::status(201)]);
    let (status, answer) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "bob"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    let push = &service.received()[0];
    assert_eq!(push.uri, "/push/bob");
    vapid_claims(push, &public);
    let payload = bob.open(&push.body);
    assert_eq!(payload["event_type"], "herald.test");
    assert_eq!(payload["body"], "This is a test message from Herald.\n\nintegration: web_push");

    // Changing the config keeps the key pair the browsers subscribed with.
    let (status, patched) = app
        .request(Method::PATCH, &format!("/v1/integrations/{int}"), ADMIN, Some(&json!({"config": {"ttl": 120}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!((&patched["config"]["vapid_public_key"], &patched["config"]["ttl"]), (&json!(public), &json!(120)));
    // So does a PUT that leaves the private key out (it was never shown again).
    let config = json!({"subject": "mailto:ops@example.com", "vapid_public_key": public});
    let (status, put) = app
        .request(Method::PUT, &format!("/v1/integrations/{int}"), ADMIN, Some(&json!({"name": "p", "config": config})))
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["config"]["vapid_public_key"], json!(public), "{put}");
    let (status, answer) = app
        .request(
            Method::PATCH,
            &format!("/v1/integrations/{int}"),
            ADMIN,
            Some(&json!({"config": {"vapid_public_key": Browser::new().subscription("")["keys"]["p256dh"]}})),
        )
        .await;
    assert_eq!((status, &answer["field"]), (StatusCode::BAD_REQUEST, &json!("config.vapid_public_key")), "{answer}");

    // No `to` in the config and no recipient: nobody to send to.
    let (_, answer) = app.post(&format!("/v1/integrations/{int}/test"), json!({})).await;
    assert_eq!(answer["success"], false);
    assert!(answer["message"].as_str().unwrap().starts_with("no push subscriptions for no recipient"), "{answer}");
    let (status, answer) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "a\u{1}b"})).await;
    assert_eq!((status, &answer["field"]), (StatusCode::BAD_REQUEST, &json!("recipient")), "{answer}");

    // A 404 from the push service removes the subscription, as a 410 does.
    service.script([Reply::status(404)]);
    let (_, answer) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "bob"})).await;
    assert_eq!(answer["success"], false);
    assert!(answer["message"].as_str().unwrap().starts_with("HTTP 404 Not Found"), "{answer}");
    let (_, list) = app.get("/v1/recipients/bob/push-subscriptions").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_validated_listed_and_deleted() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let browser = Browser::new();
    let good = browser.subscription("https://updates.push.services.mozilla.com/wpush/v2/gAAAAABc");
    let field_of = |answer: &Value| answer["field"].as_str().unwrap_or_default().to_owned();
    let bad = |change: &dyn Fn(&mut Value)| {
        let mut sub = good.clone();
        change(&mut sub);
        sub
    };
    let cases: Vec<(Value, &str)> = vec![
        (bad(&|s| s["endpoint"] = json!("not a url")), "endpoint"),
        (bad(&|s| s["endpoint"] = json!("ftp://push.example.com/x")), "endpoint"),
        (bad(&|s| s["endpoint"] = json!("http://169.254.169.254/latest/meta-data")), "endpoint"),
        (bad(&|s| s["keys"]["p256dh"] = json!("BBBB")), "keys.p256dh"),
        (bad(&|s| s["keys"]["p256dh"] = s["keys"]["auth"].clone()), "keys.p256dh"),
        (bad(&|s| s["keys"]["auth"] = json!("c2hvcnQ")), "keys.auth"),
        (bad(&|s| s["keys"].as_object_mut().unwrap().clear()), "keys.p256dh"),
        (bad(&|s| s["keys"]["extra"] = json!(1)), "keys.extra"),
        (bad(&|s| s.as_object_mut().unwrap().remove("keys").map(|_| ()).unwrap()), "keys"),
        (bad(&|s| s["options"] = json!({})), "options"),
    ];
    for (sub, field) in cases {
        let (status, answer) = subscribe(&app, "carol", &sub).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sub}: {answer}");
        assert_eq!(field_of(&answer), field, "{sub}: {answer}");
    }
    let long = "r".repeat(201);
    for recipient in [long.as_str(), "a%0Ab"] {
        let (status, answer) = subscribe(&app, recipient, &good).await;
        assert_eq!((status, field_of(&answer).as_str()), (StatusCode::BAD_REQUEST, "recipient_id"), "{answer}");
    }

    // Stored per recipient; the same endpoint moves to whoever subscribes it last.
    let (status, first) = subscribe(&app, "carol", &good).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let other = Browser::new().subscription("https://fcm.googleapis.com/fcm/send/dK9x");
    let (_, second) = subscribe(&app, "carol", &other).await;
    let (_, list) = app.get("/v1/recipients/carol/push-subscriptions?limit=1").await;
    assert_eq!(list["data"][0]["id"], first["id"], "{list}");
    let (_, rest) = app
        .get(&format!("/v1/recipients/carol/push-subscriptions?cursor={}", list["next_cursor"].as_str().unwrap()))
        .await;
    assert_eq!(rest["data"][0]["id"], second["id"], "{rest}");
    let (status, moved) = subscribe(&app, "dave", &other).await;
    assert_eq!((status, &moved["id"], &moved["recipient_id"]), (StatusCode::OK, &second["id"], &json!("dave")));
    let (_, list) = app.get("/v1/recipients/carol/push-subscriptions").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Deleting: only through its own recipient, and once.
    let id = first["id"].as_str().unwrap();
    let path = |recipient: &str| format!("/v1/recipients/{recipient}/push-subscriptions/{id}");
    let (status, _) = app.request(Method::DELETE, &path("dave"), ADMIN, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.request(Method::DELETE, &path("carol"), ADMIN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.request(Method::DELETE, &path("carol"), ADMIN, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/recipients/carol/push-subscriptions").await;
    assert_eq!(list["data"], json!([]));

    // Another tenant sees none of them.
    let (status, _) = app.post("/v1/tenants", json!({"id": "other", "name": "Other"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let res = app
        .client
        .get(app.url("/v1/recipients/dave/push-subscriptions"))
        .bearer_auth(ADMIN)
        .header("Herald-Tenant", "other")
        .send()
        .await
        .unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["data"], json!([]));
}

/// Runs `script` with Python 3, `input` on stdin; `None` when Python or
/// `http_ece` is missing (a failure when `HERALD_TEST_REQUIRE_PYTHON=1`).
fn python(script: &str, input: &Value) -> Option<String> {
    let required = std::env::var("HERALD_TEST_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let available = std::process::Command::new("python3")
        .args(["-c", "import http_ece, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(!required, "HERALD_TEST_REQUIRE_PYTHON=1 but `python3 -c 'import http_ece'` fails");
        eprintln!("skipped: pip install http_ece");
        return None;
    }
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Decrypts with `http_ece` and verifies the VAPID token with `cryptography`:
/// neither shares code with Herald.
const PY_CHECK: &str = r#"
import base64, json, sys
import http_ece
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

args = json.load(sys.stdin)
key = ec.derive_private_key(int.from_bytes(b64(args["private_key"]), "big"), ec.SECP256R1())
plaintext = http_ece.decrypt(b64(args["body"]), private_key=key, auth_secret=b64(args["auth"]), version="aes128gcm")

token, k = args["authorization"][len("vapid t="):].split(", k=")
signing_input, signature = token.rsplit(".", 1)
signature = b64(signature)
public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64(k))
der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
public.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))
claims = json.loads(b64(signing_input.split(".")[1]))

print(json.dumps({"payload": json.loads(plaintext), "claims": claims, "k": k}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_http_ece_decrypts_what_herald_sends() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let service = Sink::start().await;
    let (int, public) = integration(&app, &["erin"]).await;
    let erin = Browser::new();
    let (status, _) = subscribe(&app, "erin", &erin.subscription(&format!("{}/push/erin", service.base()))).await;
    assert_eq!(status, StatusCode::CREATED);
    app.rule(&["disk.*"], None, &[&int]).await;
    service.script([Reply::status(201)]);
    let long = "é".repeat(3000);
    let delivery = event(&app, "warning", json!({"title": "Disk almost full", "message": long})).await;
    app.wait_for_delivery(&delivery, "sent").await;
    let push = &service.received()[0];
    assert!(push.body.len() <= 4096, "one record of at most 4096 bytes: {}", push.body.len());

    let input = json!({
        "private_key": URL_SAFE_NO_PAD.encode(erin.secret.to_bytes()),
        "auth": URL_SAFE_NO_PAD.encode(erin.auth),
        "body": URL_SAFE_NO_PAD.encode(&push.body),
        "authorization": push.header("authorization"),
    });
    let Some(out) = python(PY_CHECK, &input) else { return };
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["payload"], erin.open(&push.body), "http_ece and Herald read the same message");
    assert_eq!(out["payload"]["title"], "Disk almost full");
    assert_eq!(out["payload"]["severity"], "warning");
    let body = out["payload"]["body"].as_str().unwrap();
    assert!(body.ends_with('…') && body.starts_with("éé"), "the long body is cut, not split");
    assert_eq!(out["claims"]["aud"], service.base().as_str());
    assert_eq!(out["claims"]["sub"], "mailto:ops@example.com");
    assert_eq!(out["k"], public.as_str());
}

/// The key pair is the tenant's: every web_push integration signs with the
/// one its browsers subscribed with, and a send-scoped key can read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_pair_is_the_tenants_and_its_public_half_is_readable() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let (status, problem) = app.get("/v1/web-push/public-key").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("create a web_push integration"), "{problem}");

    let (first, public) = integration(&app, &["alice"]).await;
    let (status, second) = app
        .post(
            "/v1/integrations",
            json!({"name": "more", "type": "web_push", "config": {"subject": "https://example.com/contact"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["config"]["vapid_public_key"], json!(public), "the tenant's pair is reused");
    assert_eq!(second["config"]["vapid_private_key"], json!("********"), "and not shown again");

    let (status, key) = app.post("/v1/api-keys", json!({"name": "app backend", "scope": "send"})).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (status, answer) =
        app.request(Method::GET, "/v1/web-push/public-key", key["key"].as_str().unwrap(), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"public_key": public, "integration_id": first}));

    // Another tenant has its own pair.
    let (status, tenant) = app.post("/v1/tenants", json!({"id": "globex", "name": "Globex"})).await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    let (status, other) = app
        .client
        .post(app.url("/v1/integrations"))
        .bearer_auth(ADMIN)
        .header("herald-tenant", "globex")
        .json(&json!({"name": "b", "type": "web_push", "config": {"subject": "mailto:x@example.com"}}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::CREATED);
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["config"]["vapid_public_key"], json!(public));
}
