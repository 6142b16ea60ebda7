//! Recipients: the people of a tenant, by the client app's own ids, with
//! the indexes that find them for an event: attribute values (audiences)
//! and the types they subscribed to in their preferences.

use std::collections::BTreeSet;

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Db, Result, Tx, on_db, on_tx,
    sql::{Bind, Filter, bind_all, chunk_sizes, insert_rows, placeholders},
};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RecipientRow {
    pub tenant_id: String,
    pub id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    /// JSON object.
    pub attributes: String,
    /// JSON object: channel → address.
    pub addresses: String,
    /// JSON preferences document.
    pub preferences: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "tenant_id, id, email, phone, name, locale, timezone, attributes, addresses, preferences, created_at, updated_at";

/// An attribute filter: `name` equals the JSON value `value` (canonical
/// JSON text: `"admin"`, `3`, `true`), or contains it when the stored value
/// is an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeMatch {
    pub name: String,
    pub value: String,
}

/// The index rows of one recipient's attributes: every scalar value, and
/// every scalar element of an array value, as canonical JSON text.
pub fn attribute_index(attributes: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let serde_json::Value::Object(map) = attributes {
        for (name, value) in map {
            let mut push = |v: &serde_json::Value| {
                if !(v.is_object() || v.is_array() || v.is_null()) {
                    out.push((name.clone(), v.to_string()));
                }
            };
            match value {
                serde_json::Value::Array(items) => items.iter().for_each(&mut push),
                v => push(v),
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Adds one condition per filter on the recipients aliased `r`.
fn match_attributes(w: &mut Filter, filters: &[AttributeMatch]) {
    for f in filters {
        w.binds.push(Bind::Text(f.name.clone()));
        w.binds.push(Bind::Text(f.value.clone()));
        let (n, v) = (w.binds.len() - 1, w.binds.len());
        w.clauses.push(format!(
            "EXISTS (SELECT 1 FROM recipient_attributes a WHERE a.tenant_id = r.tenant_id \
             AND a.recipient_id = r.id AND a.name = ${n} AND a.value = ${v})"
        ));
    }
}

impl Db {
    /// Creates or replaces the given recipients of one tenant in one
    /// transaction (preferences and creation time are kept). Returns, per
    /// row, whether it was created.
    pub async fn upsert_recipients(&self, rows: &[RecipientRow]) -> Result<Vec<bool>> {
        let mut tx = self.begin().await?;
        let mut created = Vec::with_capacity(rows.len());
        for r in rows {
            let existed: Option<String> = on_tx!(&mut tx, conn => sqlx::query_scalar(
                "SELECT id FROM recipients WHERE tenant_id = $1 AND id = $2")
                .bind(&r.tenant_id).bind(&r.id).fetch_optional(&mut *conn).await?);
            let sql = "INSERT INTO recipients (tenant_id, id, email, phone, name, locale, timezone, attributes, addresses, \
                       preferences, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $10) \
                       ON CONFLICT (tenant_id, id) DO UPDATE SET email = excluded.email, phone = excluded.phone, \
                       name = excluded.name, locale = excluded.locale, timezone = excluded.timezone, \
                       attributes = excluded.attributes, addresses = excluded.addresses, updated_at = excluded.updated_at";
            on_tx!(&mut tx, conn => {
                sqlx::query(sql)
                    .bind(&r.tenant_id).bind(&r.id).bind(&r.email).bind(&r.phone).bind(&r.name).bind(&r.locale)
                    .bind(&r.timezone).bind(&r.attributes).bind(&r.addresses).bind(r.updated_at)
                    .execute(&mut *conn).await?;
                sqlx::query("DELETE FROM recipient_attributes WHERE tenant_id = $1 AND recipient_id = $2")
                    .bind(&r.tenant_id).bind(&r.id).execute(&mut *conn).await?;
            });
            let attributes: serde_json::Value = serde_json::from_str(&r.attributes).unwrap_or_default();
            let index = attribute_index(&attributes);
            let mut start = 0;
            for size in chunk_sizes(index.len()) {
                let sql =
                    insert_rows(tx.backend(), "recipient_attributes (tenant_id, name, value, recipient_id)", size, 4);
                on_tx!(&mut tx, conn => {
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (name, value) in &index[start..start + size] {
                        q = q.bind(&r.tenant_id).bind(name).bind(value).bind(&r.id);
                    }
                    q.execute(&mut *conn).await?;
                });
                start += size;
            }
            created.push(existed.is_none());
        }
        tx.commit().await?;
        Ok(created)
    }

    pub async fn get_recipient(&self, tenant: &str, id: &str) -> Result<Option<RecipientRow>> {
        let sql = format!("SELECT {COLUMNS} FROM recipients WHERE tenant_id = $1 AND id = $2");
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(pool).await?))
    }

    /// Oldest id first (ids are the app's own: ordered as text); every
    /// attribute filter must hold.
    pub async fn list_recipients(
        &self,
        tenant: &str,
        filters: &[AttributeMatch],
        email: Option<&str>,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RecipientRow>> {
        let mut w = Filter::for_tenant("r.tenant_id", tenant);
        match_attributes(&mut w, filters);
        w.push_opt_text("r.email = ?", email);
        w.push_opt_text("r.id > ?", after_id);
        let columns = COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {columns} FROM recipients r {}", w.finish("r.id", limit));
        Ok(on_db!(self, pool => bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &w.binds).fetch_all(pool).await?))
    }

    /// Deletes a recipient and everything that is theirs: preferences,
    /// indexes, push subscriptions and inbox items. Deliveries stay in the
    /// history. `false` when there was no such recipient.
    pub async fn delete_recipient(&self, tenant: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => {
            let n = sqlx::query("DELETE FROM recipients WHERE tenant_id = $1 AND id = $2")
                .bind(tenant).bind(id).execute(&mut *conn).await?.rows_affected();
            for table in ["recipient_attributes", "recipient_subscriptions", "push_subscriptions", "inbox_items"] {
                let sql = format!("DELETE FROM {table} WHERE tenant_id = $1 AND recipient_id = $2");
                sqlx::query(AssertSqlSafe(sql)).bind(tenant).bind(id).execute(&mut *conn).await?;
            }
            n
        });
        // The router caches which types have subscribers.
        tx.bump_config_version(tenant).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Replaces a recipient's preferences and the types they subscribe to.
    /// With `create`, a recipient that does not exist is created bare (the
    /// person's own inbox may come before the app registers them); without,
    /// `false` says there is no such recipient. The tenant's routing
    /// version moves when the set of subscribed types changes.
    pub async fn set_preferences(
        &self,
        tenant: &str,
        id: &str,
        preferences: &str,
        subscribed: &BTreeSet<String>,
        create: bool,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => sqlx::query("UPDATE recipients SET preferences = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant).bind(id).bind(preferences).bind(now).execute(&mut *conn).await?.rows_affected());
        if n == 0 {
            if !create {
                return Ok(false);
            }
            on_tx!(&mut tx, conn => sqlx::query(
                "INSERT INTO recipients (tenant_id, id, attributes, addresses, preferences, created_at, updated_at) \
                 VALUES ($1, $2, '{}', '{}', $3, $4, $4)")
                .bind(tenant).bind(id).bind(preferences).bind(now).execute(&mut *conn).await.map(|_| ())?);
        }
        let before: BTreeSet<String> = on_tx!(&mut tx, conn => sqlx::query_scalar(
            "SELECT event_type FROM recipient_subscriptions WHERE tenant_id = $1 AND recipient_id = $2")
            .bind(tenant).bind(id).fetch_all(&mut *conn).await?)
        .into_iter()
        .collect();
        if &before != subscribed {
            on_tx!(&mut tx, conn => {
                sqlx::query("DELETE FROM recipient_subscriptions WHERE tenant_id = $1 AND recipient_id = $2")
                    .bind(tenant).bind(id).execute(&mut *conn).await?;
                for t in subscribed {
                    sqlx::query("INSERT INTO recipient_subscriptions (tenant_id, event_type, recipient_id) VALUES ($1, $2, $3)")
                        .bind(tenant).bind(t).bind(id).execute(&mut *conn).await?;
                }
            });
            tx.bump_config_version(tenant).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Tenant-wide preference defaults of a role.
    pub async fn put_role_preferences(&self, tenant: &str, role: &str, preferences: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => sqlx::query(
            "INSERT INTO role_preferences (tenant_id, role, preferences, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, role) DO UPDATE SET preferences = excluded.preferences, updated_at = excluded.updated_at")
            .bind(tenant).bind(role).bind(preferences).bind(now).execute(conn).await.map(|_| ())?);
        tx.bump_config_version(tenant).await?;
        tx.commit().await
    }

    /// `(role, preferences JSON, updated_at)` of every role of the tenant.
    pub async fn list_role_preferences(&self, tenant: &str) -> Result<Vec<(String, String, i64)>> {
        let sql = "SELECT role, preferences, updated_at FROM role_preferences WHERE tenant_id = $1 ORDER BY role";
        Ok(on_db!(self, pool => sqlx::query_as(sql).bind(tenant).fetch_all(pool).await?))
    }

    pub async fn delete_role_preferences(&self, tenant: &str, role: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => sqlx::query("DELETE FROM role_preferences WHERE tenant_id = $1 AND role = $2")
            .bind(tenant).bind(role).execute(conn).await?.rows_affected());
        tx.bump_config_version(tenant).await?;
        tx.commit().await?;
        Ok(n == 1)
    }
}

impl Tx {
    /// The recipients among `ids` that exist in `tenant`.
    pub async fn recipients_by_ids(&mut self, tenant: &str, ids: &[String]) -> Result<Vec<RecipientRow>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut start = 0;
        for size in chunk_sizes(ids.len()) {
            let sql = format!(
                "SELECT {COLUMNS} FROM recipients WHERE tenant_id = {} AND id IN ({})",
                placeholders(self.backend(), 1, 1),
                placeholders(self.backend(), 2, size)
            );
            on_tx!(self, conn => {
                let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(tenant);
                for id in &ids[start..start + size] {
                    q = q.bind(id);
                }
                out.extend(q.fetch_all(&mut *conn).await?);
            });
            start += size;
        }
        Ok(out)
    }

    /// Ids of the recipients whose attributes match every filter (all
    /// recipients when `filters` is empty), at most `limit`.
    pub async fn audience(&mut self, tenant: &str, filters: &[AttributeMatch], limit: i64) -> Result<Vec<String>> {
        let mut w = Filter::for_tenant("r.tenant_id", tenant);
        match_attributes(&mut w, filters);
        let sql = format!("SELECT r.id FROM recipients r {}", w.finish("r.id", limit));
        Ok(
            on_tx!(self, conn => bind_all!(sqlx::query_scalar(AssertSqlSafe(sql)), &w.binds).fetch_all(&mut *conn).await?),
        )
    }

    /// Ids of the recipients who subscribed to `event_type`.
    pub async fn subscribers(&mut self, tenant: &str, event_type: &str) -> Result<Vec<String>> {
        let sql = "SELECT recipient_id FROM recipient_subscriptions WHERE tenant_id = $1 AND event_type = $2 ORDER BY recipient_id";
        Ok(on_tx!(self, conn => sqlx::query_scalar(sql).bind(tenant).bind(event_type).fetch_all(&mut *conn).await?))
    }

    /// Every event type some recipient of `tenant` subscribed to.
    pub async fn subscribed_types(&mut self, tenant: &str) -> Result<Vec<String>> {
        let sql = "SELECT DISTINCT event_type FROM recipient_subscriptions WHERE tenant_id = $1";
        Ok(on_tx!(self, conn => sqlx::query_scalar(sql).bind(tenant).fetch_all(&mut *conn).await?))
    }

    /// `(role, preferences JSON)` of every role of the tenant.
    pub async fn role_preferences(&mut self, tenant: &str) -> Result<Vec<(String, String)>> {
        let sql = "SELECT role, preferences FROM role_preferences WHERE tenant_id = $1";
        Ok(on_tx!(self, conn => sqlx::query_as(sql).bind(tenant).fetch_all(&mut *conn).await?))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn attribute_index_takes_scalars_and_array_elements() {
        let index =
            attribute_index(&json!({"role": "admin", "teams": ["a", "b", "a"], "n": 3, "x": {"y": 1}, "z": null}));
        let want: Vec<(String, String)> = [("n", "3"), ("role", "\"admin\""), ("teams", "\"a\""), ("teams", "\"b\"")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(index, want);
    }
}
