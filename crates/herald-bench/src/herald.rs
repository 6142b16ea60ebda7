//! The Herald server under test: building or finding the binary, starting a
//! fresh instance (own data dir, own PostgreSQL database), the few API calls
//! the bench makes, and stopping and cleaning up.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::{
    phases::Settings,
    postgres::TempDatabase,
    process::{self, ServerProcess, Shutdown},
};

/// Where Herald keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The `herald` executable.
pub struct HeraldBinary {
    pub path: PathBuf,
}

impl HeraldBinary {
    /// `explicit`, or `<target>/release/herald` (built first when `build`).
    pub fn locate(explicit: Option<PathBuf>, target_dir: &Path, build: bool) -> Result<Self> {
        if let Some(path) = explicit {
            if !path.is_file() {
                bail!("--herald-bin {} is not a file", path.display());
            }
            return Ok(Self { path });
        }
        if build {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            eprintln!("building herald: cargo build --release -p herald");
            let status = std::process::Command::new(cargo)
                .args(["build", "--release", "-p", "herald"])
                .current_dir(&workspace)
                .status()
                .context("running cargo build --release -p herald")?;
            if !status.success() {
                bail!(
                    "`cargo build --release -p herald` failed ({status}); \
                     fix the build, or measure only the baseline with --only-baseline"
                );
            }
        }
        let path = target_dir.join("release").join("herald");
        if !path.is_file() {
            bail!("{} does not exist; run `cargo build --release -p herald` or pass --herald-bin", path.display());
        }
        Ok(Self { path })
    }
}

/// A running Herald with its own storage.
pub struct Herald {
    process: ServerProcess,
    token: String,
    data_dir: PathBuf,
    database: Option<TempDatabase>,
    api: reqwest::Client,
    /// Where Herald answered differently from its contract, word for word.
    pub deviations: Vec<String>,
}

impl Herald {
    /// Starts a fresh Herald for `phase` and waits until `GET /ready` answers 200.
    pub async fn start(binary: &HeraldBinary, backend: Backend, settings: &Settings, phase: &str) -> Result<Self> {
        let name = format!("{}-{phase}", backend.slug());
        let data_dir = settings.work_dir.join("data").join(format!("{name}-{}", std::process::id()));
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)?;
        }
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let database = match backend {
            Backend::Postgres => Some(TempDatabase::create(&settings.database_url).await?),
            Backend::Sqlite => None,
        };
        let addr = process::free_addr()?;
        let token = admin_token();

        let mut command = Command::new(&binary.path);
        command.arg("serve");
        // Only what we set: an inherited HERALD_DATABASE_URL would turn a
        // SQLite run into a PostgreSQL one.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HERALD_") {
                command.env_remove(key);
            }
        }
        command
            .env("HERALD_LISTEN", addr.to_string())
            .env("HERALD_DATA_DIR", &data_dir)
            .env("HERALD_ADMIN_TOKEN", &token)
            .env("HERALD_LOG", "warn")
            .env("HERALD_OUTBOUND_ALLOW_PRIVATE", "true");
        if let Some(database) = &database {
            command.env("HERALD_DATABASE_URL", &database.url);
        }
        let log = settings.work_dir.join("logs").join(format!("{name}.log"));

        let started = ServerProcess::start("herald", command, addr, log).await;
        let process = match started {
            Ok(process) => process,
            Err(error) => {
                cleanup(&data_dir, database).await;
                return Err(error);
            }
        };
        Ok(Self {
            process,
            token,
            data_dir,
            database,
            api: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?,
            deviations: Vec::new(),
        })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.process.addr
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn log(&self) -> &Path {
        &self.process.log
    }

    pub fn ensure_running(&mut self) -> Result<()> {
        self.process.ensure_running()
    }

    /// Posts to `path`; fails on a non-2xx answer and notes a 2xx other than `expected`.
    async fn post(&mut self, path: &str, body: Value, expected: u16) -> Result<Value> {
        let url = format!("http://{}{path}", self.process.addr);
        let response = self
            .api
            .post(&url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {path} answered {status}: {text}\n  request: {body}");
        }
        if status.as_u16() != expected {
            self.deviations.push(format!("POST {path} answered {status} (contract: {expected}): {text}"));
        }
        serde_json::from_str(&text)
            .with_context(|| format!("POST {path} answered {status} with a non-JSON body: {text}"))
    }

    /// Creates a webhook integration to `url`; returns its id.
    pub async fn create_integration(&mut self, name: &str, url: &str) -> Result<String> {
        let body = json!({"name": name, "type": "webhook", "config": {"url": url}});
        let answer = self.post("/v1/integrations", body, 201).await?;
        let id = string_field(&answer, "id")
            .with_context(|| format!("POST /v1/integrations answered without an id: {answer}"))?;
        if !id.starts_with("int_") {
            self.deviations.push(format!("POST /v1/integrations answered id {id:?} (contract: int_…)"));
        }
        Ok(id)
    }

    /// Creates a rule routing `event_types` to `integration_ids`.
    pub async fn create_rule(&mut self, event_types: &[&str], integration_ids: &[String]) -> Result<()> {
        let body = json!({
            "name": "bench",
            "event_types": event_types,
            "integration_ids": integration_ids,
        });
        self.post("/v1/rules", body, 201).await?;
        Ok(())
    }

    /// Posts one event and checks the answer against the contract (202, `evt_…` id).
    pub async fn check_event_answer(&mut self, event_type: &str) -> Result<()> {
        let body = json!({"type": event_type, "data": {"n": 0, "host": "web-1", "message": "disk almost full"}});
        let answer = self.post("/v1/events", body, 202).await?;
        match string_field(&answer, "id") {
            Some(id) if id.starts_with("evt_") => {}
            _ => self.deviations.push(format!("POST /v1/events answered {answer} (contract: {{\"id\": \"evt_…\"}})")),
        }
        Ok(())
    }

    /// SIGTERM, wait, then drop its database and data dir.
    pub async fn stop(self) -> Result<Shutdown> {
        let shutdown = self.process.stop().await;
        cleanup(&self.data_dir, self.database).await;
        shutdown
    }
}

fn string_field(value: &Value, name: &str) -> Option<String> {
    value.get(name)?.as_str().map(str::to_owned)
}

async fn cleanup(data_dir: &Path, database: Option<TempDatabase>) {
    if let Err(error) = std::fs::remove_dir_all(data_dir) {
        eprintln!("warning: could not remove {}: {error}", data_dir.display());
    }
    if let Some(database) = database {
        let name = database.name.clone();
        if let Err(error) = database.drop_database().await {
            eprintln!("warning: could not drop database {name}: {error:#}");
        }
    }
}

/// A token nobody else uses; the server only listens on 127.0.0.1 anyway.
fn admin_token() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    format!("bench-{}-{nanos:x}", std::process::id())
}
