//! `twilio://`: SMS through Twilio's Messages API.

use serde_json::{Map, Value, json};

use super::{
    AppriseError, alnum, token,
    url::{Raw, bad_value, decode},
};

/// `twilio://AccountSid:AuthToken@From[/To…]`, where From is a phone
/// number, a 5–6 digit short code or a Messaging Service SID (`MG…`).
///
/// Numbers are normalised to E.164 as Apprise does: formatting (spaces,
/// dashes, dots, brackets) is dropped and a `+` put in front; they must hold
/// 10 to 15 digits, country code included. With no recipient, the message
/// goes to the From number itself (Apprise's rule).
pub(super) fn twilio(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let sid_param = q.take("sid");
    let token_param = q.take("token");
    let from_param = q.take("from");
    let to_param = q.take("to");
    if q.take("method").is_some_and(|m| !m.eq_ignore_ascii_case("sms")) {
        return Err(bad_value("method", "must be sms: Herald's Twilio integration sends text messages, not calls"));
    }
    q.refuse("apikey", "API keys are not supported; use the account SID and auth token")?;
    let creds = raw.credentials()?;
    let (sid, sid_part) = match sid_param {
        Some(s) => (s.to_owned(), "query parameter `sid`"),
        None => (creds.user.clone().unwrap_or_default(), "user (account SID)"),
    };
    if !is_sid(&sid, "AC") {
        return Err(AppriseError::new(sid_part, "must be the account SID: AC and 32 hex characters"));
    }
    let (auth_token, token_part) = match token_param {
        Some(t) => (t.to_owned(), "query parameter `token`"),
        None => (creds.password.clone().unwrap_or_default(), "password (auth token)"),
    };
    if !token(&auth_token, alnum) {
        return Err(AppriseError::new(token_part, "must be the account's auth token (letters and digits)"));
    }
    let (from, from_part) = match from_param {
        Some(f) => (f.to_owned(), "query parameter `from`"),
        None => (decode(&creds.rest).map_err(|m| AppriseError::new("host (from)", m))?, "host (from)"),
    };
    let mut config = Map::new();
    config.insert("account_sid".into(), json!(sid));
    config.insert("auth_token".into(), json!(auth_token));
    let from_number = if is_sid(&from, "MG") {
        config.insert("messaging_service_sid".into(), json!(from));
        None
    } else {
        if from.contains(':') {
            return Err(AppriseError::new(from_part, "WhatsApp (w:) numbers are not supported; SMS only"));
        }
        let digits = digits(&from).ok_or_else(|| AppriseError::new(from_part, FROM_HELP))?;
        let from = match digits.len() {
            5 | 6 if !from.trim_start().starts_with('+') => digits,
            10..=15 => format!("+{digits}"),
            _ => return Err(AppriseError::new(from_part, FROM_HELP)),
        };
        config.insert("from".into(), json!(from));
        Some(from).filter(|f| f.starts_with('+'))
    };
    let mut to = Vec::new();
    for (i, segment) in raw.segments.iter().enumerate() {
        for number in numbers(segment) {
            to.push(e164(number, format!("path segment {} (to number)", i + 1))?);
        }
    }
    for number in numbers(to_param.unwrap_or_default()) {
        to.push(e164(number, "query parameter `to`".into())?);
    }
    if to.is_empty()
        && let Some(from) = from_number
    {
        to.push(from);
    }
    if !to.is_empty() {
        config.insert("to".into(), json!(to));
    }
    Ok(Value::Object(config))
}

const FROM_HELP: &str = "must be a phone number with its country code (+15551234567), a 5-6 digit short code, \
                         or a Messaging Service SID (MG…)";

/// A Twilio SID: its two-letter prefix and 32 hex digits.
fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        && token(&value[2..], |c| c.is_ascii_hexdigit())
}

/// Numbers separated by commas (a number itself may contain spaces).
fn numbers(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// The digits of a phone number written with `+`, spaces, dashes, dots or
/// brackets; `None` if anything else is in it.
fn digits(number: &str) -> Option<String> {
    let number = number.trim();
    let number = number.strip_prefix('+').unwrap_or(number);
    let ok = number.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    (ok && !digits.is_empty()).then_some(digits)
}

/// A recipient in E.164 (`+` and 10 to 15 digits).
fn e164(number: &str, part: String) -> Result<String, AppriseError> {
    match digits(number) {
        Some(d) if (10..=15).contains(&d.len()) => Ok(format!("+{d}")),
        _ => Err(AppriseError::new(part, "must be a phone number with its country code, e.g. +15551234567")),
    }
}
