//! When to try a delivery again: one pure function over the schedule, the
//! attempt count and what the provider said.

use std::time::Duration;

use crate::Outcome;

/// The longest wait a provider's `Retry-After` can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Spread of the jitter around each scheduled delay (±20 %).
pub const JITTER: f64 = 0.2;

/// The delays between attempts: after the first failed attempt wait
/// `schedule[0]`, after the second `schedule[1]`… and after the last, give up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    Sent,
    RetryIn(Duration),
    Failed,
}

impl Default for RetryPolicy {
    /// Close to Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    fn default() -> Self {
        Self::parse("5s,5m,30m,2h,5h,10h,10h").expect("the default schedule parses")
    }
}

impl RetryPolicy {
    pub fn new(schedule: Vec<Duration>) -> Self {
        Self { schedule }
    }

    /// Parses `5s,5m,30m,2h` (units `ms`, `s`, `m`, `h`, `d`); an empty string
    /// means no retries.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::new(Vec::new()));
        }
        text.split(',').map(|part| parse_duration(part.trim())).collect::<Result<Vec<_>, _>>().map(Self::new)
    }

    pub fn schedule(&self) -> &[Duration] {
        &self.schedule
    }

    /// The total number of attempts a delivery gets.
    pub fn max_attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }

    /// Decides after attempt number `attempt` (1 for the first) ended in
    /// `outcome`. `unit` is a uniform random number in `[0, 1)` for the jitter.
    pub fn decide(&self, attempt: u32, outcome: &Outcome, unit: f64) -> RetryDecision {
        match outcome {
            Outcome::Delivered { .. } => RetryDecision::Sent,
            Outcome::Failed { .. } => RetryDecision::Failed,
            Outcome::Retry { after, .. } => {
                let Some(base) = attempt.checked_sub(1).and_then(|i| self.schedule.get(i as usize)) else {
                    return RetryDecision::Failed;
                };
                match after {
                    Some(after) => RetryDecision::RetryIn((*after).min(MAX_RETRY_AFTER)),
                    None => RetryDecision::RetryIn(jittered(*base, unit)),
                }
            }
        }
    }
}

/// `base` scaled by a factor in `[1 - JITTER, 1 + JITTER)` chosen by `unit`.
fn jittered(base: Duration, unit: f64) -> Duration {
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    base.mul_f64(factor)
}

/// Parses one duration such as `500ms`, `5s`, `5m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().map_err(|_| format!("`{text}` is not a duration such as 5s, 5m or 2h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(value)),
        "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        "d" => value * 86_400,
        _ => return Err(format!("`{text}` has no known unit (use ms, s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn retry(after: Option<Duration>) -> Outcome {
        Outcome::Retry { status_code: Some(500), after, error: "HTTP 500".into(), detail: None }
    }

    #[test]
    fn default_schedule_is_svix_like() {
        let p = RetryPolicy::default();
        assert_eq!(p.schedule().len(), 7);
        assert_eq!(p.schedule()[1], Duration::from_secs(300));
        assert_eq!(p.max_attempts(), 8);
    }

    #[test]
    fn parse_errors_name_the_part() {
        assert!(RetryPolicy::parse("5s,oops").unwrap_err().contains("oops"));
        assert!(RetryPolicy::parse("5x").unwrap_err().contains("unit"));
        assert_eq!(RetryPolicy::parse("").unwrap().max_attempts(), 1);
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn gives_up_after_the_schedule() {
        let p = RetryPolicy::parse("1s,2s").unwrap();
        assert!(matches!(p.decide(1, &retry(None), 0.5), RetryDecision::RetryIn(_)));
        assert!(matches!(p.decide(2, &retry(None), 0.5), RetryDecision::RetryIn(_)));
        assert_eq!(p.decide(3, &retry(None), 0.5), RetryDecision::Failed);
    }

    #[test]
    fn permanent_and_success_ignore_the_schedule() {
        let p = RetryPolicy::default();
        let failed = Outcome::Failed { status_code: Some(400), error: "bad".into(), detail: None };
        assert_eq!(p.decide(1, &failed, 0.5), RetryDecision::Failed);
        let ok = Outcome::Delivered { status_code: Some(200), detail: None };
        assert_eq!(p.decide(1, &ok, 0.5), RetryDecision::Sent);
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(1, &retry(Some(Duration::from_secs(42))), 0.9),
            RetryDecision::RetryIn(Duration::from_secs(42))
        );
        assert_eq!(
            p.decide(1, &retry(Some(Duration::from_secs(10 * 86_400))), 0.9),
            RetryDecision::RetryIn(MAX_RETRY_AFTER)
        );
        // Retry-After never extends the number of attempts.
        assert_eq!(p.decide(8, &retry(Some(Duration::from_secs(1))), 0.9), RetryDecision::Failed);
    }

    proptest! {
        #[test]
        fn jitter_stays_within_twenty_percent(base_ms in 1u64..100_000_000, unit in 0.0f64..1.0, attempt in 1u32..4) {
            let p = RetryPolicy::new(vec![Duration::from_millis(base_ms); 3]);
            let RetryDecision::RetryIn(d) = p.decide(attempt, &retry(None), unit) else { panic!("expected a retry") };
            let lo = Duration::from_millis(base_ms).mul_f64(0.8);
            let hi = Duration::from_millis(base_ms).mul_f64(1.2);
            prop_assert!(d >= lo && d <= hi, "{d:?} not in {lo:?}..{hi:?}");
        }

        #[test]
        fn attempts_beyond_schedule_fail(len in 0usize..10, extra in 1u32..5) {
            let p = RetryPolicy::new(vec![Duration::from_secs(1); len]);
            prop_assert_eq!(p.decide(len as u32 + extra, &retry(None), 0.5), RetryDecision::Failed);
        }

        #[test]
        fn schedule_round_trips(secs in proptest::collection::vec(1u64..100_000, 0..8)) {
            let text = secs.iter().map(|s| format!("{s}s")).collect::<Vec<_>>().join(",");
            let p = RetryPolicy::parse(&text).unwrap();
            prop_assert_eq!(p.schedule().iter().map(|d| d.as_secs()).collect::<Vec<_>>(), secs);
        }
    }
}
