//! The claiming side of the delivery queue: leases, completions, releases.
//!
//! A pending delivery is claimable when `due_at <= now`. Claiming sets a fresh
//! `lease_token` and moves `due_at` to the end of the lease, so a worker that
//! dies leaves rows that become due again on their own. Completions and
//! releases only apply while the caller still holds the lease (the token is
//! a fencing token): a worker whose lease ran out cannot overwrite the state
//! another worker has since written.

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Backend, Db, Result, Tx, on_db, on_tx, on_write,
    sql::{chunk_sizes, insert_rows, placeholders},
};

/// A claimed delivery with what sending it needs.
#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub delivery_id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub event_type: String,
    pub severity: String,
    pub data: String,
    pub event_created_at: i64,
    pub integration_id: Option<String>,
    pub recipient_id: Option<String>,
    /// A person's address on the channel (sent to instead of the configured one).
    pub address: Option<String>,
    pub channel: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub lease_token: String,
    pub integration_config: Option<String>,
    pub integration_enabled: Option<bool>,
    pub integration_updated_at: Option<i64>,
    /// Since when every attempt to the integration has failed (webhooks).
    pub integration_failing_since: Option<i64>,
    /// A test send (`POST /v1/integrations/{id}/test`): it leaves the
    /// integration's state alone.
    #[sqlx(skip)]
    pub is_test: bool,
}

/// Reads claimed deliveries `d` with their events and integrations.
const JOB_SELECT: &str = "SELECT d.id AS delivery_id, d.tenant_id, d.event_id, d.event_type, e.severity, e.data, \
      e.created_at AS event_created_at, d.integration_id, d.recipient_id, d.address, d.channel, d.attempts, d.lease_token, \
      i.config AS integration_config, i.enabled AS integration_enabled, i.updated_at AS integration_updated_at, \
      i.failing_since AS integration_failing_since \
    FROM d JOIN events e ON e.id = d.event_id \
    LEFT JOIN integrations i ON i.id = d.integration_id AND i.tenant_id = d.tenant_id";

/// The result of one attempt, to record.
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: String,
    pub tenant_id: String,
    pub lease_token: String,
    pub attempt: i64,
    pub at: i64,
    pub duration_ms: i64,
    /// `sent`, `retry`, `failed`, or `none` when no attempt was made (the
    /// delivery is cancelled without trying).
    pub outcome: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub response: Option<String>,
    /// `sent`, `pending`, `failed` or `cancelled`.
    pub new_status: String,
    pub due_at: i64,
    pub sent_at: Option<i64>,
}

/// Queue figures for `/metrics` and `/v1/stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Pending deliveries (due or not).
    pub depth: i64,
    /// Due time of the oldest due delivery, if any is due.
    pub oldest_due_at: Option<i64>,
}

impl Db {
    /// Claims up to `limit` due deliveries under `token` until `lease_until`,
    /// and returns them with their events and integrations.
    pub async fn claim_due(&self, token: &str, now: i64, lease_until: i64, limit: i64) -> Result<Vec<Job>> {
        match self {
            // One statement: lock due rows (skipping those another node
            // holds), lease them, and return them with their events.
            Db::Postgres(pool) => {
                let sql = format!(
                    "WITH due AS (SELECT id FROM deliveries WHERE status = 'pending' AND due_at <= $3 \
                       ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED), \
                     d AS (UPDATE deliveries SET lease_token = $1, due_at = $2, attempts = deliveries.attempts + 1, updated_at = $3 \
                       FROM due WHERE deliveries.id = due.id \
                       RETURNING deliveries.id, deliveries.tenant_id, deliveries.event_id, deliveries.event_type, \
                         deliveries.integration_id, deliveries.recipient_id, deliveries.address, deliveries.channel, deliveries.attempts, deliveries.lease_token) \
                     {JOB_SELECT}"
                );
                Ok(sqlx::query_as(AssertSqlSafe(sql))
                    .bind(token)
                    .bind(lease_until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?)
            }
            // SQLite has one writer at a time, so one UPDATE claims
            // atomically; RETURNING may not join, so the jobs are read after.
            Db::Sqlite(pools) => {
                let claim = "UPDATE deliveries SET lease_token = $1, due_at = $2, attempts = attempts + 1, updated_at = $3 \
                             WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND due_at <= $3 ORDER BY due_at LIMIT $4) \
                             RETURNING id";
                let ids: Vec<String> = sqlx::query_scalar(claim)
                    .bind(token)
                    .bind(lease_until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&pools.write)
                    .await?;
                let mut jobs = Vec::with_capacity(ids.len());
                let mut start = 0;
                for size in chunk_sizes(ids.len()) {
                    let sql = format!(
                        "WITH d AS (SELECT * FROM deliveries WHERE id IN ({})) {JOB_SELECT}",
                        placeholders(Backend::Sqlite, 1, size)
                    );
                    let mut q = sqlx::query_as(AssertSqlSafe(sql));
                    for id in &ids[start..start + size] {
                        q = q.bind(id);
                    }
                    jobs.extend(q.fetch_all(&pools.read).await?);
                    start += size;
                }
                Ok(jobs)
            }
        }
    }

    /// Records attempts and moves their deliveries on, in one transaction.
    /// Returns how many deliveries were still leased by the caller (others
    /// keep the attempt row for the history but their state is not touched).
    pub async fn complete(&self, done: &[Completion]) -> Result<usize> {
        if done.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let attempts: Vec<&Completion> = done.iter().filter(|c| c.outcome != "none").collect();
        let mut start = 0;
        for size in chunk_sizes(attempts.len()) {
            insert_attempts(&mut tx, &attempts[start..start + size]).await?;
            start += size;
        }
        let mut applied = 0;
        let mut start = 0;
        for size in chunk_sizes(done.len()) {
            applied += update_deliveries(&mut tx, &done[start..start + size]).await?;
            start += size;
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// Gives claimed deliveries back without an attempt (graceful shutdown):
    /// due now, and the claim does not count as an attempt.
    pub async fn release(&self, leases: &[(String, String)], now: i64) -> Result<()> {
        let sql = "UPDATE deliveries SET lease_token = NULL, due_at = $3, attempts = attempts - 1, updated_at = $3 \
                   WHERE id = $1 AND lease_token = $2 AND status = 'pending'";
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => {
            for (id, token) in leases {
                sqlx::query(sql).bind(id).bind(token).bind(now).execute(&mut *conn).await?;
            }
        });
        tx.commit().await
    }

    /// Makes every leased delivery due now. Only for SQLite at start-up,
    /// where this process is the only one that can hold leases.
    pub async fn release_all_leases(&self, now: i64) -> Result<u64> {
        let sql = "UPDATE deliveries SET lease_token = NULL, due_at = $1 WHERE status = 'pending' AND lease_token IS NOT NULL";
        Ok(on_write!(self, pool => sqlx::query(sql).bind(now).execute(pool).await?.rows_affected()))
    }

    /// The earliest `due_at` of any pending delivery (for the worker's timer).
    pub async fn next_due_at(&self) -> Result<Option<i64>> {
        let sql = "SELECT MIN(due_at) FROM deliveries WHERE status = 'pending'";
        Ok(on_db!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await?))
    }

    pub async fn queue_stats(&self, now: i64) -> Result<QueueStats> {
        let sql =
            "SELECT COUNT(*), MIN(CASE WHEN due_at <= $1 THEN due_at END) FROM deliveries WHERE status = 'pending'";
        let (depth, oldest_due_at): (i64, Option<i64>) =
            on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(now).fetch_one(pool).await?);
        Ok(QueueStats { depth, oldest_due_at })
    }

    /// How many of a tenant's deliveries are in each status, for `/v1/stats`.
    pub async fn delivery_counts_since(&self, tenant: &str, since: i64) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT status, COUNT(*) FROM deliveries WHERE tenant_id = $1 AND updated_at >= $2 GROUP BY status";
        Ok(on_db!(self, pool => sqlx::query_as(sql).bind(tenant).bind(since).fetch_all(pool).await?))
    }
}

async fn insert_attempts(tx: &mut Tx, chunk: &[&Completion]) -> Result<()> {
    const COLS: usize = 9;
    let sql = insert_rows(
        tx.backend(),
        "attempts (delivery_id, tenant_id, attempt, at, duration_ms, outcome, status_code, error, response)",
        chunk.len(),
        COLS,
    );
    on_tx!(tx, conn => {
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in chunk {
            q = q.bind(&c.delivery_id).bind(&c.tenant_id).bind(c.attempt).bind(c.at).bind(c.duration_ms)
                .bind(&c.outcome).bind(c.status_code).bind(&c.error).bind(&c.response);
        }
        q.execute(conn).await?;
    });
    Ok(())
}

/// Moves a chunk of deliveries on in one statement (`UPDATE … FROM
/// (VALUES …)`, which both engines read with columns `column1…`), only
/// where the lease token still matches. Returns the rows changed.
async fn update_deliveries(tx: &mut Tx, chunk: &[Completion]) -> Result<usize> {
    const COLS: usize = 8;
    let backend = tx.backend();
    let rows: Vec<String> = (0..chunk.len())
        .map(|r| {
            let p: Vec<String> = placeholders(backend, r * COLS + 1, COLS).split(", ").map(str::to_owned).collect();
            // Typed casts: PostgreSQL cannot infer parameter types inside VALUES.
            format!(
                "({}, {}, {}, CAST({} AS BIGINT), {}, CAST({} AS BIGINT), CAST({} AS BIGINT), {})",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
            )
        })
        .collect();
    let sql = format!(
        "UPDATE deliveries SET status = v.column3, due_at = v.column4, lease_token = NULL, last_error = v.column5, \
         updated_at = v.column6, sent_at = COALESCE(v.column7, deliveries.sent_at), skip_reason = v.column8 \
         FROM (VALUES {}) AS v WHERE deliveries.id = v.column1 AND deliveries.lease_token = v.column2",
        rows.join(", ")
    );
    Ok(on_tx!(tx, conn => {
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in chunk {
            let skip_reason = matches!(c.new_status.as_str(), "cancelled" | "skipped").then(|| c.error.clone()).flatten();
            q = q.bind(&c.delivery_id).bind(&c.lease_token).bind(&c.new_status).bind(c.due_at).bind(&c.error)
                .bind(c.at).bind(c.sent_at).bind(skip_reason);
        }
        q.execute(conn).await?.rows_affected() as usize
    }))
}
