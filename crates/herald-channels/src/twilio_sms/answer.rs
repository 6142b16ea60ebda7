//! What Twilio's answer to one message means: accepted (its SID), worth a
//! retry (429, 20429, 5xx), refused for this number only (21211 invalid
//! number, 21610 unsubscribed, 21614 not a mobile…), or refused in a way that
//! no other number would fare better (20003 bad credentials, a bad sender).

use serde::Deserialize;

use crate::Outcome;

/// Codes that say the account or the sender is wrong: stop, every other
/// number would get the same answer.
const STOP_CODES: [u32; 7] = [
    20003, // authentication failed
    20005, // account not active
    20404, // resource not found (the account SID)
    21212, // invalid From number
    21603, // From is required
    21606, // From is not a valid, SMS-capable number of the account
    21659, // From is not a Twilio number or short code
];

/// Twilio's "too many requests" code, sent with HTTP 429.
const TOO_MANY_REQUESTS: u32 = 20429;

/// Twilio's error body: `{"code", "message", "more_info", "status", "detail"?}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
    detail: Option<String>,
}

/// The Message resource Twilio answers with: `{"sid": "SM…", "status": "queued", …}`.
#[derive(Debug, Deserialize)]
struct Created {
    sid: Option<String>,
    status: Option<String>,
}

/// One number's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Twilio took the message: its SID and status (`queued`, `accepted`…).
    Accepted { status_code: Option<u16>, sid: Option<String>, status: Option<String> },
    /// Refused for good. `stop` when no other number would do better.
    Refused { status_code: Option<u16>, error: String, detail: Option<String>, stop: bool },
    /// Worth trying again later; the rest of the numbers wait for that retry.
    Retry(Outcome),
}

/// Classifies the shared HTTP outcome of one message request by Twilio's
/// error code where it has one.
pub fn classify(outcome: Outcome) -> Step {
    match outcome {
        Outcome::Delivered { status_code, detail } => {
            let created = detail.as_deref().and_then(|d| serde_json::from_str::<Created>(d).ok());
            let (sid, status) = created.map_or((None, None), |c| (c.sid, c.status));
            Step::Accepted { status_code, sid, status }
        }
        Outcome::Retry { status_code, after, error, detail } => {
            let (_, text) = twilio_text(detail.as_deref());
            Step::Retry(Outcome::Retry { status_code, after, error: join(error, text, None), detail })
        }
        Outcome::Failed { status_code, error, detail } => {
            let (code, text) = twilio_text(detail.as_deref());
            if code == Some(TOO_MANY_REQUESTS) {
                return Step::Retry(Outcome::Retry {
                    status_code,
                    after: None,
                    error: join(error, text, None),
                    detail,
                });
            }
            let credentials = code == Some(20003) || status_code == Some(401);
            let hint = credentials.then_some("check account_sid and auth_token");
            // No status: refused before sending (the address policy), which holds for every number.
            let stop = status_code.is_none_or(|s| matches!(s, 401 | 403 | 404))
                || code.is_some_and(|c| STOP_CODES.contains(&c));
            Step::Refused { status_code, error: join(error, text, hint), detail, stop }
        }
    }
}

/// `(code, "21211: The 'To' number +1555 is not a valid phone number. (https://www.twilio.com/docs/errors/21211)")`.
fn twilio_text(detail: Option<&str>) -> (Option<u32>, Option<String>) {
    let Some(body) = detail.and_then(|d| serde_json::from_str::<ErrorBody>(d.trim()).ok()) else {
        return (None, None);
    };
    let mut text = match (body.code, body.message.as_deref().map(str::trim).filter(|m| !m.is_empty())) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        (None, Some(message)) => message.to_owned(),
        (None, None) => return (None, None),
    };
    if let Some(detail) = body.detail.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(more) = body.more_info.as_deref().filter(|m| m.starts_with("https://")) {
        text.push_str(&format!(" ({more})"));
    }
    (body.code, Some(text))
}

fn join(mut error: String, text: Option<String>, hint: Option<&str>) -> String {
    if let Some(text) = text {
        error.push_str(": ");
        error.push_str(&text);
    }
    if let Some(hint) = hint {
        error.push_str(&format!(" ({hint})"));
    }
    error
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn failed(status: u16, error: &str, body: &str) -> Outcome {
        Outcome::Failed { status_code: Some(status), error: error.into(), detail: Some(body.into()) }
    }

    #[test]
    fn an_accepted_message_gives_its_sid() {
        let body = r#"{"account_sid":"ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","api_version":"2010-04-01","body":"Hi","date_created":"Thu, 24 Aug 2023 05:01:45 +0000","direction":"outbound-api","error_code":null,"from":"+14155552345","num_segments":"1","sid":"SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","status":"queued","to":"+14155552345"}"#;
        assert_eq!(
            classify(Outcome::Delivered { status_code: Some(201), detail: Some(body.into()) }),
            Step::Accepted {
                status_code: Some(201),
                sid: Some("SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".into()),
                status: Some("queued".into())
            }
        );
    }

    #[test]
    fn an_invalid_number_is_refused_for_that_number_only() {
        let body = r#"{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        assert_eq!(
            classify(failed(400, "HTTP 400 Bad Request", body)),
            Step::Refused {
                status_code: Some(400),
                error: "HTTP 400 Bad Request: 21211: The 'To' number +1555 is not a valid phone number. (https://www.twilio.com/docs/errors/21211)".into(),
                detail: Some(body.into()),
                stop: false,
            }
        );
        let body = r#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}"#;
        assert!(matches!(classify(failed(400, "HTTP 400 Bad Request", body)), Step::Refused { stop: false, .. }));
    }

    #[test]
    fn bad_credentials_or_sender_stop_every_number() {
        let body = r#"{"code": 20003, "detail": "Your AccountSid or AuthToken was incorrect.", "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#;
        let Step::Refused { error, stop, .. } = classify(failed(401, "HTTP 401 Unauthorized", body)) else { panic!() };
        assert!(stop);
        assert_eq!(
            error,
            "HTTP 401 Unauthorized: 20003: Authenticate: Your AccountSid or AuthToken was incorrect. (https://www.twilio.com/docs/errors/20003) (check account_sid and auth_token)"
        );
        let body = r#"{"code": 21659, "message": "'From' +15005550001 is not a Twilio phone number or Short Code country mismatch", "more_info": "https://www.twilio.com/docs/errors/21659", "status": 400}"#;
        assert!(matches!(classify(failed(400, "HTTP 400 Bad Request", body)), Step::Refused { stop: true, .. }));
        // Not JSON at all: the HTTP words alone.
        assert_eq!(
            classify(failed(403, "HTTP 403 Forbidden", "<html/>")),
            Step::Refused {
                status_code: Some(403),
                error: "HTTP 403 Forbidden".into(),
                detail: Some("<html/>".into()),
                stop: true
            }
        );
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried() {
        let body = r#"{"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}"#;
        let outcome = Outcome::Retry {
            status_code: Some(429),
            after: Some(Duration::from_secs(2)),
            error: "HTTP 429 Too Many Requests".into(),
            detail: Some(body.into()),
        };
        let Step::Retry(Outcome::Retry { after, error, .. }) = classify(outcome) else { panic!() };
        assert_eq!(after, Some(Duration::from_secs(2)));
        assert_eq!(
            error,
            "HTTP 429 Too Many Requests: 20429: Too Many Requests (https://www.twilio.com/docs/errors/20429)"
        );
        // The code decides even under another status.
        assert!(matches!(classify(failed(400, "HTTP 400 Bad Request", body)), Step::Retry(Outcome::Retry { .. })));
        let down = Outcome::Retry {
            status_code: Some(503),
            after: None,
            error: "HTTP 503 Service Unavailable".into(),
            detail: None,
        };
        assert_eq!(classify(down.clone()), Step::Retry(down));
    }
}
