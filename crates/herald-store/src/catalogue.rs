//! The catalogue of a tenant: notification types (label, default channels,
//! required…) and templates per type, channel and locale. Every write moves
//! the tenant's routing version: the router caches both.

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Db, Result, Tx, on_db, on_tx,
    sql::{Filter, bind_all},
};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct NotificationTypeRow {
    pub tenant_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub label: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub default_enabled: bool,
    /// JSON array of channel names.
    pub channels: String,
    pub severity: Option<String>,
    pub required: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

const TYPE_COLUMNS: &str = "tenant_id, type, label, description, category, default_enabled, channels, severity, required, created_at, updated_at";

/// A template of one type, channel and locale (`""` is the default variant).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TemplateRow {
    pub tenant_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub channel: String,
    pub locale: String,
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub updated_at: i64,
}

const TEMPLATE_COLUMNS: &str =
    "tenant_id, type, channel, locale, subject, text_body, html_body, title, body, updated_at";

impl Tx {
    /// Creates or replaces a notification type (its creation time is kept).
    pub async fn upsert_notification_type(&mut self, r: &NotificationTypeRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO notification_types ({TYPE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (tenant_id, type) DO UPDATE SET label = excluded.label, description = excluded.description, \
             category = excluded.category, default_enabled = excluded.default_enabled, channels = excluded.channels, \
             severity = excluded.severity, required = excluded.required, updated_at = excluded.updated_at"
        );
        on_tx!(self, conn => sqlx::query(AssertSqlSafe(sql))
            .bind(&r.tenant_id).bind(&r.kind).bind(&r.label).bind(&r.description).bind(&r.category)
            .bind(r.default_enabled).bind(&r.channels).bind(&r.severity).bind(r.required)
            .bind(r.created_at).bind(r.updated_at)
            .execute(&mut *conn).await.map(|_| ())?);
        Ok(())
    }

    /// Creates or replaces a template.
    pub async fn upsert_template(&mut self, r: &TemplateRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO templates ({TEMPLATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (tenant_id, type, channel, locale) DO UPDATE SET subject = excluded.subject, \
             text_body = excluded.text_body, html_body = excluded.html_body, title = excluded.title, \
             body = excluded.body, updated_at = excluded.updated_at"
        );
        on_tx!(self, conn => sqlx::query(AssertSqlSafe(sql))
            .bind(&r.tenant_id).bind(&r.kind).bind(&r.channel).bind(&r.locale).bind(&r.subject)
            .bind(&r.text_body).bind(&r.html_body).bind(&r.title).bind(&r.body).bind(r.updated_at)
            .execute(&mut *conn).await.map(|_| ())?);
        Ok(())
    }

    /// Every notification type of the tenant (for the router's cache).
    pub async fn all_notification_types(&mut self, tenant: &str) -> Result<Vec<NotificationTypeRow>> {
        let sql = format!("SELECT {TYPE_COLUMNS} FROM notification_types WHERE tenant_id = $1");
        Ok(on_tx!(self, conn => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).fetch_all(&mut *conn).await?))
    }

    /// Every template of the tenant (for the router's cache).
    pub async fn all_templates(&mut self, tenant: &str) -> Result<Vec<TemplateRow>> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE tenant_id = $1");
        Ok(on_tx!(self, conn => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).fetch_all(&mut *conn).await?))
    }
}

impl Db {
    /// Every template of the tenant.
    pub async fn all_templates(&self, tenant: &str) -> Result<Vec<TemplateRow>> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE tenant_id = $1");
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).fetch_all(pool).await?))
    }

    /// Stores types and templates together (an import): all or nothing.
    pub async fn import_catalogue(
        &self,
        tenant: &str,
        types: &[NotificationTypeRow],
        templates: &[TemplateRow],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for t in types {
            tx.upsert_notification_type(t).await?;
        }
        for t in templates {
            tx.upsert_template(t).await?;
        }
        tx.bump_config_version(tenant).await?;
        tx.commit().await
    }

    pub async fn get_notification_type(&self, tenant: &str, kind: &str) -> Result<Option<NotificationTypeRow>> {
        let sql = format!("SELECT {TYPE_COLUMNS} FROM notification_types WHERE tenant_id = $1 AND type = $2");
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(kind).fetch_optional(pool).await?))
    }

    /// Ordered by type; `after` is the cursor.
    pub async fn list_notification_types(
        &self,
        tenant: &str,
        category: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<NotificationTypeRow>> {
        let mut w = Filter::for_tenant("tenant_id", tenant);
        w.push_opt_text("category = ?", category);
        w.push_opt_text("type > ?", after);
        let sql = format!("SELECT {TYPE_COLUMNS} FROM notification_types {}", w.finish("type", limit));
        Ok(on_db!(self, pool => bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &w.binds).fetch_all(pool).await?))
    }

    /// Deletes a type and its templates.
    pub async fn delete_notification_type(&self, tenant: &str, kind: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => {
            let n = sqlx::query("DELETE FROM notification_types WHERE tenant_id = $1 AND type = $2")
                .bind(tenant).bind(kind).execute(&mut *conn).await?.rows_affected();
            sqlx::query("DELETE FROM templates WHERE tenant_id = $1 AND type = $2")
                .bind(tenant).bind(kind).execute(&mut *conn).await?;
            n
        });
        tx.bump_config_version(tenant).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn put_notification_type(&self, r: &NotificationTypeRow) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.upsert_notification_type(r).await?;
        tx.bump_config_version(&r.tenant_id).await?;
        tx.commit().await
    }

    pub async fn put_template(&self, r: &TemplateRow) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.upsert_template(r).await?;
        tx.bump_config_version(&r.tenant_id).await?;
        tx.commit().await
    }

    pub async fn get_template(
        &self,
        tenant: &str,
        kind: &str,
        channel: &str,
        locale: &str,
    ) -> Result<Option<TemplateRow>> {
        let sql = format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE tenant_id = $1 AND type = $2 AND channel = $3 AND locale = $4"
        );
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(kind).bind(channel).bind(locale)
            .fetch_optional(pool).await?))
    }

    /// Every locale variant of one type and channel.
    pub async fn template_variants(&self, tenant: &str, kind: &str, channel: &str) -> Result<Vec<TemplateRow>> {
        let sql = format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE tenant_id = $1 AND type = $2 AND channel = $3 ORDER BY locale"
        );
        Ok(
            on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(kind).bind(channel).fetch_all(pool).await?),
        )
    }

    pub async fn delete_template(&self, tenant: &str, kind: &str, channel: &str, locale: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => sqlx::query(
            "DELETE FROM templates WHERE tenant_id = $1 AND type = $2 AND channel = $3 AND locale = $4")
            .bind(tenant).bind(kind).bind(channel).bind(locale).execute(&mut *conn).await?.rows_affected());
        tx.bump_config_version(tenant).await?;
        tx.commit().await?;
        Ok(n == 1)
    }
}
