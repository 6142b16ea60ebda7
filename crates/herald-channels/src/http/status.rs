//! What an HTTP status (and its `Retry-After`) means for a delivery: the one
//! pure table every HTTP channel shares.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::Outcome;

/// Classifies an HTTP answer: 2xx delivered; 408, 425, 429 and 5xx worth
/// retrying (429, 502, 503 and 504 with their `Retry-After`); 3xx and other
/// 4xx failed.
pub fn classify(status: u16, retry_after: Option<&str>, body_excerpt: Option<String>, now: DateTime<Utc>) -> Outcome {
    let status_code = Some(status);
    let detail = body_excerpt;
    match status {
        200..=299 => Outcome::Delivered { status_code, detail },
        // Following a redirect could lead past the address policy, and the
        // Standard Webhooks spec counts a 3xx as a failure.
        300..=399 => {
            Outcome::Failed { status_code, error: format!("redirect ({}) not followed", status_text(status)), detail }
        }
        408 | 425 | 429 | 500..=599 => {
            // RFC 9110 defines Retry-After for 503 and RFC 6585 for 429;
            // Standard Webhooks also asks to honour it on 502 and 504, which
            // gateways send when they throttle.
            let after = match status {
                429 | 502 | 503 | 504 => retry_after.and_then(|value| parse_retry_after(value, now)),
                _ => None,
            };
            Outcome::Retry { status_code, after, error: status_text(status), detail }
        }
        400..=499 => Outcome::Failed { status_code, error: status_text(status), detail },
        // 1xx never reaches us as a final answer from a sane server, and
        // anything outside 100..=599 is not HTTP.
        _ => Outcome::Failed { status_code, error: format!("unexpected status ({})", status_text(status)), detail },
    }
}

/// Reads a `Retry-After` value, as delay-seconds or an HTTP-date; a date in
/// the past means "now". `None` when it is neither.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// "HTTP 503 Service Unavailable", or "HTTP 599" for a code without a name.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()) {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 10, 21, 7, 0, 0).unwrap()
    }

    #[test]
    fn classifies_the_documented_cases() {
        let excerpt = Some("ok".to_owned());
        assert_eq!(
            classify(200, None, excerpt.clone(), now()),
            Outcome::Delivered { status_code: Some(200), detail: excerpt.clone() }
        );
        assert_eq!(
            classify(302, None, None, now()),
            Outcome::Failed {
                status_code: Some(302),
                error: "redirect (HTTP 302 Found) not followed".into(),
                detail: None
            }
        );
        assert_eq!(
            classify(503, Some("120"), excerpt.clone(), now()),
            Outcome::Retry {
                status_code: Some(503),
                after: Some(Duration::from_secs(120)),
                error: "HTTP 503 Service Unavailable".into(),
                detail: excerpt.clone(),
            }
        );
        assert_eq!(
            classify(404, Some("120"), None, now()),
            Outcome::Failed { status_code: Some(404), error: "HTTP 404 Not Found".into(), detail: None }
        );
        assert_eq!(classify(599, None, None, now()).error(), Some("HTTP 599"));
        assert_eq!(classify(410, None, None, now()).label(), "failed");
        assert_eq!(classify(408, None, None, now()).label(), "retry");
        assert_eq!(classify(425, None, None, now()).label(), "retry");
    }

    fn after(status: u16, retry_after: &str) -> Option<Duration> {
        match classify(status, Some(retry_after), None, now()) {
            Outcome::Retry { after, .. } => after,
            other => panic!("{status} is not a retry: {other:?}"),
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(after(429, "7"), Some(Duration::from_secs(7)));
        assert_eq!(after(429, " 0 "), Some(Duration::ZERO));
        assert_eq!(after(503, "Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::from_secs(28 * 60)));
        assert_eq!(after(503, "Wed, 21 Oct 2015 06:28:00 GMT"), Some(Duration::ZERO), "a past date means now");
        assert_eq!(after(502, "30"), Some(Duration::from_secs(30)));
        assert_eq!(after(504, "30"), Some(Duration::from_secs(30)));
        for garbage in ["", "soon", "-5", "1.5", "99999999999999999999999", "21 Oct 2015"] {
            assert_eq!(after(429, garbage), None, "{garbage:?}");
        }
        // Other retryable statuses do not carry a Retry-After meaning.
        assert_eq!(after(500, "30"), None);
        assert_eq!(after(408, "30"), None);
    }

    proptest! {
        #[test]
        fn every_status_has_exactly_its_class(status in 100u16..=599, ra in proptest::option::of("[0-9]{1,6}")) {
            let label = classify(status, ra.as_deref(), None, now()).label();
            let expected = match status {
                200..=299 => "sent",
                408 | 425 | 429 | 500..=599 => "retry",
                _ => "failed",
            };
            prop_assert_eq!(label, expected);
            prop_assert_eq!(classify(status, None, None, now()).status_code(), Some(status));
        }

        #[test]
        fn any_code_and_header_classify_without_panicking(status: u16, ra in ".{0,40}") {
            let outcome = classify(status, Some(&ra), None, now());
            prop_assert!(outcome.error().is_some() || (200..=299).contains(&status));
        }
    }
}
