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
