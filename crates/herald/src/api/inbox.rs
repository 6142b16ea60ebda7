//! `/v1/inbox`: a recipient's own in-app notifications, opened with a
//! recipient token. Another recipient's item is a 404, as if it did not
//! exist. The live feed is in [`super::inbox_live`].

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use herald_store::inbox::{InboxFilter, InboxItemRow, ItemChange};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::page;
use crate::{
    error::{ApiError, ApiResult},
    extract::ApiQuery,
    recipient_token::RecipientAuth,
    state::{AppState, now_ms, rfc3339},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/inbox", get(list))
        .route("/v1/inbox/read-all", post(read_all))
        .route("/v1/inbox/{id}", delete(remove))
        .route("/v1/inbox/{id}/read", post(read))
        .route("/v1/inbox/{id}/unread", post(unread))
        .route("/v1/inbox/{id}/archive", post(archive))
}

/// An inbox item as the API and the live feed show it.
#[derive(Debug, Serialize)]
pub struct ItemOut {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    severity: String,
    title: String,
    body: String,
    link: Option<String>,
    /// The event's data, as stored (JSON).
    data: Box<RawValue>,
    read: bool,
    read_at: Option<String>,
    archived: bool,
    created_at: String,
}

impl From<InboxItemRow> for ItemOut {
    fn from(r: InboxItemRow) -> Self {
        let data = RawValue::from_string(r.data)
            .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("`null` is JSON"));
        ItemOut {
            id: r.id,
            kind: r.kind,
            severity: r.severity,
            title: r.title,
            body: r.body,
            link: r.link,
            data,
            read: r.read_at.is_some(),
            read_at: r.read_at.map(rfc3339),
            archived: r.archived_at.is_some(),
            created_at: rfc3339(r.created_at),
        }
    }
}

/// `true`/`false` query flags.
pub fn flag(field: &str, raw: Option<&str>) -> ApiResult<bool> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid(field, "must be `true` or `false`")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    unread: Option<String>,
    archived: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// The recipient token, when it is not in the `Authorization` header.
    #[serde(rename = "token")]
    _token: Option<String>,
}

#[derive(Debug, Serialize)]
struct ListOut {
    data: Vec<ItemOut>,
    unread_count: i64,
    next_cursor: Option<String>,
}

/// Newest first. `unread=true` leaves read items out; `archived=true` adds
/// archived items (left out otherwise).
async fn list(
    State(state): State<AppState>,
    me: RecipientAuth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListOut>> {
    let limit = page::limit(q.limit.as_deref())?;
    let filter = InboxFilter {
        unread_only: flag("unread", q.unread.as_deref())?,
        archived: flag("archived", q.archived.as_deref())?,
        before_id: q.cursor,
        after_id: None,
        limit: limit + 1,
    };
    let rows = state.db.list_inbox(&me.tenant, &me.recipient, &filter).await?;
    let unread_count = state.db.unread_count(&me.tenant, &me.recipient).await?;
    let page = page::page(rows, limit, |r| r.id.clone(), ItemOut::from);
    Ok(Json(ListOut { data: page.data, unread_count, next_cursor: page.next_cursor }))
}

#[derive(Debug, Serialize)]
struct CountOut {
    unread_count: i64,
}

/// Applies `change` to one of the caller's items and tells their live
/// connections.
async fn apply(state: &AppState, me: &RecipientAuth, id: &str, change: ItemChange) -> ApiResult<()> {
    if !state.db.change_inbox_item(&me.tenant, &me.recipient, id, change, now_ms()).await? {
        return Err(ApiError::not_found("inbox item", id));
    }
    state.live.changed(&me.tenant, &me.recipient);
    Ok(())
}

async fn count(state: &AppState, me: &RecipientAuth) -> ApiResult<Json<CountOut>> {
    Ok(Json(CountOut { unread_count: state.db.unread_count(&me.tenant, &me.recipient).await? }))
}

async fn change(state: &AppState, me: &RecipientAuth, id: &str, change: ItemChange) -> ApiResult<Json<CountOut>> {
    apply(state, me, id, change).await?;
    count(state, me).await
}

async fn read(State(state): State<AppState>, me: RecipientAuth, Path(id): Path<String>) -> ApiResult<Json<CountOut>> {
    change(&state, &me, &id, ItemChange::Read).await
}

async fn unread(State(state): State<AppState>, me: RecipientAuth, Path(id): Path<String>) -> ApiResult<Json<CountOut>> {
    change(&state, &me, &id, ItemChange::Unread).await
}

async fn archive(
    State(state): State<AppState>,
    me: RecipientAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<CountOut>> {
    change(&state, &me, &id, ItemChange::Archive).await
}

async fn remove(State(state): State<AppState>, me: RecipientAuth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    apply(&state, &me, &id, ItemChange::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn read_all(State(state): State<AppState>, me: RecipientAuth) -> ApiResult<Json<CountOut>> {
    let marked = state.db.read_all_inbox(&me.tenant, &me.recipient, now_ms()).await?;
    if marked > 0 {
        state.live.changed(&me.tenant, &me.recipient);
    }
    count(&state, &me).await
}
