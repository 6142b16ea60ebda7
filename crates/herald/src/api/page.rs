//! Cursor pagination shared by every list: `?limit=&cursor=` →
//! `{"data": [...], "next_cursor": "…" | null}`.

use serde::Serialize;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// Parses `limit` (1–500, default 50).
pub fn limit(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid("limit", format!("must be a whole number from 1 to {MAX_LIMIT}"))),
        },
    }
}

/// Parses an RFC 3339 time query parameter into stored milliseconds.
pub fn time_param(field: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| ApiError::invalid(field, format!("`{s}` is not an RFC 3339 time: {e}")))
    })
    .transpose()
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says
/// there is more, and the last returned row's id is the cursor.
pub fn page<R, T>(mut rows: Vec<R>, limit: i64, id: impl Fn(&R) -> String, out: impl FnMut(R) -> T) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(&id) } else { None };
    Page { data: rows.into_iter().map(out).collect(), next_cursor }
}
