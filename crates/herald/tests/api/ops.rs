//! Operations: health, readiness, metrics, configuration refusals, graceful stop.

use std::{process::Command, time::Duration};

use serde_json::json;

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb},
    sink::{Reply, Sink},
};

backend_test!(health_ready_and_metrics, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    let id = app.event_with_delivery("m", json!({})).await;
    app.wait_for_delivery(&id, "sent").await;

    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "herald_events_received_total 1",
        "herald_deliveries_total{channel=\"webhook\",outcome=\"sent\"} 1",
        "herald_attempt_duration_seconds_bucket",
        "herald_queue_depth 0",
        "herald_queue_oldest_due_age_seconds",
    ] {
        assert!(text.contains(needle), "metrics lack `{needle}`:\n{text}");
    }
    let (s, stats) = app.get("/v1/stats").await;
    assert_eq!(s, 200);
    assert_eq!(
        (stats["integrations"].as_i64(), stats["active_rules"].as_i64(), stats["sent_today"].as_i64()),
        (Some(1), Some(1), Some(1))
    );
    let (s, p) = app.get("/v1/nothing-here").await;
    assert_eq!((s.as_u16(), p["status"].as_i64()), (404, Some(404)));
});

backend_test!(sigterm_finishes_in_flight_work, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let mut app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let mut slow = Reply::status(200);
    slow.delay = Duration::from_millis(800);
    sink.script([slow]);
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    let id = app.event_with_delivery("slow", json!({})).await;
    crate::helpers::wait_for("the send to start", Duration::from_secs(10), || async {
        (sink.count() == 1).then_some(())
    })
    .await;
    let status = app.terminate().await;
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    app.start().await;
    let done = app.wait_for_delivery(&id, "sent").await;
    assert_eq!(
        done["attempts"].as_array().unwrap().len(),
        1,
        "the in-flight attempt finished and was recorded: {done}"
    );
    assert_eq!(sink.count(), 1);
});

#[test]
fn a_lease_not_longer_than_the_attempt_timeout_is_refused() {
    let dir = TempDir::new();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env_clear()
        .env("HERALD_DATA_DIR", &dir.0)
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_ATTEMPT_TIMEOUT", "15s")
        .env("HERALD_LEASE", "10s")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HERALD_LEASE") && stderr.contains("attempt_timeout"), "{stderr}");
}

#[test]
fn a_second_process_on_the_same_sqlite_dir_is_refused() {
    let dir = TempDir::new();
    let mut first = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env_clear()
        .env("HERALD_DATA_DIR", &dir.0)
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_ADMIN_TOKEN", "x")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !dir.0.join("herald.db").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env_clear()
        .env("HERALD_DATA_DIR", &dir.0)
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_ADMIN_TOKEN", "x")
        .output()
        .unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another Herald process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn first_start_prints_an_admin_token_once() {
    let dir = TempDir::new();
    let run = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .env_clear()
            .env("HERALD_DATA_DIR", &dir.0)
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0 && !line.contains("listening on") {
            line.clear();
        }
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run();
    assert!(first.contains("hadm_"), "first start prints the token: {first}");
    let second = run();
    assert!(!second.contains("hadm_"), "later starts do not: {second}");
}
