//! Integrations created from Apprise-style URLs: the URL becomes an ordinary
//! type + config (never stored, never echoed), and a bad URL is a 400 that
//! names the part at fault.

use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb},
    sink::Sink,
};

backend_test!(a_json_url_becomes_a_webhook_that_delivers, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    // The sink's http:// URL in Apprise's spelling.
    let url = format!("{}/hook?+X-Env=staging&-source=herald&cto=5", sink.base().replacen("http", "json", 1));
    let (s, created) = app.post("/v1/integrations", json!({"name": "from apprise", "url": url})).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["type"], json!("webhook"));
    assert_eq!(created["enabled"], json!(true));
    assert_eq!(created["config"]["url"], json!(format!("http://{}/hook?source=herald", sink.addr)));
    assert_eq!(created["config"]["headers"], json!({"X-Env": "staging"}));
    // The generated signing secret is shown this once, as for any webhook.
    let secret = created["config"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert!(created.get("url").is_none(), "the URL is not part of the answer: {created}");

    let id = created["id"].as_str().unwrap().to_owned();
    let (s, stored) = app.get(&format!("/v1/integrations/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(stored["config"]["secret"], json!("********"));
    assert!(stored.get("url").is_none() && !stored.to_string().contains("json://"), "{stored}");

    app.rule(&["deploy.*"], None, &[&id]).await;
    let delivery = app.event_with_delivery("deploy.finished", json!({"service": "api"})).await;
    app.wait_for_delivery(&delivery, "sent").await;
    let got = &sink.received()[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri.to_string(), "/hook?source=herald");
    assert_eq!(got.header("x-env"), "staging");
    assert_eq!(got.header("webhook-id"), delivery);
    assert_eq!(got.json()["type"], json!("deploy.finished"));
    assert_eq!(got.json()["data"], json!({"service": "api"}));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_is_refused_naming_the_part_and_never_echoed() {
    let backend = Backend::Sqlite;
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let post = |body: Value| app.post("/v1/integrations", body);

    // 400 on `url`, the part named, the secret parts of the URL nowhere.
    let cases = [
        ("tgram://123456789:s3cr3tBOT/12.5", "path segment 1 (chat id): must be a number or @channelname"),
        ("json://user:s3cr3tPASS@127.0.0.1/hook", "user: Basic auth"),
        ("jsons://[::1]:99999/s3cr3tPATH", "port: must be a number from 1 to 65535"),
        ("json://127.0.0.1/hook?+X-Key=s3cr3tHDR&bogus=1", "query parameter `bogus`: is not supported by json://"),
        ("foo://s3cr3t@example.com", "scheme: unknown scheme `foo`"),
        ("mailtos://u:s3cr3tMAIL@example.com?to=nobody", "query parameter `to`: must be an email address"),
        // The config the URL makes is still validated by its channel.
        ("json://169.254.169.254/latest/s3cr3tMETA", "the webhook config made from the URL is refused at `url`"),
    ];
    for (url, detail) in cases {
        let (s, problem) = post(json!({"name": "x", "url": url})).await;
        assert_eq!(s, 400, "{url} → {problem}");
        assert_eq!(problem["field"], json!("url"), "{url} → {problem}");
        let text = problem["detail"].as_str().unwrap();
        assert!(text.starts_with(detail), "{url} → {text}");
        assert!(!problem.to_string().contains("s3cr3t"), "{url} → {problem}");
    }

    // `url` with `type` or `config` is ambiguous; neither at all names `type`.
    let (s, problem) = post(json!({"name": "x", "url": "json://127.0.0.1/h", "type": "webhook"})).await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("url")), "{problem}");
    let (s, problem) = post(json!({"name": "x", "url": "json://127.0.0.1/h", "config": {}})).await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("url")), "{problem}");
    let (s, problem) = post(json!({"name": "x"})).await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("type")), "{problem}");
    let (s, problem) = post(json!({"name": "x", "url": 5})).await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("url")), "{problem}");

    // Another channel: created with its token masked, never echoed.
    let (s, answer) = post(json!({"name": "tg", "url": "tgram://123456789:s3cr3tTG/-1001234567890"})).await;
    assert_eq!(s, 201, "{answer}");
    assert_eq!(answer["type"], json!("telegram"));
    assert_eq!(answer["config"]["bot_token"], json!("********"), "{answer}");
    assert!(!answer.to_string().contains("s3cr3t"), "{answer}");
    let created = 1;

    let (_, list) = app.get("/v1/integrations").await;
    assert_eq!(list["data"].as_array().unwrap().len(), created, "nothing refused was stored: {list}");
    assert!(!list.to_string().contains("s3cr3t"));
    let log = app.log.lock().unwrap().clone();
    assert!(!log.contains("s3cr3t"), "a secret part of a URL was logged:\n{log}");
}
