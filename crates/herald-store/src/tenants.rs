//! Tenants, their API keys, and the server's own settings.

use sqlx::FromRow;

use crate::{Db, Result, on_db, on_write};

#[derive(Debug, Clone, FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scope: String,
    pub key_prefix: String,
    pub created_at: i64,
}

impl Db {
    /// Creates a tenant; `false` when the id is taken.
    pub async fn create_tenant(&self, row: &TenantRow) -> Result<bool> {
        let sql = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";
        let done = on_write!(self, pool => sqlx::query(sql).bind(&row.id).bind(&row.name).bind(row.created_at).execute(pool).await?.rows_affected());
        Ok(done == 1)
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Option<TenantRow>> {
        let sql = "SELECT id, name, created_at FROM tenants WHERE id = $1";
        Ok(on_db!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?))
    }

    /// The tenant's sealed recipient-token signing secret, if one was made.
    pub async fn tenant_signing_secret(&self, id: &str) -> Result<Option<String>> {
        let sql = "SELECT signing_secret FROM tenants WHERE id = $1";
        let found: Option<Option<String>> =
            on_db!(self, pool => sqlx::query_scalar(sql).bind(id).fetch_optional(pool).await?);
        Ok(found.flatten())
    }

    /// Stores `sealed` as the tenant's signing secret unless one exists
    /// (`replace` overwrites: a rotation). Returns the stored secret.
    pub async fn init_tenant_signing_secret(&self, id: &str, sealed: &str, replace: bool) -> Result<Option<String>> {
        let sql = if replace {
            "UPDATE tenants SET signing_secret = $2 WHERE id = $1"
        } else {
            "UPDATE tenants SET signing_secret = $2 WHERE id = $1 AND signing_secret IS NULL"
        };
        on_write!(self, pool => sqlx::query(sql).bind(id).bind(sealed).execute(pool).await.map(|_| ())?);
        self.tenant_signing_secret(id).await
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRow>> {
        let sql = "SELECT id, name, created_at FROM tenants ORDER BY id";
        Ok(on_db!(self, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }

    pub async fn create_api_key(&self, row: &ApiKeyRow, key_hash: &str) -> Result<()> {
        let sql = "INSERT INTO api_keys (id, tenant_id, name, scope, key_hash, key_prefix, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on_write!(self, pool => sqlx::query(sql)
            .bind(&row.id).bind(&row.tenant_id).bind(&row.name).bind(&row.scope)
            .bind(key_hash).bind(&row.key_prefix).bind(row.created_at)
            .execute(pool).await.map(|_| ())?);
        Ok(())
    }

    /// Finds a key by its keyed hash, with the hash for a constant-time check.
    pub async fn find_api_key(&self, key_hash: &str) -> Result<Option<(ApiKeyRow, String)>> {
        #[derive(FromRow)]
        struct Found {
            #[sqlx(flatten)]
            row: ApiKeyRow,
            key_hash: String,
        }
        let sql =
            "SELECT id, tenant_id, name, scope, key_prefix, created_at, key_hash FROM api_keys WHERE key_hash = $1";
        let found: Option<Found> = on_db!(self, pool => sqlx::query_as(sql).bind(key_hash).fetch_optional(pool).await?);
        Ok(found.map(|f| (f.row, f.key_hash)))
    }

    pub async fn list_api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRow>> {
        let sql =
            "SELECT id, tenant_id, name, scope, key_prefix, created_at FROM api_keys WHERE tenant_id = $1 ORDER BY id";
        Ok(on_db!(self, pool => sqlx::query_as(sql).bind(tenant).fetch_all(pool).await?))
    }

    /// Deletes a key of `tenant`; `false` when there is none with that id.
    pub async fn delete_api_key(&self, tenant: &str, id: &str) -> Result<bool> {
        let sql = "DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2";
        let n = on_write!(self, pool => sqlx::query(sql).bind(tenant).bind(id).execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let sql = "SELECT value FROM server_settings WHERE key = $1";
        Ok(on_db!(self, pool => sqlx::query_scalar(sql).bind(key).fetch_optional(pool).await?))
    }

    /// Stores a setting unless one exists; returns the value now stored (so
    /// two nodes starting together agree on the first one written).
    pub async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        let sql = "INSERT INTO server_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
        on_write!(self, pool => sqlx::query(sql).bind(key).bind(value).execute(pool).await.map(|_| ())?);
        Ok(self.get_setting(key).await?.unwrap_or_else(|| value.to_owned()))
    }
}

/// An integration as routing sees it.
#[derive(Debug, Clone, FromRow)]
pub struct RoutingTarget {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    /// The integration of its kind that people's channels use.
    pub is_default: bool,
}

impl crate::Tx {
    /// The config versions of `tenants`, read inside this transaction.
    pub async fn config_versions(&mut self, tenants: &[&str]) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT id, config_version FROM tenants WHERE id IN ({})",
            crate::sql::placeholders(self.backend(), 1, tenants.len())
        );
        Ok(crate::on_tx!(self, conn => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for t in tenants {
                q = q.bind(*t);
            }
            q.fetch_all(conn).await?
        }))
    }

    /// A tenant's rules and integrations as of this transaction.
    pub async fn routing_config(&mut self, tenant: &str) -> Result<(Vec<crate::rules::RuleRow>, Vec<RoutingTarget>)> {
        let rules = format!("SELECT {} FROM rules WHERE tenant_id = $1 ORDER BY id", crate::rules::COLUMNS);
        let targets = "SELECT id, type, enabled, is_default FROM integrations WHERE tenant_id = $1 ORDER BY id";
        Ok(crate::on_tx!(self, conn => {
            let r = sqlx::query_as(sqlx::AssertSqlSafe(rules.clone())).bind(tenant).fetch_all(&mut *conn).await?;
            let t = sqlx::query_as(targets).bind(tenant).fetch_all(&mut *conn).await?;
            (r, t)
        }))
    }

    /// Marks a change of the tenant's rules or integrations, so cached
    /// routing configs are reloaded.
    pub(crate) async fn bump_config_version(&mut self, tenant: &str) -> Result<()> {
        let sql = "UPDATE tenants SET config_version = config_version + 1 WHERE id = $1";
        crate::on_tx!(self, conn => sqlx::query(sql).bind(tenant).execute(conn).await.map(|_| ())?);
        Ok(())
    }
}
