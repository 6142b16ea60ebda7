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
    /// failing clock), if it is still as read at `read_at` (its
    /// `updated_at` then): `false` when it does not exist there or changed
    /// meanwhile (Herald may have disabled it).
    pub async fn update_integration(&self, r: &IntegrationRow, read_at: i64) -> Result<bool> {
        let sql = "UPDATE integrations SET name = $3, config = $4, enabled = $5, is_default = $6, updated_at = $7, \
                   disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END, failing_since = NULL \
                   WHERE tenant_id = $1 AND id = $2 AND updated_at = $8";
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => sqlx::query(sql)
            .bind(&r.tenant_id).bind(&r.id).bind(&r.name).bind(&r.config).bind(r.enabled).bind(r.is_default).bind(r.updated_at)
            .bind(read_at)
            .execute(conn).await?.rows_affected());
        tx.only_default(r).await?;
        tx.bump_config_version(&r.tenant_id).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Disables an enabled integration on Herald's own decision, saying why;
    /// routing stops at once (the tenant's config version moves), pending
    /// deliveries to it are skipped. Only if it is still the integration
    /// the attempt used (`updated_at` as claimed: an admin's save since, a
    /// new URL say, is not judged by the old one's answers) and, with
    /// `failing_before`, its failing clock still started by then (a success
    /// since stopped it). `false` when nothing was disabled.
    pub async fn disable_integration(
        &self,
        tenant: &str,
        id: &str,
        reason: &str,
        at: i64,
        claimed_at: i64,
        failing_before: Option<i64>,
    ) -> Result<bool> {
        let clock =
            if failing_before.is_some() { " AND failing_since IS NOT NULL AND failing_since <= $8" } else { "" };
        let sql = format!(
            "UPDATE integrations SET enabled = $3, disabled_reason = $4, \
             updated_at = CASE WHEN updated_at < $5 THEN $5 ELSE updated_at + 1 END \
             WHERE tenant_id = $1 AND id = $2 AND enabled = $6 AND updated_at = $7{clock}"
        );
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => {
            let query = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(tenant).bind(id).bind(false).bind(reason).bind(at).bind(true).bind(claimed_at);
            match failing_before {
                Some(before) => query.bind(before),
                None => query,
            }
            .execute(conn).await?.rows_affected()
        });
        if n == 1 {
            tx.bump_config_version(tenant).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Starts an integration's failing clock at `at`, unless it runs
    /// already or the integration changed since the attempt's claim.
    pub async fn integration_failing(&self, tenant: &str, id: &str, at: i64, claimed_at: i64) -> Result<()> {
        let sql = "UPDATE integrations SET failing_since = $3 \
                   WHERE tenant_id = $1 AND id = $2 AND failing_since IS NULL AND updated_at = $4";
        on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(id).bind(at).bind(claimed_at).execute(pool).await.map(|_| ())?);
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn db_with_hook() -> (Db, std::path::PathBuf, IntegrationRow) {
        let dir = std::env::temp_dir().join(format!("herald-store-int-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::connect(&Db::sqlite_url_in(&dir)).await.unwrap();
        db.migrate().await.unwrap();
        let row = IntegrationRow {
            id: "int_1".into(),
            tenant_id: "default".into(),
            name: "hook".into(),
            kind: "webhook".into(),
            config: "{}".into(),
            enabled: true,
            is_default: false,
            disabled_reason: None,
            failing_since: None,
            created_at: 1_000,
            updated_at: 1_000,
        };
        db.insert_integration(&row).await.unwrap();
        (db, dir, row)
    }

    /// Herald's own decisions apply only to the integration the attempt
    /// used, and the failing clock in the database has the last word.
    #[tokio::test]
    async fn disabling_is_judged_against_the_integration_as_claimed() {
        let (db, dir, mut row) = db_with_hook().await;
        // An admin saved it since the claim (at 1,000): not disabled.
        row.updated_at = 2_000;
        assert!(db.update_integration(&row, 1_000).await.unwrap());
        assert!(!db.disable_integration("default", "int_1", "gone", 3_000, 1_000, None).await.unwrap());
        // A stale save (read at 1,000) is refused too.
        row.updated_at = 2_500;
        assert!(!db.update_integration(&row, 1_000).await.unwrap());

        // The clock: started at 3,000 by an attempt claimed at 2,000; a
        // limit that wants it started by 2,900 does not disable.
        db.integration_failing("default", "int_1", 3_000, 2_000).await.unwrap();
        let stored = db.get_integration("default", "int_1").await.unwrap().unwrap();
        assert_eq!(stored.failing_since, Some(3_000));
        assert!(!db.disable_integration("default", "int_1", "failing", 9_000, 2_000, Some(2_900)).await.unwrap());
        // A success stopped it: nothing to judge.
        db.integration_recovered("default", "int_1").await.unwrap();
        assert!(!db.disable_integration("default", "int_1", "failing", 9_000, 2_000, Some(5_000)).await.unwrap());
        // Running since 3,000 and the limit wants 5,000: disabled, said why.
        db.integration_failing("default", "int_1", 3_000, 2_000).await.unwrap();
        assert!(db.disable_integration("default", "int_1", "failing", 9_000, 2_000, Some(5_000)).await.unwrap());
        let stored = db.get_integration("default", "int_1").await.unwrap().unwrap();
        assert_eq!(
            (stored.enabled, stored.disabled_reason.as_deref(), stored.updated_at),
            (false, Some("failing"), 9_000)
        );

        // Enabling it again clears the reason and the clock.
        row.enabled = true;
        row.updated_at = 9_500;
        assert!(db.update_integration(&row, 9_000).await.unwrap());
        let stored = db.get_integration("default", "int_1").await.unwrap().unwrap();
        assert_eq!((stored.enabled, stored.disabled_reason, stored.failing_since), (true, None, None));
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
