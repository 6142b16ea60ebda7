//! The HTTP API: one router per resource, merged here.

use axum::Router;

use crate::{error::ApiError, state::AppState};

mod admin;
mod catalogue;
pub mod deliveries;
mod events;
pub mod inbox;
mod inbox_live;
mod integrations;
mod ops;
pub mod page;
mod preferences;
mod preview;
mod push;
mod recipient_tokens;
mod recipients;
mod rules;
mod templates;
pub mod test_send;
mod websocket;

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
        .merge(recipient_tokens::routes())
        .merge(inbox::routes())
        .merge(inbox_live::routes())
        .merge(recipients::routes())
        .merge(preferences::routes())
        .merge(catalogue::routes())
        .merge(templates::routes())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}
