//! Events: the durable, idempotent ingest batch and the event history.

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Db, Result, Tx, on_db, on_tx,
    sql::{Filter, bind_all, chunk_sizes, insert_rows},
};

/// An event about to be stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub severity: String,
    /// Whether the client gave the severity. When not, `severity` is
    /// `info` until ingest applies the type's own severity, if it has one.
    pub severity_given: bool,
    /// The event's `data`, as JSON text.
    pub data: String,
    pub idempotency_key: Option<String>,
    /// A hash of the request body, to tell a replay from a conflicting reuse of the key.
    pub request_hash: String,
    pub deliver_at: Option<i64>,
    pub created_at: i64,
    /// The people the event names (recipient ids), deduplicated.
    pub recipients: Vec<String>,
}

impl NewEvent {
    fn recipients_json(&self) -> Option<String> {
        (!self.recipients.is_empty()).then(|| serde_json::to_string(&self.recipients).expect("strings serialize"))
    }
}

/// What storing one event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// A new event was stored.
    Created(String),
    /// The idempotency key was seen with the same body: the first event's id.
    Replay(String),
    /// The idempotency key was seen with a different body.
    Conflict(String),
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: String,
    pub tenant_id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub severity: String,
    pub data: String,
    pub idempotency_key: Option<String>,
    pub deliver_at: Option<i64>,
    pub created_at: i64,
    /// JSON array of recipient ids.
    pub recipients: Option<String>,
}

const EVENT_COLUMNS: &str = "id, tenant_id, type, severity, data, idempotency_key, deliver_at, created_at, recipients";

/// Filters of `GET /v1/events`.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only ids older than this one (the cursor).
    pub before_id: Option<String>,
    pub limit: i64,
}

impl Tx {
    /// Stores a batch of events in this transaction: with one commit for
    /// the whole batch, this is the group commit behind `POST /v1/events`.
    /// Results come back in the order of `events`.
    pub async fn insert_events(&mut self, events: &[&NewEvent]) -> Result<Vec<Inserted>> {
        let mut results = vec![None; events.len()];
        let plain: Vec<usize> = (0..events.len()).filter(|&i| events[i].idempotency_key.is_none()).collect();
        let mut start = 0;
        for size in chunk_sizes(plain.len()) {
            let chunk: Vec<&NewEvent> = plain[start..start + size].iter().map(|&i| events[i]).collect();
            insert_plain(self, &chunk).await?;
            for &i in &plain[start..start + size] {
                results[i] = Some(Inserted::Created(events[i].id.clone()));
            }
            start += size;
        }
        for (i, ev) in events.iter().enumerate().filter(|(_, e)| e.idempotency_key.is_some()) {
            results[i] = Some(insert_keyed(self, ev).await?);
        }
        Ok(results.into_iter().map(|r| r.expect("every event has a result")).collect())
    }
}

impl Db {
    pub async fn get_event(&self, tenant: &str, id: &str) -> Result<Option<EventRow>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2");
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(pool).await?))
    }

    /// Newest first, `limit` rows at most.
    pub async fn list_events(&self, tenant: &str, f: &EventFilter) -> Result<Vec<EventRow>> {
        let mut w = Filter::for_tenant("tenant_id", tenant);
        w.push_opt_text("type = ?", f.event_type.as_deref());
        w.push_opt_int("created_at >= ?", f.since);
        w.push_opt_int("created_at < ?", f.until);
        w.push_opt_text("id < ?", f.before_id.as_deref());
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events {}", w.finish("id DESC", f.limit));
        Ok(on_db!(self, pool => bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &w.binds).fetch_all(pool).await?))
    }
}

async fn insert_plain(tx: &mut Tx, chunk: &[&NewEvent]) -> Result<()> {
    const COLS: usize = 10;
    let sql = insert_rows(
        tx.backend(),
        "events (id, tenant_id, type, severity, data, idempotency_key, request_hash, deliver_at, created_at, recipients)",
        chunk.len(),
        COLS,
    );
    on_tx!(tx, conn => {
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for e in chunk {
            q = q.bind(&e.id).bind(&e.tenant_id).bind(&e.event_type).bind(&e.severity).bind(&e.data)
                .bind(&e.idempotency_key).bind(&e.request_hash).bind(e.deliver_at).bind(e.created_at).bind(e.recipients_json());
        }
        q.execute(conn).await?;
    });
    Ok(())
}

async fn insert_keyed(tx: &mut Tx, e: &NewEvent) -> Result<Inserted> {
    let insert = "INSERT INTO events (id, tenant_id, type, severity, data, idempotency_key, request_hash, deliver_at, created_at, recipients) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING";
    let existing = "SELECT id, request_hash FROM events WHERE tenant_id = $1 AND idempotency_key = $2";
    on_tx!(tx, conn => {
        let n = sqlx::query(insert)
            .bind(&e.id).bind(&e.tenant_id).bind(&e.event_type).bind(&e.severity).bind(&e.data)
            .bind(&e.idempotency_key).bind(&e.request_hash).bind(e.deliver_at).bind(e.created_at).bind(e.recipients_json())
            .execute(&mut *conn).await?.rows_affected();
        if n == 1 {
            return Ok(Inserted::Created(e.id.clone()));
        }
        let (id, hash): (String, String) = sqlx::query_as(existing).bind(&e.tenant_id).bind(&e.idempotency_key).fetch_one(&mut *conn).await?;
        Ok(if hash == e.request_hash { Inserted::Replay(id) } else { Inserted::Conflict(id) })
    })
}
