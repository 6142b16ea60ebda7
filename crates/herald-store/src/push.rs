//! Web Push subscriptions: the browsers a recipient (the client app's id)
//! receives push notifications on. An endpoint is unique per tenant.

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Db, Result, on_db, on_write,
    sql::{Bind, Filter, bind_all},
};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PushSubscriptionRow {
    pub id: String,
    pub tenant_id: String,
    pub recipient_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub user_agent: Option<String>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, tenant_id, recipient_id, endpoint, p256dh, auth, user_agent, created_at";

impl Db {
    /// Stores a subscription, or updates the one with the same endpoint in
    /// `r.tenant_id` (new keys, possibly a new recipient; id and creation
    /// time stay). Returns the stored row.
    pub async fn upsert_push_subscription(&self, r: &PushSubscriptionRow) -> Result<PushSubscriptionRow> {
        let sql = format!(
            "INSERT INTO push_subscriptions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant_id, endpoint) DO UPDATE SET recipient_id = excluded.recipient_id, \
             p256dh = excluded.p256dh, auth = excluded.auth, user_agent = excluded.user_agent \
             RETURNING {COLUMNS}"
        );
        Ok(on_write!(self, pool => sqlx::query_as(AssertSqlSafe(sql))
            .bind(&r.id).bind(&r.tenant_id).bind(&r.recipient_id).bind(&r.endpoint)
            .bind(&r.p256dh).bind(&r.auth).bind(&r.user_agent).bind(r.created_at)
            .fetch_one(pool).await?))
    }

    /// The subscriptions of any of `recipients` in `tenant`, oldest first;
    /// `after_id` is the cursor.
    pub async fn list_push_subscriptions(
        &self,
        tenant: &str,
        recipients: &[String],
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PushSubscriptionRow>> {
        if recipients.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = Filter::for_tenant("tenant_id", tenant);
        let mut list = Vec::with_capacity(recipients.len());
        for id in recipients {
            w.binds.push(Bind::Text(id.clone()));
            list.push(format!("${}", w.binds.len()));
        }
        w.clauses.push(format!("recipient_id IN ({})", list.join(", ")));
        w.push_opt_text("id > ?", after_id);
        let sql = format!("SELECT {COLUMNS} FROM push_subscriptions {}", w.finish("id", limit));
        Ok(on_db!(self, pool => bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &w.binds).fetch_all(pool).await?))
    }

    /// Deletes one subscription of `recipient`; `false` when there is none.
    pub async fn delete_push_subscription(&self, tenant: &str, recipient: &str, id: &str) -> Result<bool> {
        let sql = "DELETE FROM push_subscriptions WHERE tenant_id = $1 AND recipient_id = $2 AND id = $3";
        let n = on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(recipient).bind(id).execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    /// Deletes the subscription with this endpoint (a push service said it
    /// is gone); `false` when there was none.
    pub async fn delete_push_subscription_by_endpoint(&self, tenant: &str, endpoint: &str) -> Result<bool> {
        let sql = "DELETE FROM push_subscriptions WHERE tenant_id = $1 AND endpoint = $2";
        let n =
            on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(endpoint).execute(pool).await?.rows_affected());
        Ok(n == 1)
    }
}
