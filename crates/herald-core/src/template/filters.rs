//! The filters Herald adds to Jinja's builtins: `datetime`, `date`, `money`
//! and `truncate`.
//!
//! Each treats an undefined or `none` input as empty output, so a missing
//! optional data field does not fail a message; a value of the wrong kind or
//! a bad argument is an error.

use std::fmt::Write as _;

use chrono::{
    DateTime, FixedOffset, NaiveDate, TimeZone, Utc,
    format::{Item, StrftimeItems},
};
use chrono_tz::Tz;
use minijinja::{Environment, Error, ErrorKind, State, Value, value::ValueKind};

use super::TZ_KEY;

/// The default format of `datetime`: `2026-07-01 12:00 CEST`.
const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M %Z";
/// The default format of `date`: `2026-07-01`.
const DATE_FORMAT: &str = "%Y-%m-%d";
/// The default length of `truncate`, in characters.
const TRUNCATE_LENGTH: usize = 255;
/// Numbers at least this large are read as unix milliseconds, smaller ones
/// as seconds (1e11 seconds is the year 5138; 1e11 ms is 1973).
const MILLIS_THRESHOLD: f64 = 1e11;
/// Currencies with no minor unit (ISO 4217 exponent 0).
const ZERO_DECIMAL: [&str; 16] =
    ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"];
/// The largest amount `money` formats; beyond it `f64` has no cents left.
const MAX_AMOUNT: f64 = 1e15;

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("datetime", datetime);
    env.add_filter("date", date);
    env.add_filter("money", money);
    // Replaces nothing today (truncate is in minijinja-contrib, not the
    // builtins), but would override a builtin of that name.
    env.add_filter("truncate", truncate);
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

fn is_empty(value: &Value) -> bool {
    value.is_undefined() || value.is_none()
}

/// A value for an error message, cut short: data can be long.
fn shown(value: &Value) -> String {
    let text = format!("{value:?}");
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `{{ when|datetime }}`, `{{ when|datetime("%H:%M") }}`: a time in the
/// render's timezone.
fn datetime(state: &State, value: Value, format: Option<String>) -> Result<String, Error> {
    format_time(state, &value, format.as_deref().unwrap_or(DATETIME_FORMAT), "datetime")
}

/// `{{ when|date }}`: like `datetime` with the format `%Y-%m-%d`.
fn date(state: &State, value: Value, format: Option<String>) -> Result<String, Error> {
    format_time(state, &value, format.as_deref().unwrap_or(DATE_FORMAT), "date")
}

fn format_time(state: &State, value: &Value, format: &str, filter: &str) -> Result<String, Error> {
    if is_empty(value) {
        return Ok(String::new());
    }
    let items = StrftimeItems::new(format).parse().map_err(|_| invalid(format!("{filter}: bad format {format:?}")))?;
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(invalid(format!("{filter}: bad format {format:?}")));
    }
    let tz: Tz = state.lookup(TZ_KEY).and_then(|v| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(Tz::UTC);
    let when = instant(value, tz).ok_or_else(|| {
        invalid(format!("{filter}: expected an RFC 3339 time or unix seconds/milliseconds, got {}", shown(value)))
    })?;
    let mut out = String::new();
    write!(out, "{}", when.format_with_items(items.iter()))
        .map_err(|_| invalid(format!("{filter}: cannot format with {format:?}")))?;
    Ok(out)
}

/// Reads an RFC 3339 string, a bare `YYYY-MM-DD` date (midnight in `tz`),
/// or unix seconds or milliseconds.
fn instant(value: &Value, tz: Tz) -> Option<DateTime<Tz>> {
    match value.kind() {
        ValueKind::String => {
            let s = value.as_str()?.trim();
            if let Ok(t) = DateTime::<FixedOffset>::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&tz));
            }
            let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            tz.from_local_datetime(&day.and_hms_opt(0, 0, 0)?).earliest()
        }
        ValueKind::Number => {
            let n = f64::try_from(value.clone()).ok()?;
            if !n.is_finite() {
                return None;
            }
            let millis = if n.abs() >= MILLIS_THRESHOLD { n } else { n * 1000.0 };
            // The range check keeps the cast exact; chrono refuses what it cannot represent.
            if millis.abs() > 1e17 {
                return None;
            }
            Some(DateTime::<Utc>::from_timestamp_millis(millis.round() as i64)?.with_timezone(&tz))
        }
        _ => None,
    }
}

/// `{{ 1234.5|money("EUR") }}` gives `€1,234.50`; without a symbol of its
/// own a currency follows the amount (`12.50 CHF`); no currency, just the number.
fn money(value: Value, currency: Option<String>) -> Result<String, Error> {
    if is_empty(&value) {
        return Ok(String::new());
    }
    let amount = match value.kind() {
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => value.as_str().and_then(|s| s.trim().parse::<f64>().ok()),
        _ => None,
    }
    .ok_or_else(|| invalid(format!("money: expected a number, got {}", shown(&value))))?;
    if !(amount.is_finite() && amount.abs() < MAX_AMOUNT) {
        return Err(invalid(format!("money: {} is out of range", shown(&value))));
    }

    let code = match currency {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => Some(c.to_ascii_uppercase()),
        Some(c) => return Err(invalid(format!("money: expected a three-letter currency code, got {c:?}"))),
        None => None,
    };
    let decimals = match &code {
        Some(c) if ZERO_DECIMAL.contains(&c.as_str()) => 0,
        _ => 2,
    };
    let number = group_thousands(amount.abs(), decimals);
    let sign = if amount < 0.0 && number.bytes().any(|b| matches!(b, b'1'..=b'9')) { "-" } else { "" };
    let symbol = match code.as_deref() {
        Some("USD") => Some("$"),
        Some("EUR") => Some("€"),
        Some("GBP") => Some("£"),
        Some("JPY") => Some("¥"),
        _ => None,
    };
    Ok(match (symbol, code) {
        (Some(symbol), _) => format!("{sign}{symbol}{number}"),
        (None, Some(code)) => format!("{sign}{number} {code}"),
        (None, None) => format!("{sign}{number}"),
    })
}

/// `1234.5` with 2 decimals gives `1,234.50`; halves round away from zero.
fn group_thousands(amount: f64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    // Below MAX_AMOUNT * 100 < 2^63, so the cast is exact enough and cannot overflow.
    let units = (amount * scale as f64).round() as u64;
    let (whole, fraction) = (units / scale, units % scale);
    let digits = whole.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if decimals > 0 {
        write!(out, ".{fraction:0width$}", width = decimals as usize).ok();
    }
    out
}

/// `{{ text|truncate(80) }}`: at most `length` characters, then `…` when cut.
fn truncate(value: Value, length: Option<usize>) -> Result<String, Error> {
    if is_empty(&value) {
        return Ok(String::new());
    }
    let text = match value.as_str() {
        Some(s) => s.to_owned(),
        None => value.to_string(),
    };
    let length = length.unwrap_or(TRUNCATE_LENGTH);
    match text.char_indices().nth(length) {
        Some((cut, _)) => Ok(format!("{}…", &text[..cut])),
        None => Ok(text),
    }
}
