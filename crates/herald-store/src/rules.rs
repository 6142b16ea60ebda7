//! Rules: which events go to which integrations.

use sqlx::{AssertSqlSafe, FromRow};

use crate::{
    Db, Result, from_json, on_db, on_tx,
    sql::{Filter, bind_all},
};

#[derive(Debug, Clone, FromRow)]
pub struct RuleRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub enabled: bool,
    /// JSON array of patterns.
    pub event_types: String,
    pub condition: Option<String>,
    /// JSON array of integration ids.
    pub integration_ids: String,
    /// JSON audience: `{"all": true}` or `{"attributes": {…}}`.
    pub audience: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RuleRow {
    pub fn event_types(&self) -> Result<Vec<String>> {
        from_json("rules.event_types", &self.event_types)
    }

    pub fn integration_ids(&self) -> Result<Vec<String>> {
        from_json("rules.integration_ids", &self.integration_ids)
    }
}

pub(crate) const COLUMNS: &str =
    "id, tenant_id, name, enabled, event_types, condition, integration_ids, audience, created_at, updated_at";

impl Db {
    pub async fn insert_rule(&self, r: &RuleRow) -> Result<()> {
        let sql = "INSERT INTO rules (id, tenant_id, name, enabled, event_types, condition, integration_ids, audience, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => sqlx::query(sql)
            .bind(&r.id).bind(&r.tenant_id).bind(&r.name).bind(r.enabled).bind(&r.event_types)
            .bind(&r.condition).bind(&r.integration_ids).bind(&r.audience).bind(r.created_at).bind(r.updated_at)
            .execute(conn).await.map(|_| ())?);
        tx.bump_config_version(&r.tenant_id).await?;
        tx.commit().await
    }

    /// `false` when the rule does not exist in `r.tenant_id`.
    pub async fn update_rule(&self, r: &RuleRow) -> Result<bool> {
        let sql = "UPDATE rules SET name = $3, enabled = $4, event_types = $5, condition = $6, integration_ids = $7, audience = $8, \
                   updated_at = $9 WHERE tenant_id = $1 AND id = $2";
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => sqlx::query(sql)
            .bind(&r.tenant_id).bind(&r.id).bind(&r.name).bind(r.enabled).bind(&r.event_types)
            .bind(&r.condition).bind(&r.integration_ids).bind(&r.audience).bind(r.updated_at)
            .execute(conn).await?.rows_affected());
        tx.bump_config_version(&r.tenant_id).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn get_rule(&self, tenant: &str, id: &str) -> Result<Option<RuleRow>> {
        let sql = format!("SELECT {COLUMNS} FROM rules WHERE tenant_id = $1 AND id = $2");
        Ok(on_db!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(tenant).bind(id).fetch_optional(pool).await?))
    }

    /// Oldest first; `after_id` is the cursor.
    pub async fn list_rules(&self, tenant: &str, after_id: Option<&str>, limit: i64) -> Result<Vec<RuleRow>> {
        let mut w = Filter::for_tenant("tenant_id", tenant);
        w.push_opt_text("id > ?", after_id);
        let sql = format!("SELECT {COLUMNS} FROM rules {}", w.finish("id", limit));
        Ok(on_db!(self, pool => bind_all!(sqlx::query_as(AssertSqlSafe(sql)), &w.binds).fetch_all(pool).await?))
    }

    pub async fn delete_rule(&self, tenant: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, conn => sqlx::query("DELETE FROM rules WHERE tenant_id = $1 AND id = $2")
            .bind(tenant).bind(id).execute(conn).await?.rows_affected());
        tx.bump_config_version(tenant).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// (rule id, its integration ids) of every rule of `tenant` naming `integration`.
    pub(crate) async fn rules_using_integration(
        &self,
        tenant: &str,
        integration: &str,
    ) -> Result<Vec<(String, Vec<String>)>> {
        let mut out = Vec::new();
        for rule in self.list_rules(tenant, None, i64::MAX).await? {
            let ids = rule.integration_ids()?;
            if ids.iter().any(|i| i == integration) {
                out.push((rule.id, ids));
            }
        }
        Ok(out)
    }
}
