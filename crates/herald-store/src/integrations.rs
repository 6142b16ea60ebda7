//! Integrations: a tenant's configured destinations. `config` is JSON text
//! whose secret fields the server has already encrypted.

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Db, Result, on_db, on_tx, on_write,
    sql::{Filter, bind_all},
};

#[derive(Debug, Clone, FromRow)]
pub struct IntegrationRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub config: String,
    pub enabled: bool,
    /// People's channels of this kind go through this integration.
    pub is_default: bool,
    /// Why Herald disabled it (a webhook endpoint answered 410); cleared
    /// when it is enabled again.
    pub disabled_reason: Option<String>,
    /// Since when every attempt to it has failed (webhooks only).
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, tenant_id, name, type, config, enabled, is_default, disabled_reason, failing_since, created_at, updated_at";

impl Db {
    pub async fn insert_integration(&self, r: &IntegrationRow) -> Result<()> {
        let sql = "INSERT INTO integrations (id, tenant_id, name, type, config, enabled, is_default, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => sqlx::query(sql)
            .bind(&r.id).bind(&r.tenant_id).bind(&r.name).bind(&r.kind).bind(&r.config)
            .bind(r.enabled).bind(r.is_default).bind(r.created_at).bind(r.updated_at)
            .execute(conn).await.map(|_| ())?);
        tx.only_default(r).await?;
        tx.bump_config_version(&r.tenant_id).await?;
        tx.commit().await
    }

    /// Replaces name, config and enabled of an integration of `r.tenant_id`
    /// (enabling it clears why it was disabled; any save restarts the
    /// failing clock); `false` when it does not exist there.
    pub async fn update_integration(&self, r: &IntegrationRow) -> Result<bool> {
        let sql = "UPDATE integrations SET name = $3, config = $4, enabled = $5, is_default = $6, updated_at = $7, \
                   disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END, failing_since = NULL \
                   WHERE tenant_id = $1 AND id = $2";
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => sqlx::query(sql)
            .bind(&r.tenant_id).bind(&r.id).bind(&r.name).bind(&r.config).bind(r.enabled).bind(r.is_default).bind(r.updated_at)
            .execute(conn).await?.rows_affected());
        tx.only_default(r).await?;
        tx.bump_config_version(&r.tenant_id).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Disables an enabled integration on Herald's own decision, saying why;
    /// routing stops at once (the tenant's config version moves), pending
    /// deliveries to it are skipped. `false` when it was not enabled.
    pub async fn disable_integration(&self, tenant: &str, id: &str, reason: &str, at: i64) -> Result<bool> {
        let sql = "UPDATE integrations SET enabled = $3, disabled_reason = $4, \
                   updated_at = CASE WHEN updated_at < $5 THEN $5 ELSE updated_at + 1 END \
                   WHERE tenant_id = $1 AND id = $2 AND enabled = $6";
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => sqlx::query(sql)
            .bind(tenant).bind(id).bind(false).bind(reason).bind(at).bind(true)
            .execute(conn).await?.rows_affected());
        if n == 1 {
            tx.bump_config_version(tenant).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Starts an integration's failing clock at `at`, unless it runs already.
    pub async fn integration_failing(&self, tenant: &str, id: &str, at: i64) -> Result<()> {
        let sql = "UPDATE integrations SET failing_since = $3 \
                   WHERE tenant_id = $1 AND id = $2 AND failing_since IS NULL";
        on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(id).bind(at).execute(pool).await.map(|_| ())?);
        Ok(())
    }

    /// Stops an integration's failing clock: an attempt succeeded.
    pub async fn integration_recovered(&self, tenant: &str, id: &str) -> Result<()> {
        let sql = "UPDATE integrations SET failing_since = NULL \
                   WHERE tenant_id = $1 AND id = $2 AND failing_since IS NOT NULL";
        on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(id).execute(pool).await.map(|_| ())?);
        Ok(())
    }

    pub async fn get_integration(&self, tenant: &str, id: &str) -> Result<Option<IntegrationRow>> {
        let sql = format!("SELECT {COLUMNS} FROM integrations WHERE tenant_id = $1 AND id = $2");
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(pool).await?))
    }

    /// Oldest first; `after_id` is the cursor.
    pub async fn list_integrations(
        &self,
        tenant: &str,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<IntegrationRow>> {
        let mut w = Filter::for_tenant("tenant_id", tenant);
        w.push_opt_text("id > ?", after_id);
        let sql = format!("SELECT {COLUMNS} FROM integrations {}", w.finish("id", limit));
        Ok(on_db!(self, pool => bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &w.binds).fetch_all(pool).await?))
    }

    /// Every integration of a tenant (for the router).
    pub async fn all_integrations(&self, tenant: &str) -> Result<Vec<IntegrationRow>> {
        self.list_integrations(tenant, None, i64::MAX).await
    }

    /// Deletes an integration and removes it from the tenant's rules, in one
    /// transaction; pending deliveries to it are cancelled.
    pub async fn delete_integration(&self, tenant: &str, id: &str, now: i64) -> Result<bool> {
        let rules = self.rules_using_integration(tenant, id).await?;
        let mut tx = self.begin().await?;
        let deleted = on_tx!(&mut tx, conn => {
            let n = sqlx::query("DELETE FROM integrations WHERE tenant_id = $1 AND id = $2")
                .bind(tenant).bind(id).execute(&mut *conn).await?.rows_affected();
            for (rule_id, ids) in &rules {
                let kept: Vec<&String> = ids.iter().filter(|i| *i != id).collect();
                let json = serde_json::to_string(&kept).expect("a list of strings serialises");
                sqlx::query("UPDATE rules SET integration_ids = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant).bind(rule_id).bind(json).bind(now).execute(&mut *conn).await?;
            }
            sqlx::query("UPDATE deliveries SET status = 'cancelled', skip_reason = 'integration deleted', lease_token = NULL, updated_at = $3 \
                         WHERE tenant_id = $1 AND integration_id = $2 AND status = 'pending'")
                .bind(tenant).bind(id).bind(now).execute(&mut *conn).await?;
            n == 1
        });
        tx.bump_config_version(tenant).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

impl crate::Tx {
    /// A default integration is the only default of its kind in its tenant.
    async fn only_default(&mut self, r: &IntegrationRow) -> Result<()> {
        if r.is_default {
            let sql = "UPDATE integrations SET is_default = FALSE WHERE tenant_id = $1 AND type = $2 AND id <> $3 AND is_default";
            on_tx!(self, conn => sqlx::query(sql).bind(&r.tenant_id).bind(&r.kind).bind(&r.id).execute(conn).await.map(|_| ())?);
        }
        Ok(())
    }
}
