//! The live inbox: a WebSocket and an SSE client each get the unread count
//! on connect, then each new notification (within 2 s of the event) and the
//! new count; a reconnecting client catches up from `?since=` or
//! `Last-Event-ID`; a burst bigger than a connection's queue still arrives
//! once each; on PostgreSQL, a notification reaches a client on another node.

use std::{collections::BTreeSet, time::Duration};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest},
};

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb, postgres_available},
    inbox::{item_ids, notify, token},
};

/// How long a notification may take from the event's 202 to the client.
const LIVE_WITHIN: Duration = Duration::from_secs(2);

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(app: &App, query: &str, bearer: Option<&str>) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/v1/inbox/ws{query}", app.base.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

/// The next JSON message, within `limit` (pings and pongs skipped).
async fn ws_next(ws: &mut Ws, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no WebSocket message within {limit:?}"))
            .expect("the connection is open")
            .expect("a WebSocket message");
        match msg {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected WebSocket message {other:?}"),
        }
    }
}

fn count(n: i64) -> Value {
    json!({"type": "unread_count", "data": {"count": n}})
}

/// An SSE client over a streaming reqwest response.
struct Sse {
    res: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(app: &App, query: &str, bearer: Option<&str>, last_event_id: Option<&str>) -> Sse {
        let mut req = app.client.get(app.url(&format!("/v1/inbox/stream{query}")));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Sse { res, buf: String::new() }
    }

    /// The next event with data, as (id, JSON), within `limit`.
    async fn next(&mut self, limit: Duration) -> (Option<String>, Value) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut data) = (None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return (id, serde_json::from_str(&data).unwrap());
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .unwrap_or_else(|_| panic!("no SSE event within {limit:?}"))
                .unwrap()
                .expect("the stream is open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

backend_test!(websocket_pushes_notifications_and_counts, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let ada = token(&app, "ada").await;
    notify(&app, "ada", "before").await;
    let first = item_ids(&app, &ada).await[0].clone();

    let mut ws = ws_connect(&app, &format!("?token={ada}"), None).await.unwrap();
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(1), "the unread count comes first");

    notify(&app, "bob", "not for ada").await;
    notify(&app, "ada", "live").await;
    let note = ws_next(&mut ws, LIVE_WITHIN).await;
    assert_eq!(note["type"], json!("notification"), "{note}");
    assert_eq!((&note["data"]["title"], &note["data"]["read"]), (&json!("live"), &json!(false)), "{note}");
    assert_eq!(note["data"]["data"], json!({"title": "live"}));
    let live_id = note["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(2));

    // Changes made through the API reach the connection as a new count.
    let (status, _) = app.request(Method::POST, &format!("/v1/inbox/{first}/read"), &ada, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(1));
    app.request(Method::POST, "/v1/inbox/read-all", &ada, None).await;
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(0));

    // A bearer header works too; a reconnect with `since` gets what came after.
    let mut again = ws_connect(&app, &format!("?since={first}"), Some(&ada)).await.unwrap();
    assert_eq!(ws_next(&mut again, LIVE_WITHIN).await, count(0));
    let caught = ws_next(&mut again, LIVE_WITHIN).await;
    assert_eq!((&caught["type"], &caught["data"]["id"]), (&json!("notification"), &json!(live_id)), "{caught}");
    assert_eq!(caught["data"]["read"], json!(true));
    notify(&app, "ada", "after").await;
    for ws in [&mut ws, &mut again] {
        assert_eq!(ws_next(ws, LIVE_WITHIN).await["data"]["title"], json!("after"));
        assert_eq!(ws_next(ws, LIVE_WITHIN).await, count(1));
    }
    ws.close(None).await.unwrap();

    // No token, a bad token, a bad `since`: refused before the upgrade.
    for query in ["".to_owned(), "?token=garbage".to_owned(), format!("?token={ada}&since=nope")] {
        match ws_connect(&app, &query, None).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert!(res.status().is_client_error()),
            other => panic!("{query}: expected an HTTP refusal, got {:?}", other.map(|_| ())),
        }
    }
    let (status, body) = app.request(Method::GET, "/v1/inbox/ws", &ada, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a plain GET is not a WebSocket: {body}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("herald_live_connections"), "{metrics}");
    assert!(metrics.contains(r#"herald_live_messages_total{kind="notification"}"#), "{metrics}");
});

backend_test!(sse_streams_and_resumes_from_last_event_id, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let ada = token(&app, "ada").await;

    let mut sse = Sse::open(&app, "", Some(&ada), None).await;
    assert_eq!(sse.next(LIVE_WITHIN).await, (None, count(0)));
    notify(&app, "ada", "one").await;
    let (id, note) = sse.next(LIVE_WITHIN).await;
    assert_eq!((&note["type"], &note["data"]["title"]), (&json!("notification"), &json!("one")), "{note}");
    let one = id.expect("a notification event carries the item id");
    assert_eq!(note["data"]["id"], json!(one));
    assert_eq!(sse.next(LIVE_WITHIN).await.1, count(1));
    drop(sse);

    // Missed while disconnected: sent on reconnect, oldest first, after the count.
    notify(&app, "ada", "two").await;
    notify(&app, "ada", "three").await;
    let mut resumed = Sse::open(&app, "", Some(&ada), Some(&one)).await;
    assert_eq!(resumed.next(LIVE_WITHIN).await.1, count(3));
    let titles =
        [resumed.next(LIVE_WITHIN).await.1, resumed.next(LIVE_WITHIN).await.1].map(|n| n["data"]["title"].clone());
    assert_eq!(titles, [json!("two"), json!("three")]);

    // `?token=` and `?since=` (Last-Event-ID wins when both are there).
    let mut by_query = Sse::open(&app, &format!("?token={ada}&since={one}"), None, None).await;
    assert_eq!(by_query.next(LIVE_WITHIN).await.1, count(3));
    assert_eq!(by_query.next(LIVE_WITHIN).await.1["data"]["title"], json!("two"));
    let newest = item_ids(&app, &ada).await[0].clone();
    let mut both = Sse::open(&app, &format!("?token={ada}&since={one}"), None, Some(&newest)).await;
    assert_eq!(both.next(LIVE_WITHIN).await.1, count(3));
    notify(&app, "ada", "four").await;
    assert_eq!(both.next(LIVE_WITHIN).await.1["data"]["title"], json!("four"), "nothing before Last-Event-ID");

    let res = app.client.get(app.url("/v1/inbox/stream")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
});

backend_test!(a_burst_larger_than_a_queue_arrives_once_each, |backend: Backend| async move {
    const N: usize = 200;
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let ada = token(&app, "ada").await;
    let mut ws = ws_connect(&app, &format!("?token={ada}"), None).await.unwrap();
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(0));

    // One batch: one commit, so all N reach the hub at once.
    let events: Vec<Value> = (0..N)
        .map(|i| json!({"type": "task_due", "data": {"title": format!("t{i}")}, "recipients": ["ada"]}))
        .collect();
    let (status, body) = app.post("/v1/events/batch", json!({"events": events})).await;
    assert!(status.is_success(), "{body}");

    let mut seen = BTreeSet::new();
    let mut last_count = 0;
    while seen.len() < N || last_count < N as i64 {
        let msg = ws_next(&mut ws, Duration::from_secs(10)).await;
        match msg["type"].as_str().unwrap() {
            "notification" => {
                let id = msg["data"]["id"].as_str().unwrap().to_owned();
                assert!(seen.insert(id.clone()), "{id} arrived twice");
            }
            _ => last_count = msg["data"]["count"].as_i64().unwrap(),
        }
    }
    assert_eq!(seen.len(), N);
    assert_eq!(seen, item_ids(&app, &ada).await.into_iter().collect::<BTreeSet<_>>());
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("herald_live_lagged_total 1"), "the burst overflowed the queue once: {metrics}");
});

/// PostgreSQL: a client on node B hears an event posted to node A, and a
/// read made through node A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_reaches_a_client_on_another_node() {
    if !postgres_available() {
        eprintln!("skipped: HERALD_TEST_DATABASE_URL is not set");
        return;
    }
    use base64::Engine;
    let db = TestDb::new(Backend::Postgres).await;
    let dirs = (TempDir::new(), TempDir::new());
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let settings = [("HERALD_MASTER_KEY", key.as_str())];
    let a = App::spawn_with(Backend::Postgres, &db, &dirs.0, &settings).await;
    let b = App::spawn_with(Backend::Postgres, &db, &dirs.1, &settings).await;

    let ada = token(&a, "ada").await;
    let mut ws = ws_connect(&b, &format!("?token={ada}"), None).await.unwrap();
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(0));
    let mut sse = Sse::open(&b, "", Some(&ada), None).await;
    assert_eq!(sse.next(LIVE_WITHIN).await.1, count(0));

    notify(&a, "ada", "from a").await;
    let note = ws_next(&mut ws, LIVE_WITHIN).await;
    assert_eq!(note["data"]["title"], json!("from a"), "{note}");
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(1));
    assert_eq!(sse.next(LIVE_WITHIN).await.1["data"]["title"], json!("from a"));
    assert_eq!(sse.next(LIVE_WITHIN).await.1, count(1));

    let id = note["data"]["id"].as_str().unwrap();
    let (status, _) = a.request(Method::POST, &format!("/v1/inbox/{id}/read"), &ada, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(0));
    assert_eq!(sse.next(LIVE_WITHIN).await.1, count(0));

    // The listening connections are cut (a proxy's idle reaper, a network
    // blip): announcements sent meanwhile are lost, so once listening again
    // every connection catches up from the database and gets its count anew.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url.as_deref().unwrap()).await.unwrap();
    let listening = "FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%herald_inbox%'";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) {listening}")))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if n == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "both nodes listen: {n} do");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut: Vec<(bool,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT pg_terminate_backend(pid) {listening}")))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(cut.len(), 2, "each node listens on one connection");
    assert_eq!(ws_next(&mut ws, Duration::from_secs(10)).await, count(0), "a resync after the lost LISTEN");
    assert_eq!(sse.next(Duration::from_secs(10)).await.1, count(0));
    notify(&a, "ada", "after the cut").await;
    let mut titles = Vec::new();
    while titles.is_empty() {
        let message = ws_next(&mut ws, LIVE_WITHIN).await;
        if message["type"] == "notification" {
            titles.push(message["data"]["title"].clone());
        }
    }
    assert_eq!(titles, [json!("after the cut")], "listening again");
}

/// What a client sends: a ping is answered with its payload, a message of
/// its own is ignored (the connection stays and still gets notifications,
/// big ones too), a message over the 4 KiB limit ends the connection, and
/// a close is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_frames_are_answered_ignored_or_refused() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let ada = token(&app, "ada").await;
    let mut ws = ws_connect(&app, &format!("?token={ada}"), None).await.unwrap();
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(0));

    ws.send(Message::Ping(Bytes::from_static(b"are you there"))).await.unwrap();
    let pong = tokio::time::timeout(LIVE_WITHIN, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(pong, Message::Pong(Bytes::from_static(b"are you there")));
    ws.send(Message::Text("chatter ".repeat(400).into())).await.unwrap();
    notify(&app, "ada", "still here").await;
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await["data"]["title"], json!("still here"));
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(1));
    // A big notification (its data is the event's, up to the body limit) goes out whole.
    let big = "x".repeat(300_000);
    let (status, body) = app
        .post("/v1/events", json!({"type": "task_due", "data": {"title": "big", "blob": big}, "recipients": ["ada"]}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let note = ws_next(&mut ws, LIVE_WITHIN).await;
    assert_eq!(note["data"]["data"]["blob"].as_str().map(str::len), Some(300_000));
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(2));

    ws.send(Message::Binary(vec![7; 10_000].into())).await.unwrap();
    let end = tokio::time::timeout(LIVE_WITHIN, ws.next()).await.expect("the connection ends");
    assert!(matches!(end, None | Some(Err(_)) | Some(Ok(Message::Close(_)))), "{end:?}");

    let mut ws = ws_connect(&app, &format!("?token={ada}"), None).await.unwrap();
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(2));
    ws.close(None).await.unwrap();
    let answer = tokio::time::timeout(LIVE_WITHIN, ws.next()).await.expect("the close is answered");
    assert!(matches!(answer, None | Some(Ok(Message::Close(_)))), "{answer:?}");
}

/// Heartbeats: every WebSocket is pinged each `HERALD_LIVE_PING`; a client
/// that answers stays, one that stays silent for a whole interval is
/// disconnected (a vanished client does not hold memory forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_pinged_then_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn_with(Backend::Sqlite, &db, &dir, &[("HERALD_LIVE_PING", "1s")]).await;
    let ada = token(&app, "ada").await;

    // A client that reads (and so answers pings), on its own task.
    let mut ws = ws_connect(&app, &format!("?token={ada}"), None).await.unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            let _ = seen_tx.send(message);
        }
    });

    // One that never answers: the handshake by hand, then silence.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let upgrade = format!(
        "GET /v1/inbox/ws?token={ada} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    silent.write_all(upgrade.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut heard = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), silent.read_to_end(&mut heard))
        .await
        .expect("the server ends a silent connection")
        .expect("a clean end");
    assert!(heard.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&heard));
    assert!(heard.windows(2).any(|w| w == [0x89, 0x00]), "a ping was sent before giving up");
    assert!(started.elapsed() >= Duration::from_millis(900), "dropped after {:?}", started.elapsed());

    // The answering client was pinged too, and is still there.
    notify(&app, "ada", "awake").await;
    let deadline = tokio::time::Instant::now() + LIVE_WITHIN;
    let (mut pinged, mut woke) = (false, false);
    while !woke {
        match tokio::time::timeout_at(deadline, seen.recv()).await.expect("the notification arrives") {
            Some(Message::Ping(_)) => pinged = true,
            Some(Message::Text(text)) => woke |= text.contains("awake"),
            Some(_) => {}
            None => panic!("the answering client was disconnected"),
        }
    }
    assert!(pinged, "the answering client was pinged");
}

/// Open live connections do not hold up a graceful shutdown: SSE streams
/// end and WebSockets get a `1001 going away` close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_live_connections() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let mut app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let ada = token(&app, "ada").await;
    let mut ws = ws_connect(&app, &format!("?token={ada}"), None).await.unwrap();
    assert_eq!(ws_next(&mut ws, LIVE_WITHIN).await, count(0));
    let mut sse = Sse::open(&app, "", Some(&ada), None).await;
    assert_eq!(sse.next(LIVE_WITHIN).await.1, count(0));

    let started = std::time::Instant::now();
    let status = app.terminate().await;
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    let closed = tokio::time::timeout(LIVE_WITHIN, ws.next()).await.unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let end = tokio::time::timeout(LIVE_WITHIN, sse.res.chunk()).await.unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "the SSE stream ended: {end:?}");
}
