//! The in-app inbox: one item per `in_app` delivery, read and changed only
//! by its recipient. Every query takes the tenant and the recipient.

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Db, Result, Tx, on_db, on_tx, on_write,
    sql::{Filter, bind_all},
};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct InboxItemRow {
    pub id: String,
    pub tenant_id: String,
    pub recipient_id: String,
    pub delivery_id: String,
    pub event_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub severity: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    /// The event's data, JSON.
    pub data: String,
    pub created_at: i64,
    pub read_at: Option<i64>,
    pub archived_at: Option<i64>,
}

const COLUMNS: &str = "id, tenant_id, recipient_id, delivery_id, event_id, type, severity, title, body, link, data, \
                       created_at, read_at, archived_at";

/// Which items of `GET /v1/inbox`.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub unread_only: bool,
    /// Archived items are left out unless asked for.
    pub archived: bool,
    /// Newest first, older than this id (the cursor).
    pub before_id: Option<String>,
    /// Oldest first, newer than this id (what a reconnecting client missed).
    pub after_id: Option<String>,
    pub limit: i64,
}

/// A change a recipient makes to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemChange {
    Read,
    Unread,
    Archive,
    Delete,
}

impl Tx {
    /// Writes an item unless its delivery already has one (a job that runs
    /// twice writes once). Returns whether it was written.
    pub async fn insert_inbox_item(&mut self, r: &InboxItemRow) -> Result<bool> {
        let sql = format!(
            "INSERT INTO inbox_items ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL) \
             ON CONFLICT (delivery_id) DO NOTHING"
        );
        let n = on_tx!(self, conn => sqlx::query(AssertSqlSafe(sql))
            .bind(&r.id).bind(&r.tenant_id).bind(&r.recipient_id).bind(&r.delivery_id).bind(&r.event_id)
            .bind(&r.kind).bind(&r.severity).bind(&r.title).bind(&r.body).bind(&r.link).bind(&r.data).bind(r.created_at)
            .execute(&mut *conn).await?.rows_affected());
        Ok(n == 1)
    }
}

impl Db {
    pub async fn insert_inbox_item(&self, r: &InboxItemRow) -> Result<bool> {
        let mut tx = self.begin().await?;
        let written = tx.insert_inbox_item(r).await?;
        tx.commit().await?;
        Ok(written)
    }

    pub async fn list_inbox(&self, tenant: &str, recipient: &str, f: &InboxFilter) -> Result<Vec<InboxItemRow>> {
        let mut w = Filter::for_tenant("tenant_id", tenant);
        w.push_opt_text("recipient_id = ?", Some(recipient));
        if f.unread_only {
            w.clauses.push("read_at IS NULL".into());
        }
        if !f.archived {
            w.clauses.push("archived_at IS NULL".into());
        }
        w.push_opt_text("id < ?", f.before_id.as_deref());
        w.push_opt_text("id > ?", f.after_id.as_deref());
        let order = if f.after_id.is_some() { "id" } else { "id DESC" };
        let sql = format!("SELECT {COLUMNS} FROM inbox_items {}", w.finish(order, f.limit));
        Ok(on_db!(self, pool => bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &w.binds).fetch_all(pool).await?))
    }

    pub async fn get_inbox_item(&self, tenant: &str, recipient: &str, id: &str) -> Result<Option<InboxItemRow>> {
        let sql = format!("SELECT {COLUMNS} FROM inbox_items WHERE tenant_id = $1 AND recipient_id = $2 AND id = $3");
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(recipient).bind(id)
            .fetch_optional(pool).await?))
    }

    /// Unread, not archived items of a recipient.
    pub async fn unread_count(&self, tenant: &str, recipient: &str) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM inbox_items WHERE tenant_id = $1 AND recipient_id = $2 \
                   AND read_at IS NULL AND archived_at IS NULL";
        Ok(on_db!(self, pool => sqlx::query_scalar(sql).bind(tenant).bind(recipient).fetch_one(pool).await?))
    }

    /// Applies a change to one item of `recipient`; `false` when they have
    /// no such item.
    pub async fn change_inbox_item(
        &self,
        tenant: &str,
        recipient: &str,
        id: &str,
        change: ItemChange,
        now: i64,
    ) -> Result<bool> {
        let sql = match change {
            ItemChange::Read => {
                "UPDATE inbox_items SET read_at = COALESCE(read_at, $4) WHERE tenant_id = $1 AND recipient_id = $2 AND id = $3"
            }
            ItemChange::Unread => {
                "UPDATE inbox_items SET read_at = NULL WHERE tenant_id = $1 AND recipient_id = $2 AND id = $3 AND $4 = $4"
            }
            ItemChange::Archive => {
                "UPDATE inbox_items SET archived_at = COALESCE(archived_at, $4) WHERE tenant_id = $1 AND recipient_id = $2 AND id = $3"
            }
            ItemChange::Delete => {
                "DELETE FROM inbox_items WHERE tenant_id = $1 AND recipient_id = $2 AND id = $3 AND $4 = $4"
            }
        };
        let n = on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(recipient).bind(id).bind(now)
            .execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    /// Marks every unread item of `recipient` read; returns how many.
    pub async fn read_all_inbox(&self, tenant: &str, recipient: &str, now: i64) -> Result<u64> {
        let sql = "UPDATE inbox_items SET read_at = $3 WHERE tenant_id = $1 AND recipient_id = $2 AND read_at IS NULL";
        Ok(
            on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(recipient).bind(now).execute(pool).await?.rows_affected()),
        )
    }
}
