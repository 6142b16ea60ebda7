//! The HTTP API: one router per resource, merged here.

use axum::Router;

use crate::{error::ApiError, state::AppState};

mod admin;
pub mod deliveries;
mod events;
mod integrations;
mod ops;
pub mod page;
mod push;
mod rules;
pub mod test_send;

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ops::routes())
        .merge(events::routes())
        .merge(integrations::routes())
        .merge(rules::routes())
        .merge(deliveries::routes())
        .merge(admin::routes())
        .merge(push::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}
