//! A fresh PostgreSQL database per Herald run (`herald_bench_<pid>_<n>`),
//! created on the server of `HERALD_BENCH_DATABASE_URL` and dropped after.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context, Result};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use url::Url;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static NEXT_DATABASE: AtomicU32 = AtomicU32::new(1);

/// Fails when the server cannot be reached or refuses us.
pub async fn check(admin_url: &str) -> Result<()> {
    let connection = connect(admin_url).await?;
    connection.close().await?;
    Ok(())
}

async fn connect(url: &str) -> Result<PgConnection> {
    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url))
        .await
        .with_context(|| format!("no answer within {CONNECT_TIMEOUT:?}"))?
        // sqlx repeats its source in its own message; the innermost one says it all.
        .map_err(|error| anyhow::anyhow!(crate::load::root_cause(&error)))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("****"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// A database that exists until [`TempDatabase::drop_database`].
pub struct TempDatabase {
    admin_url: String,
    pub name: String,
    /// The URL Herald connects with.
    pub url: String,
}

impl TempDatabase {
    pub async fn create(admin_url: &str) -> Result<Self> {
        let n = NEXT_DATABASE.fetch_add(1, Ordering::Relaxed);
        let name = format!("herald_bench_{}_{n}", std::process::id());
        let mut url = Url::parse(admin_url).context("parsing the PostgreSQL URL")?;
        url.set_path(&format!("/{name}"));
        let mut admin = connect(admin_url).await?;
        // `name` is made of [a-z0-9_] above; nothing here comes from input.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin.close().await?;
        Ok(Self { admin_url: admin_url.to_owned(), name, url: url.to_string() })
    }

    /// Drops the database, closing any connection still open to it.
    pub async fn drop_database(self) -> Result<()> {
        let mut admin = connect(&self.admin_url).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .execute(&mut admin)
            .await
            .with_context(|| format!("dropping database {}", self.name))?;
        admin.close().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(
            redact("postgres://bench:secret@127.0.0.1:5432/postgres"),
            "postgres://bench:****@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }
}
