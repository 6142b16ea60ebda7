//! What every channel shares: the catalogue at `GET /v1/channels`, and the
//! link to the event that messages for people carry when
//! `HERALD_PUBLIC_URL` is set.

use serde_json::{Value, json};

use crate::{
    helpers::{App, Backend, TempDir, TestDb},
    sink::Sink,
};

/// Every integration type, with its secret fields: exactly these are listed.
const TYPES: [(&str, &[&str]); 15] = [
    ("discord", &["webhook_url"]),
    ("email", &["password"]),
    ("google_chat", &["webhook_url"]),
    ("gotify", &["app_token"]),
    ("jira", &["api_token"]),
    ("matrix", &["access_token"]),
    ("mattermost", &["webhook_url"]),
    ("ntfy", &["password", "token"]),
    ("pushover", &["app_token", "user_key"]),
    ("slack", &["webhook_url"]),
    ("teams", &["webhook_url"]),
    ("telegram", &["bot_token"]),
    ("twilio_sms", &["auth_token"]),
    ("web_push", &["vapid_private_key"]),
    ("webhook", &["secret"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_lists_every_type_with_its_schema_and_secrets() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let (status, body) = app.get("/v1/channels").await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<(String, Vec<String>)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut secrets: Vec<String> =
                c["secret_fields"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
            secrets.sort();
            (c["type"].as_str().unwrap().to_owned(), secrets)
        })
        .collect();
    let expected: Vec<(String, Vec<String>)> =
        TYPES.iter().map(|(t, s)| (t.to_string(), s.iter().map(|s| s.to_string()).collect())).collect();
    assert_eq!(listed, expected);
    for channel in body["data"].as_array().unwrap() {
        let schema = &channel["config_schema"];
        assert_eq!(schema["type"], "object", "{channel}");
        for secret in channel["secret_fields"].as_array().unwrap() {
            let field = secret.as_str().unwrap();
            assert_eq!(schema["properties"][field]["secret"], json!(true), "{}: {field}", channel["type"]);
        }
    }
}

/// Creates a Discord integration posting to `sink` and a rule sending `t.*` to it.
async fn discord_to(app: &App, sink: &Sink) {
    let int = app.integration("discord", json!({"webhook_url": format!("{}/api/webhooks/1/tok", sink.base())})).await;
    app.rule(&["t.*"], None, &[&int]).await;
}

/// The embed Discord got for an event with `data`.
async fn embed_for(app: &App, sink: &Sink, data: Value) -> Value {
    let delivery = app.event_with_delivery("t.happened", data).await;
    app.wait_for_delivery(&delivery, "sent").await;
    sink.received().last().unwrap().json()["embeds"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_link_to_the_event_when_a_public_url_is_set() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app =
        App::spawn_with(Backend::Sqlite, &db, &dir, &[("HERALD_PUBLIC_URL", "https://herald.example.com/")]).await;
    let sink = Sink::start().await;
    discord_to(&app, &sink).await;

    let embed = embed_for(&app, &sink, json!({"title": "Disk full"})).await;
    let event = app.get("/v1/events").await.1["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(embed["url"], json!(format!("https://herald.example.com/v1/events/{event}")), "{embed}");
    assert_eq!(embed["title"], json!("Disk full"));
    // The event's own link is the better one and wins.
    let embed = embed_for(&app, &sink, json!({"title": "Build 7", "url": "https://ci.example.com/7"})).await;
    assert_eq!(embed["url"], json!("https://ci.example.com/7"), "{embed}");

    // Without a public URL there is no link to Herald at all.
    let (db2, dir2) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let plain = App::spawn(Backend::Sqlite, &db2, &dir2).await;
    let sink2 = Sink::start().await;
    discord_to(&plain, &sink2).await;
    let embed = embed_for(&plain, &sink2, json!({"title": "Disk full"})).await;
    assert!(embed.get("url").is_none(), "{embed}");
    assert_eq!(embed["title"], json!("Disk full"));
}
