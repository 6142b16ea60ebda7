//! Deliveries and attempts: where routed events wait, and the history of
//! every try. The claiming side of the queue is in [`crate::queue`].

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Db, Result, Tx, on_db, on_tx, on_write,
    sql::{Filter, bind_all, chunk_sizes, insert_rows},
};

/// A delivery the router decided on.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `None` for `in_app` and for a person's channel with no integration.
    pub integration_id: Option<String>,
    /// The person, for deliveries to people.
    pub recipient_id: Option<String>,
    /// The person's address on the channel, when it has one.
    pub address: Option<String>,
    pub rule_id: Option<String>,
    pub channel: String,
    /// `pending`, `sent` (an inbox item written with the event), or
    /// `skipped` with `skip_reason`.
    pub status: String,
    pub due_at: i64,
    pub skip_reason: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub event_type: String,
    pub integration_id: Option<String>,
    pub recipient_id: Option<String>,
    pub address: Option<String>,
    pub rule_id: Option<String>,
    pub channel: String,
    pub status: String,
    pub attempts: i64,
    pub due_at: i64,
    pub lease_token: Option<String>,
    pub last_error: Option<String>,
    pub skip_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

const COLUMNS: &str = "id, tenant_id, event_id, event_type, integration_id, recipient_id, address, rule_id, channel, \
                       status, attempts, due_at, lease_token, last_error, skip_reason, created_at, updated_at, sent_at";

#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at: i64,
    pub duration_ms: i64,
    pub outcome: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// Filters of `GET /v1/deliveries`.
#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    pub event_id: Option<String>,
    pub status: Option<String>,
    pub integration_id: Option<String>,
    pub recipient_id: Option<String>,
    pub channel: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before_id: Option<String>,
    pub limit: i64,
}

impl Db {
    pub async fn get_delivery(&self, tenant: &str, id: &str) -> Result<Option<DeliveryRow>> {
        let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2");
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(pool).await?))
    }

    /// Every attempt of a delivery, oldest first.
    pub async fn list_attempts(&self, tenant: &str, delivery: &str) -> Result<Vec<AttemptRow>> {
        let sql = "SELECT attempt, at, duration_ms, outcome, status_code, error, response FROM attempts \
                   WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY id";
        Ok(on_db!(self, pool => sqlx::query_as(sql).bind(tenant).bind(delivery).fetch_all(pool).await?))
    }

    /// Newest first.
    pub async fn list_deliveries(&self, tenant: &str, f: &DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let mut w = Filter::for_tenant("tenant_id", tenant);
        w.push_opt_text("event_id = ?", f.event_id.as_deref());
        w.push_opt_text("status = ?", f.status.as_deref());
        w.push_opt_text("integration_id = ?", f.integration_id.as_deref());
        w.push_opt_text("recipient_id = ?", f.recipient_id.as_deref());
        w.push_opt_text("channel = ?", f.channel.as_deref());
        w.push_opt_text("event_type = ?", f.event_type.as_deref());
        w.push_opt_int("created_at >= ?", f.since);
        w.push_opt_int("created_at < ?", f.until);
        w.push_opt_text("id < ?", f.before_id.as_deref());
        let sql = format!("SELECT {COLUMNS} FROM deliveries {}", w.finish("id DESC", f.limit));
        Ok(on_db!(self, pool => bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &w.binds).fetch_all(pool).await?))
    }

    /// Puts a `failed` delivery back in the queue, due now. `None` when there
    /// is no such delivery, `Some(false)` when it is not in a retryable state.
    /// Makes an integration's deliveries created in `[from, to)` (ms) that
    /// failed, or were skipped while it was disabled, pending again now, at
    /// most `limit` of them, oldest first; returns how many. Delivery ids
    /// are UUIDv7 (their first 48 bits the creation time), so the range is
    /// an id range on the tenant's index.
    pub async fn recover_deliveries(
        &self,
        tenant: &str,
        integration: &str,
        (from, to): (i64, i64),
        now: i64,
        limit: i64,
    ) -> Result<u64> {
        let id_at = |ms: i64| format!("dlv_{:012x}{}", ms.clamp(0, 0xffff_ffff_ffff), "0".repeat(20));
        let sql = "UPDATE deliveries SET status = 'pending', due_at = $5, lease_token = NULL, skip_reason = NULL, updated_at = $5 \
                   WHERE tenant_id = $1 AND id IN (SELECT id FROM deliveries \
                     WHERE tenant_id = $1 AND id >= $2 AND id < $3 AND integration_id = $4 \
                     AND (status = 'failed' OR (status = 'skipped' AND skip_reason = 'integration disabled')) \
                     ORDER BY id LIMIT $6)";
        Ok(on_write!(self, pool => sqlx::query(sql)
            .bind(tenant).bind(id_at(from)).bind(id_at(to)).bind(integration).bind(now).bind(limit)
            .execute(pool).await?.rows_affected()))
    }

    pub async fn retry_delivery(&self, tenant: &str, id: &str, now: i64) -> Result<Option<bool>> {
        let sql = "UPDATE deliveries SET status = 'pending', due_at = $3, lease_token = NULL, updated_at = $3 \
                   WHERE tenant_id = $1 AND id = $2 AND status = 'failed'";
        let n = on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(id).bind(now).execute(pool).await?.rows_affected());
        if n == 1 {
            return Ok(Some(true));
        }
        Ok(self.get_delivery(tenant, id).await?.map(|_| false))
    }
}

impl Tx {
    /// Inserts the router's deliveries.
    pub async fn insert_deliveries(&mut self, rows: &[NewDelivery]) -> Result<()> {
        const COLS: usize = 15;
        let mut start = 0;
        for size in chunk_sizes(rows.len()) {
            let chunk = &rows[start..start + size];
            start += size;
            let sql = insert_rows(
                self.backend(),
                "deliveries (id, tenant_id, event_id, event_type, integration_id, recipient_id, address, rule_id, \
                 channel, status, due_at, skip_reason, created_at, updated_at, sent_at)",
                size,
                COLS,
            );
            on_tx!(self, conn => {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for d in chunk {
                    q = q.bind(&d.id).bind(&d.tenant_id).bind(&d.event_id).bind(&d.event_type).bind(&d.integration_id)
                        .bind(&d.recipient_id).bind(&d.address).bind(&d.rule_id).bind(&d.channel).bind(&d.status).bind(d.due_at)
                        .bind(&d.skip_reason).bind(d.created_at).bind(d.created_at)
                        .bind((d.status == "sent").then_some(d.created_at));
                }
                q.execute(conn).await?;
            });
        }
        Ok(())
    }
}

impl Db {
    /// Stores a test event (routed by hand: rules never see it) and its
    /// one delivery, leased to the caller who sends it right away.
    pub async fn insert_leased_test(
        &self,
        event: &crate::events::NewEvent,
        delivery: &NewDelivery,
        lease_token: &str,
        lease_until: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => {
            sqlx::query("INSERT INTO events (id, tenant_id, type, severity, data, idempotency_key, request_hash, deliver_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, NULL, $6, NULL, $7)")
                .bind(&event.id).bind(&event.tenant_id).bind(&event.event_type).bind(&event.severity).bind(&event.data)
                .bind(&event.request_hash).bind(event.created_at)
                .execute(&mut *conn).await?;
            sqlx::query("INSERT INTO deliveries (id, tenant_id, event_id, event_type, integration_id, address, rule_id, channel, status, \
                         attempts, due_at, lease_token, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, 'pending', 1, $8, $9, $10, $10)")
                .bind(&delivery.id).bind(&delivery.tenant_id).bind(&delivery.event_id).bind(&delivery.event_type)
                .bind(&delivery.integration_id).bind(&delivery.address).bind(&delivery.channel).bind(lease_until).bind(lease_token)
                .bind(delivery.created_at)
                .execute(&mut *conn).await?;
        });
        tx.commit().await
    }
}
