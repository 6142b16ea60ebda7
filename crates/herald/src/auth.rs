//! Who is calling: the admin token (acting on the `Herald-Tenant` tenant) or
//! a tenant API key with scope `full` or `send`. Extractors, not checks at
//! the top of handlers.

use std::time::{Duration, Instant};

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{
    error::ApiError,
    secrets,
    state::{AdminToken, AppState},
};

/// How long a looked-up API key is trusted without reading the table again.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Full,
    Send,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Scope::Full),
            "send" => Some(Scope::Send),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Send => "send",
        }
    }
}

/// An authenticated caller and the tenant it acts on.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: String,
    pub admin: bool,
    pub scope: Scope,
}

/// Any authenticated caller, including `send`-scoped keys (for posting events).
pub struct SendAuth(pub Caller);

/// A caller allowed to read and change the tenant's configuration: the admin
/// or a `full` key. A `send` key gets 403.
pub struct TenantAuth(pub Caller);

/// The admin token only (tenant administration).
pub struct AdminAuth;

impl FromRequestParts<AppState> for SendAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).await.map(SendAuth)
    }
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        if caller.scope != Scope::Full {
            return Err(ApiError::Forbidden("this API key has scope `send`: it may only post events".into()));
        }
        Ok(TenantAuth(caller))
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if authenticate(parts, state).await?.admin {
            Ok(AdminAuth)
        } else {
            Err(ApiError::Forbidden("only the admin token may manage tenants".into()))
        }
    }
}

pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
    if token.starts_with("hk_") {
        return api_key(token, state).await;
    }
    let ok = match &state.admin {
        AdminToken::Configured(expected) => secrets::ct_eq(token, expected),
        AdminToken::Hashed(hash) => secrets::ct_eq(&secrets::token_hash(token), hash),
    };
    if !ok {
        return Err(ApiError::Unauthorized);
    }
    let tenant = match parts.headers.get("herald-tenant") {
        Some(v) => v.to_str().map_err(|_| ApiError::invalid("Herald-Tenant", "must be ASCII"))?.to_owned(),
        None => "default".to_owned(),
    };
    if !tenant_exists(state, &tenant).await? {
        return Err(ApiError::NotFound(format!("tenant `{tenant}` (from the Herald-Tenant header) does not exist")));
    }
    Ok(Caller { tenant, admin: true, scope: Scope::Full })
}

async fn api_key(token: &str, state: &AppState) -> Result<Caller, ApiError> {
    let hash = state.key.api_key_hash(token);
    if let Some((caller, at)) = state.key_cache.lock().expect("key cache lock").get(&hash)
        && at.elapsed() < KEY_CACHE_TTL
    {
        return Ok(caller.clone());
    }
    let (row, stored) = state.db.find_api_key(&hash).await?.ok_or(ApiError::Unauthorized)?;
    if !secrets::ct_eq(&stored, &hash) {
        return Err(ApiError::Unauthorized);
    }
    let scope = Scope::parse(&row.scope).unwrap_or(Scope::Send);
    let caller = Caller { tenant: row.tenant_id, admin: false, scope };
    state.key_cache.lock().expect("key cache lock").insert(hash, (caller.clone(), Instant::now()));
    Ok(caller)
}

async fn tenant_exists(state: &AppState, tenant: &str) -> Result<bool, ApiError> {
    if state.tenants.read().expect("tenant set lock").contains(tenant) {
        return Ok(true);
    }
    let found = state.db.get_tenant(tenant).await?.is_some();
    if found {
        state.tenants.write().expect("tenant set lock").insert(tenant.to_owned());
    }
    Ok(found)
}
