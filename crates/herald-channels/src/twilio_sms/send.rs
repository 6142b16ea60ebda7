//! Sending one delivery: one request per number, in order, and what the
//! numbers' results add up to.
//!
//! A retryable answer stops the round and the whole delivery is retried
//! later, so the numbers before it may get the text twice (Twilio has no
//! idempotency key for messages). A number refused for good (invalid,
//! unsubscribed) does not stop the others; the delivery counts as sent when
//! at least one number got it.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::{Sender, TwilioTarget, answer::Step};
use crate::{Message, Outcome, SendFuture, Target, render::cut};

/// Twilio refuses a longer `Body` (it splits up to this into segments).
pub const MAX_BODY: usize = 1600;
/// Bounds of the texts kept with an attempt.
const MAX_DETAIL: usize = 1024;
const MAX_ERROR: usize = 2000;

impl TwilioTarget {
    async fn send_all(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        // IP literals never reach the resolver, so the policy is applied here.
        if let Err(refused) = self.policy.check_url(&self.config.messages_url) {
            return Outcome::Failed { status_code: None, error: refused.to_string(), detail: None };
        }
        let numbers: Vec<&str> = match message.to {
            Some(to) => vec![to],
            None => self.config.to.iter().map(String::as_str).collect(),
        };
        if numbers.is_empty() {
            return Outcome::Failed {
                status_code: None,
                error: "no recipient number: the integration has no `to` numbers".into(),
                detail: None,
            };
        }
        let body = cut(&message.content.plain_text(), MAX_BODY);
        let started = Instant::now();
        let mut steps = Vec::with_capacity(numbers.len());
        for number in &numbers {
            let Some(left) = timeout.checked_sub(started.elapsed()).filter(|d| !d.is_zero()) else {
                let error = format!("the attempt's time ran out before {number}");
                steps.push(Step::Retry(Outcome::Retry { status_code: None, after: None, error, detail: None }));
                break;
            };
            let step = super::answer::classify(self.send_one(number, &body, left).await);
            let stop = matches!(step, Step::Retry(_) | Step::Refused { stop: true, .. });
            steps.push(step);
            if stop {
                break;
            }
        }
        summarise(&numbers, steps)
    }

    async fn send_one(&self, to: &str, body: &str, timeout: Duration) -> Outcome {
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("To", to);
            match &self.config.sender {
                Sender::From(from) => form.append_pair("From", from),
                Sender::Service(sid) => form.append_pair("MessagingServiceSid", sid),
            };
            form.append_pair("Body", body).finish()
        };
        let request = self
            .client
            .post(self.config.messages_url.clone())
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        crate::http::send_and_classify(request, timeout).await
    }
}

impl Target for TwilioTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_all(message, timeout))
    }
}

/// What the numbers' steps (in order; fewer than the numbers when a step
/// stopped the round) add up to.
fn summarise(numbers: &[&str], steps: Vec<Step>) -> Outcome {
    let many = numbers.len() > 1;
    let named = |number: &str, text: &str| if many { format!("{number}: {text}") } else { text.to_owned() };
    let mut sent = Vec::new();
    let mut sent_to = Vec::new();
    let mut refused = Vec::new();
    let mut first_sent_status = None;
    let mut first_refusal = None;
    for (number, step) in numbers.iter().zip(steps.iter()) {
        match step {
            Step::Accepted { status_code, sid, status } => {
                first_sent_status = first_sent_status.or(Some(*status_code));
                let what = match (sid, status) {
                    (Some(sid), Some(status)) => format!("{sid} {status}"),
                    (Some(sid), None) => sid.clone(),
                    _ => "accepted".to_owned(),
                };
                sent.push(format!("{number}: {what}"));
                sent_to.push(*number);
            }
            Step::Refused { status_code, error, detail, .. } => {
                first_refusal.get_or_insert((*status_code, detail.clone()));
                refused.push(named(number, error));
            }
            Step::Retry(Outcome::Retry { status_code, after, error, detail }) => {
                let mut error = named(number, error);
                if !sent_to.is_empty() {
                    error
                        .push_str(&format!("; already sent to {} (the retry sends to them again)", sent_to.join(", ")));
                }
                return Outcome::Retry {
                    status_code: *status_code,
                    after: *after,
                    error: cut(&error, MAX_ERROR),
                    detail: detail.clone(),
                };
            }
            Step::Retry(other) => return other.clone(),
        }
    }
    let not_tried = &numbers[steps.len()..];
    if let Some(status_code) = first_sent_status {
        let mut detail = format!("sent to {}", sent.join("; "));
        if !refused.is_empty() {
            detail.push_str(&format!("; failed: {}", refused.join("; ")));
        }
        if !not_tried.is_empty() {
            detail.push_str(&format!("; not tried: {}", not_tried.join(", ")));
        }
        return Outcome::Delivered { status_code, detail: Some(crate::render::cut_bytes_marked(&detail, MAX_DETAIL)) };
    }
    let (status_code, detail) = first_refusal.unwrap_or((None, None));
    let mut error =
        if many { format!("no number got the message: {}", refused.join("; ")) } else { refused.join("; ") };
    if !not_tried.is_empty() {
        error.push_str(&format!("; not tried: {}", not_tried.join(", ")));
    }
    Outcome::Failed { status_code, error: cut(&error, MAX_ERROR), detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(sid: &str) -> Step {
        Step::Accepted { status_code: Some(201), sid: Some(sid.into()), status: Some("queued".into()) }
    }

    fn refused(code: u32, stop: bool) -> Step {
        Step::Refused {
            status_code: Some(400),
            error: format!("HTTP 400 Bad Request: {code}: no"),
            detail: Some(format!("{{\"code\": {code}}}")),
            stop,
        }
    }

    #[test]
    fn one_number_keeps_twilios_answer() {
        assert_eq!(
            summarise(&["+15005550006"], vec![accepted("SM1")]),
            Outcome::Delivered { status_code: Some(201), detail: Some("sent to +15005550006: SM1 queued".into()) }
        );
        assert_eq!(
            summarise(&["+1555"], vec![refused(21211, false)]),
            Outcome::Failed {
                status_code: Some(400),
                error: "HTTP 400 Bad Request: 21211: no".into(),
                detail: Some("{\"code\": 21211}".into())
            }
        );
    }

    #[test]
    fn one_number_that_got_it_makes_the_delivery_sent() {
        let numbers = ["+15005550006", "+15005550001", "+15005550007"];
        let outcome = summarise(&numbers, vec![accepted("SM1"), refused(21211, false), accepted("SM3")]);
        assert_eq!(
            outcome,
            Outcome::Delivered {
                status_code: Some(201),
                detail: Some(
                    "sent to +15005550006: SM1 queued; +15005550007: SM3 queued; failed: +15005550001: HTTP 400 Bad Request: 21211: no"
                        .into()
                ),
            }
        );
        let outcome = summarise(&numbers, vec![refused(21211, false), refused(21610, false), refused(21614, false)]);
        assert_eq!(
            outcome.error(),
            Some(
                "no number got the message: +15005550006: HTTP 400 Bad Request: 21211: no; +15005550001: HTTP 400 Bad Request: 21610: no; +15005550007: HTTP 400 Bad Request: 21614: no"
            )
        );
        assert_eq!(outcome.label(), "failed");
        let outcome = summarise(&numbers, vec![refused(20003, true)]);
        assert!(outcome.error().unwrap().ends_with("; not tried: +15005550001, +15005550007"), "{outcome:?}");
    }

    #[test]
    fn a_retry_stops_the_round_and_names_who_already_got_it() {
        let numbers = ["+15005550006", "+15005550001", "+15005550007"];
        let busy = Step::Retry(Outcome::Retry {
            status_code: Some(429),
            after: Some(Duration::from_secs(1)),
            error: "HTTP 429 Too Many Requests".into(),
            detail: None,
        });
        let outcome = summarise(&numbers, vec![accepted("SM1"), refused(21211, false), busy]);
        assert_eq!(
            outcome,
            Outcome::Retry {
                status_code: Some(429),
                after: Some(Duration::from_secs(1)),
                error: "+15005550007: HTTP 429 Too Many Requests; already sent to +15005550006 (the retry sends to them again)".into(),
                detail: None,
            }
        );
    }

    #[test]
    fn details_stay_bounded() {
        let numbers: Vec<String> = (0..20).map(|i| format!("+1500555{i:04}")).collect();
        let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let steps = (0..20).map(|i| accepted(&format!("SM{}", "0".repeat(32 + i)))).collect();
        let detail = summarise(&numbers, steps).detail().unwrap().to_owned();
        assert!(detail.len() <= MAX_DETAIL && detail.ends_with('…'), "{}", detail.len());
    }
}
