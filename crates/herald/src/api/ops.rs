//! Operations: `/health`, `/ready`, `/metrics`, `/v1/stats`.

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde_json::{Value, json};

use crate::{
    auth::TenantAuth,
    error::ApiResult,
    state::{AppState, now_ms},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/stats", get(stats))
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "shutting down"})));
    }
    if state.db.ping().await {
        (StatusCode::OK, Json(json!({"status": "ready", "database": "ok"})))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not ready", "database": "unreachable"})))
    }
}

/// Queue gauges are read from the database at scrape time, so every node
/// reports the shared queue and nothing drifts.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let now = now_ms();
    if let Ok(q) = state.db.queue_stats(now).await {
        metrics::gauge!("herald_queue_depth").set(q.depth as f64);
        let age = q.oldest_due_at.map(|due| (now - due).max(0) as f64 / 1000.0).unwrap_or(0.0);
        metrics::gauge!("herald_queue_oldest_due_age_seconds").set(age);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn stats(State(state): State<AppState>, TenantAuth(caller): TenantAuth) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let day_start = now - now.rem_euclid(86_400_000);
    let integrations = state.db.all_integrations(&caller.tenant).await?.len();
    let rules = state.db.list_rules(&caller.tenant, None, i64::MAX).await?;
    let counts = state.db.delivery_counts_since(&caller.tenant, day_start).await?;
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map(|(_, n)| *n).unwrap_or(0);
    let queue = state.db.queue_stats(now).await?;
    Ok(Json(json!({
        "integrations": integrations,
        "active_rules": rules.iter().filter(|r| r.enabled).count(),
        "sent_today": count("sent"),
        "failed_today": count("failed"),
        "queue_depth": queue.depth,
    })))
}
