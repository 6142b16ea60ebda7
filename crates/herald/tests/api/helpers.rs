//! The black-box harness: starts the real `herald` binary on a free port
//! with its own database (a temp SQLite file, or a fresh PostgreSQL database
//! when `HERALD_TEST_DATABASE_URL` is set), and typed helpers that keep each
//! test short.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN: &str = "test-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from one body: `name::sqlite` always
/// runs; `name::postgres` runs when `HERALD_TEST_DATABASE_URL` is set and
/// says it is skipped otherwise.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::helpers::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if !$crate::helpers::postgres_available() {
                    eprintln!("skipped: HERALD_TEST_DATABASE_URL is not set");
                    return;
                }
                ($body)($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

pub fn postgres_available() -> bool {
    std::env::var("HERALD_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

/// A database of its own for one test; a PostgreSQL one is dropped at the end.
pub struct TestDb {
    pub url: Option<String>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => TestDb { url: None, pg_name: None },
            Backend::Postgres => {
                let admin_url = std::env::var("HERALD_TEST_DATABASE_URL").expect("checked by the caller");
                let name = format!("herald_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await.expect("connect to PostgreSQL");
                sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("HERALD_TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                TestDb { url: Some(url.to_string()), pg_name: Some(name) }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        let admin_url = std::env::var("HERALD_TEST_DATABASE_URL").unwrap_or_default();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await {
                    let _ = sqlx::Executor::execute(
                        &mut conn,
                        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
                    )
                    .await;
                }
            })
        })
        .join();
    }
}

/// A running Herald process.
pub struct App {
    pub base: String,
    pub data_dir: PathBuf,
    pub db_url: Option<String>,
    pub env: Vec<(String, String)>,
    pub client: reqwest::Client,
    pub log: Arc<Mutex<String>>,
    child: Option<Child>,
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("herald-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Test-friendly settings: a short retry schedule and lease, so retries and
/// crash recovery happen in seconds.
pub fn default_env() -> Vec<(String, String)> {
    [
        ("HERALD_ADMIN_TOKEN", ADMIN),
        ("HERALD_RETRY_SCHEDULE", "1s,1s"),
        ("HERALD_ATTEMPT_TIMEOUT", "2s"),
        ("HERALD_LEASE", "4s"),
        ("HERALD_SHUTDOWN_GRACE", "2s"),
        ("HERALD_LOG", "warn,herald=info"),
        ("HERALD_LOG_FORMAT", "pretty"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl App {
    /// Starts Herald on its own fresh database.
    pub async fn spawn(backend: Backend, db: &TestDb, dir: &TempDir) -> App {
        Self::spawn_with(backend, db, dir, &[]).await
    }

    /// Starts Herald with extra `HERALD_*` settings.
    pub async fn spawn_with(backend: Backend, db: &TestDb, dir: &TempDir, extra: &[(&str, &str)]) -> App {
        herald_channels::install_crypto_provider();
        let mut env = default_env();
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        let _ = backend;
        let mut app = App {
            base: String::new(),
            data_dir: dir.0.clone(),
            db_url: db.url.clone(),
            env,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            log: Arc::default(),
            child: None,
        };
        app.start().await;
        app
    }

    /// Starts (or restarts) the process on the same data.
    pub async fn start(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .env("HERALD_DATA_DIR", &self.data_dir)
            .current_dir(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = &self.db_url {
            cmd.env("HERALD_DATABASE_URL", url);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start herald");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = tx.send(addr);
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("herald did not start; its log:\n{}", self.log.lock().unwrap()));
        self.base = format!("http://{addr}");
        self.child = Some(child);
    }

    /// SIGKILL: no chance to finish or release anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the process to exit; returns its exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, ADMIN, Some(&body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, ADMIN, None).await
    }

    /// Creates a webhook integration to `url`; returns (id, secret).
    pub async fn webhook(&self, url: &str) -> (String, String) {
        let (status, body) =
            self.post("/v1/integrations", json!({"name": "hook", "type": "webhook", "config": {"url": url}})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (body["id"].as_str().unwrap().to_owned(), body["config"]["secret"].as_str().unwrap().to_owned())
    }

    /// Creates an integration of any type; returns its id.
    pub async fn integration(&self, kind: &str, config: Value) -> String {
        let (status, body) = self.post("/v1/integrations", json!({"name": kind, "type": kind, "config": config})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a rule; returns its id.
    pub async fn rule(&self, types: &[&str], condition: Option<&str>, integrations: &[&str]) -> String {
        let mut body = json!({"name": "rule", "event_types": types, "integration_ids": integrations});
        if let Some(c) = condition {
            body["condition"] = json!(c);
        }
        let (status, body) = self.post("/v1/rules", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Posts an event; returns its id.
    pub async fn event(&self, event_type: &str, data: Value) -> String {
        let (status, body) = self.post("/v1/events", json!({"type": event_type, "data": data})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// The deliveries of an event (routed in the transaction that stored it).
    pub async fn routed(&self, event_id: &str) -> Vec<Value> {
        let (status, e) = self.get(&format!("/v1/events/{event_id}")).await;
        assert_eq!(status, StatusCode::OK, "{e}");
        e["deliveries"].as_array().cloned().expect("an event lists its deliveries")
    }

    /// Posts an event that makes exactly one delivery; returns the delivery id.
    pub async fn event_with_delivery(&self, event_type: &str, data: Value) -> String {
        let event = self.event(event_type, data).await;
        let deliveries = self.routed(&event).await;
        assert_eq!(deliveries.len(), 1, "event {event} should make one delivery: {deliveries:?}");
        deliveries[0]["id"].as_str().unwrap().to_owned()
    }

    /// Waits until a delivery reaches `status`; returns it with its attempts.
    pub async fn wait_for_delivery(&self, id: &str, status: &str) -> Value {
        wait_for(&format!("delivery {id} to become {status}"), Duration::from_secs(20), || async {
            let (_, d) = self.get(&format!("/v1/deliveries/{id}")).await;
            (d["status"] == json!(status)).then_some(d)
        })
        .await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
