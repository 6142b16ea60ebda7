//! The email channel against a real SMTP conversation on 127.0.0.1: the
//! message as a mail client parses it, STARTTLS with a private CA and AUTH,
//! STARTTLS required, reply codes, a server that is down, test sends.

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb},
    smtp::{Options, SmtpServer},
};

/// A plain-text (`tls: none`) config for `server` with two fixed recipients.
fn plain_config(server: &SmtpServer) -> Value {
    json!({
        "host": "127.0.0.1", "port": server.port(), "tls": "none",
        "from_email": "alerts@example.com", "from_name": "Herald Alerts", "reply_to": "ops@example.com",
        "to": ["oncall@example.com", "team@example.org"]
    })
}

/// Posts an event with a severity; returns its one delivery id.
async fn post(app: &App, event_type: &str, severity: &str, data: Value) -> String {
    let (status, body) = app.post("/v1/events", json!({"type": event_type, "severity": severity, "data": data})).await;
    assert_eq!(status, 202, "{body}");
    let deliveries = app.routed(body["id"].as_str().unwrap()).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries[0]["id"].as_str().unwrap().to_owned()
}

fn attempts(delivery: &Value) -> Vec<Value> {
    delivery["attempts"].as_array().cloned().unwrap_or_default()
}

backend_test!(email_arrives_as_a_themed_multipart_mail, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let server = SmtpServer::start(Options::default()).await;
    let int = app.integration("email", plain_config(&server)).await;
    app.rule(&["disk.*"], None, &[&int]).await;

    let id = post(
        &app,
        "disk.full",
        "error",
        json!({
            "title": "Disk almost full on db1",
            "message": "The root volume is at 97%.\nClean up <old> logs soon.",
            "url": "https://grafana.example.com/d/disk?host=db1",
            "host": "db1", "used": "97%"
        }),
    )
    .await;
    let done = app.wait_for_delivery(&id, "sent").await;
    assert_eq!(done["attempts"][0]["status_code"], json!(250), "{done}");
    assert!(done["attempts"][0]["response"].as_str().unwrap().starts_with("250 2.0.0 OK: queued as Q1"), "{done}");

    let sent = server.delivered();
    assert_eq!(sent.len(), 1);
    let t = &sent[0];
    assert_eq!(t.mail_from, "alerts@example.com");
    assert_eq!(t.rcpt_to, vec!["oncall@example.com", "team@example.org"]);
    assert!(!t.tls && t.auth.is_none());

    let mail = MessageParser::default().parse(&t.data).expect("a parsable message");
    assert_eq!(mail.subject(), Some("Disk almost full on db1"));
    let from = mail.from().and_then(|f| f.first()).unwrap();
    assert_eq!((from.name(), from.address()), (Some("Herald Alerts"), Some("alerts@example.com")));
    assert_eq!(mail.reply_to().and_then(|r| r.first()).and_then(|r| r.address()), Some("ops@example.com"));
    let to: Vec<&str> = mail.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(to, vec!["oncall@example.com", "team@example.org"]);
    assert_eq!(
        mail.message_id(),
        Some(format!("{id}@example.com").as_str()),
        "Message-ID is <delivery id@from domain>"
    );
    assert!(mail.date().is_some());

    let root = mail.content_type().unwrap();
    assert_eq!((root.ctype(), root.subtype()), ("multipart", Some("alternative")));
    let parts: Vec<_> = mail.root_part().sub_parts().unwrap().iter().map(|p| mail.part(*p).unwrap()).collect();
    assert_eq!(parts.len(), 2);
    let kind = |i: usize| {
        let ct = parts[i].content_type().unwrap();
        format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
    };
    assert_eq!((kind(0), kind(1)), ("text/plain".into(), "text/html".into()));
    let text = parts[0].text_contents().unwrap().replace("\r\n", "\n");
    assert_eq!(
        text,
        "Disk almost full on db1\n\nThe root volume is at 97%.\nClean up <old> logs soon.\n\nhost: db1\nused: 97%\n\n\
         https://grafana.example.com/d/disk?host=db1"
    );
    let html = parts[1].text_contents().unwrap().replace("\r\n", "\n");
    assert!(html.contains("background-color:#C62828;"), "error severity is red");
    assert!(html.contains(">Error</td>"));
    assert!(html.contains(">Disk almost full on db1</h1>"));
    assert!(html.contains("The root volume is at 97%.<br>\nClean up &lt;old&gt; logs soon."));
    assert!(html.contains(">host</td>") && html.contains(">db1</td>") && html.contains(">97%</td>"));
    assert!(html.contains("<a href=\"https://grafana.example.com/d/disk?host=db1\""));
    assert!(html.contains("Sent by Herald &middot; disk.full &middot; "));

    // A 4yz to the final dot is retried; the retry carries the same Message-ID.
    server.script_data(&["451 4.3.0 Temporary local problem, try later"]);
    let id = post(&app, "disk.slow", "warning", json!({"title": "Disk slow"})).await;
    let done = app.wait_for_delivery(&id, "sent").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 2, "{done}");
    assert_eq!((&tries[0]["outcome"], &tries[0]["status_code"]), (&json!("retry"), &json!(451)));
    assert_eq!(tries[0]["error"], json!("DATA: 451 4.3.0 Temporary local problem, try later"));
    assert_eq!(tries[1]["outcome"], json!("sent"));
    let ids: Vec<String> = server.transactions()[1..]
        .iter()
        .map(|t| MessageParser::default().parse(&t.data).unwrap().message_id().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![format!("{id}@example.com"), format!("{id}@example.com")]);

    // A 5yz on one recipient refuses that recipient only.
    server.script_rcpt("team@example.org", &["550 5.1.1 <team@example.org>: mailbox unavailable"]);
    let id = post(&app, "disk.ok", "success", json!({"title": "Disk fine again"})).await;
    let done = app.wait_for_delivery(&id, "sent").await;
    let response = done["attempts"][0]["response"].as_str().unwrap();
    assert!(
        response.ends_with("; refused: team@example.org: 550 5.1.1 <team@example.org>: mailbox unavailable"),
        "{response}"
    );
    assert_eq!(server.transactions().last().unwrap().rcpt_to, vec!["oncall@example.com"]);

    // A 4yz on one recipient (greylisting) is retried: that recipient gets
    // the mail on the next attempt, the others a second copy, same Message-ID.
    server.script_rcpt("team@example.org", &["451 4.7.1 greylisted, try again later"]);
    let id = post(&app, "disk.warm", "warning", json!({"title": "Disk warm"})).await;
    let done = app.wait_for_delivery(&id, "sent").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 2, "{done}");
    assert_eq!((&tries[0]["outcome"], &tries[0]["status_code"]), (&json!("retry"), &json!(451)));
    assert_eq!(
        tries[0]["error"],
        json!("RCPT TO <team@example.org>: 451 4.7.1 greylisted, try again later (the others got the mail)")
    );
    let last_two = &server.transactions()[server.transactions().len() - 2..];
    assert_eq!(last_two[0].rcpt_to, vec!["oncall@example.com"]);
    assert_eq!(last_two[1].rcpt_to, vec!["oncall@example.com", "team@example.org"]);

    // A 5yz to the message fails at once, with the server's text.
    server.script_data(&["550 5.7.1 Message rejected as spam"]);
    let id = post(&app, "disk.full", "critical", json!({"title": "Disk full"})).await;
    let done = app.wait_for_delivery(&id, "failed").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 1, "a 5yz is not retried: {done}");
    assert_eq!(tries[0]["status_code"], json!(550));
    assert_eq!(tries[0]["error"], json!("DATA: 550 5.7.1 Message rejected as spam"));

    // Every recipient refused permanently: failed, each one named.
    server.script_rcpt("oncall@example.com", &["550 5.1.1 no such user"]);
    server.script_rcpt("team@example.org", &["553 5.1.3 bad address"]);
    let id = post(&app, "disk.full", "info", json!({})).await;
    let done = app.wait_for_delivery(&id, "failed").await;
    assert_eq!(
        done["attempts"][0]["error"],
        json!(
            "every recipient was refused: oncall@example.com: 550 5.1.1 no such user, \
             team@example.org: 553 5.1.3 bad address"
        )
    );
    // One connection carried all of it: the target keeps a pool.
    assert_eq!(server.connections(), 1, "{:?}", server.verbs());
    assert!(server.transactions().iter().all(|t| t.conn == 1));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_a_private_ca_then_auth() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let server = SmtpServer::start(Options { starttls: true, auth: true, ..Options::default() }).await;
    let config = json!({
        "host": "localhost", "port": server.port(), "tls": "starttls",
        "username": "mailer", "password": "s3cret-pass", "ca_cert": server.cert_pem,
        "from_email": "alerts@example.com", "to": ["oncall@example.com"]
    });
    let int = app.integration("email", config.clone()).await;
    let (_, stored) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(stored["config"]["password"], json!("********"));
    app.rule(&["job.*"], None, &[&int]).await;
    let id = post(&app, "job.failed", "error", json!({"title": "Job failed"})).await;
    app.wait_for_delivery(&id, "sent").await;

    let t = &server.delivered()[0];
    assert!(t.tls);
    assert_eq!(t.auth, Some(("PLAIN".into(), "mailer".into(), "s3cret-pass".into())));
    let seen: Vec<(String, bool)> = server.commands().into_iter().map(|c| (c.verb, c.tls)).collect();
    let expect = |v: &str, tls: bool| (v.to_owned(), tls);
    assert_eq!(
        seen[..6],
        [
            expect("EHLO", false),
            expect("STARTTLS", false),
            expect("EHLO", true),
            expect("AUTH", true),
            expect("MAIL", true),
            expect("RCPT", true)
        ]
    );

    // The same server without the CA: the certificate does not verify, no AUTH is sent.
    let mut untrusted = config;
    untrusted.as_object_mut().unwrap().remove("ca_cert");
    let other = app.integration("email", untrusted).await;
    let before = server.commands().len();
    let (s, test) = app.post(&format!("/v1/integrations/{other}/test"), json!({})).await;
    assert_eq!(s, 200, "{test}");
    assert_eq!(test["success"], json!(false), "{test}");
    let message = test["message"].as_str().unwrap();
    assert!(message.starts_with("TLS with localhost failed: invalid peer certificate"), "{message}");
    let (_, failed) = app.get(&format!("/v1/deliveries/{}", test["delivery_id"].as_str().unwrap())).await;
    assert_eq!(failed["attempts"][0]["outcome"], json!("failed"), "{failed}");
    let after: Vec<String> = server.commands()[before..].iter().map(|c| c.verb.clone()).collect();
    assert_eq!(after, vec!["EHLO", "STARTTLS"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_from_the_first_byte() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let server = SmtpServer::start(Options { implicit_tls: true, auth: true, ..Options::default() }).await;
    let int = app
        .integration(
            "email",
            json!({
                "host": "127.0.0.1", "port": server.port(), "tls": "implicit", "ca_cert": server.cert_pem,
                "username": "mailer", "password": "pw", "from_email": "alerts@example.com",
                "to": ["oncall@example.com"]
            }),
        )
        .await;
    let (s, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({})).await;
    assert_eq!((s.as_u16(), &test["success"]), (200, &json!(true)), "{test}");
    assert_eq!(test["message"], json!("test message delivered (SMTP 250)"));
    assert!(server.commands().iter().all(|c| c.tls), "{:?}", server.commands());
    assert_eq!(server.delivered()[0].auth.as_ref().map(|a| a.0.as_str()), Some("PLAIN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_not_offered_sends_no_credentials_and_no_mail() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let server = SmtpServer::start(Options { auth: true, ..Options::default() }).await;
    let int = app
        .integration(
            "email",
            json!({
                "host": "127.0.0.1", "port": server.port(), "tls": "starttls",
                "username": "mailer", "password": "never-sent", "from_email": "alerts@example.com",
                "to": ["oncall@example.com"]
            }),
        )
        .await;
    app.rule(&["*"], None, &[&int]).await;
    let id = post(&app, "job.failed", "error", json!({})).await;
    let done = app.wait_for_delivery(&id, "failed").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 1, "{done}");
    let error = tries[0]["error"].as_str().unwrap();
    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert_eq!(server.verbs(), vec!["EHLO", "QUIT"], "no AUTH, no MAIL");
    assert!(server.transactions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_retried_then_failed() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    // Bind then free a port so nothing listens on it.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let int = app
        .integration(
            "email",
            json!({"host": "127.0.0.1", "port": port, "tls": "none", "from_email": "a@example.com", "to": ["b@example.com"]}),
        )
        .await;
    app.rule(&["*"], None, &[&int]).await;
    let id = post(&app, "job.failed", "error", json!({})).await;
    let done = app.wait_for_delivery(&id, "failed").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 3, "schedule 1s,1s: three attempts: {done}");
    for attempt in &tries {
        let error = attempt["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("cannot connect to 127.0.0.1 (127.0.0.1:{port})")), "{error}");
        assert!(error.to_lowercase().contains("connection refused"), "{error}");
    }
    assert_eq!(tries[0]["outcome"], json!("retry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_goes_to_the_given_recipient() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let server = SmtpServer::start(Options::default()).await;
    let mut config = plain_config(&server);
    config.as_object_mut().unwrap().remove("to");
    let int = app.integration("email", config).await;

    // No fixed recipient and none given: nothing to send to.
    let (_, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({})).await;
    assert_eq!((&test["success"], &test["message"]), (&json!(false), &json!("no recipient: set config.to")));

    let (s, problem) = app
        .post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "x@example.com\r\nBcc: y@example.com"}))
        .await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("recipient")), "{problem}");

    let (s, test) =
        app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "someone@example.com"})).await;
    assert_eq!((s.as_u16(), &test["success"]), (200, &json!(true)), "{test}");
    let t = &server.delivered()[0];
    assert_eq!(t.rcpt_to, vec!["someone@example.com"]);
    let mail = MessageParser::default().parse(&t.data).unwrap();
    assert_eq!(mail.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("someone@example.com"));
    assert!(mail.body_text(0).unwrap().contains("This is a test message from Herald."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_policy_covers_smtp_hosts() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn_with(Backend::Sqlite, &db, &dir, &[("HERALD_OUTBOUND_ALLOW_PRIVATE", "false")]).await;
    let server = SmtpServer::start(Options::default()).await;
    let (s, problem) =
        app.post("/v1/integrations", json!({"name": "m", "type": "email", "config": plain_config(&server)})).await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("config.host")), "{problem}");

    // A name is resolved at send time, and every address it gives is checked.
    let mut config = plain_config(&server);
    config["host"] = json!("localhost");
    let int = app.integration("email", config).await;
    let (_, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({})).await;
    assert_eq!(test["success"], json!(false), "{test}");
    let message = test["message"].as_str().unwrap();
    assert!(message.starts_with("localhost resolves only to refused addresses: "), "{message}");
    assert_eq!(server.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_and_is_retried() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let int = app
        .integration(
            "email",
            json!({"host": "127.0.0.1", "port": port, "tls": "none", "from_email": "a@example.com", "to": ["b@example.com"]}),
        )
        .await;
    app.rule(&["*"], None, &[&int]).await;
    let id = post(&app, "job.failed", "error", json!({})).await;
    let done = app.wait_for_delivery(&id, "failed").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 3, "{done}");
    assert!(tries.iter().all(|a| a["error"] == json!("timed out after 2s")), "HERALD_ATTEMPT_TIMEOUT is 2s: {done}");
    assert_eq!(tries[0]["outcome"], json!("retry"));
}
