//! Rule conditions: a small expression over the event, such as
//! `data.attempts > 3 and severity == "error"`, evaluated in a sandbox.
//!
//! The language is the expression part of Jinja (minijinja): no I/O, no
//! loops that run away (every evaluation gets a fuel budget), and no access
//! to anything but the event passed in.

use std::{fmt, sync::LazyLock};

use minijinja::{Environment, Expression, UndefinedBehavior, Value, value::Serde};
use serde::Serialize;

/// The longest condition source accepted.
pub const MAX_CONDITION_LEN: usize = 2048;

/// Instructions one evaluation may spend before it is stopped.
const FUEL: u64 = 10_000;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    // A missing field is simply undefined (false-y), so `data.attempts > 3`
    // on an event without `attempts` does not match rather than erroring.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env
});

/// A condition that does not parse, with the parser's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("condition is longer than {MAX_CONDITION_LEN} characters")]
    TooLong,
    #[error("condition must not be empty")]
    Empty,
    #[error("{0}")]
    Syntax(String),
}

/// What a condition can see of an event.
#[derive(Debug, Serialize)]
pub struct ConditionInput<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub severity: &'a str,
    pub data: &'a serde_json::Value,
}

/// A parsed condition, ready to evaluate many times.
pub struct Condition {
    source: String,
    expr: Expression<'static, 'static>,
}

impl Condition {
    /// Parses a condition; the error carries the parser's message.
    pub fn parse(source: &str) -> Result<Self, ConditionError> {
        if source.trim().is_empty() {
            return Err(ConditionError::Empty);
        }
        if source.len() > MAX_CONDITION_LEN {
            return Err(ConditionError::TooLong);
        }
        let expr = ENV.compile_expression_owned(source.to_owned()).map_err(|e| ConditionError::Syntax(describe(&e)))?;
        Ok(Self { source: source.to_owned(), expr })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition; an evaluation error (a type mismatch, fuel
    /// running out) is returned so the caller can log it, and counts as no match.
    pub fn eval(&self, input: &ConditionInput<'_>) -> Result<bool, String> {
        let ctx = Value::from(Serde(input));
        self.expr.eval(ctx).map(|v| v.is_true()).map_err(|e| describe(&e))
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

fn describe(err: &minijinja::Error) -> String {
    let mut msg = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(range) = err.range() {
        msg.push_str(&format!(" (at characters {}..{})", range.start, range.end));
    }
    msg
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(src: &str, severity: &str, data: serde_json::Value) -> bool {
        let cond = Condition::parse(src).unwrap();
        cond.eval(&ConditionInput { id: "evt_x", event_type: "job_failed", severity, data: &data }).unwrap_or(false)
    }

    #[test]
    fn the_documented_example() {
        let src = r#"data.attempts > 3 and severity == "error""#;
        assert!(eval(src, "error", json!({"attempts": 4})));
        assert!(!eval(src, "error", json!({"attempts": 3})));
        assert!(!eval(src, "info", json!({"attempts": 9})));
        assert!(!eval(src, "error", json!({})));
    }

    #[test]
    fn membership_and_type() {
        assert!(eval(r#"data.job_type in ["config_backup", "sync"]"#, "info", json!({"job_type": "sync"})));
        assert!(!eval(r#"data.job_type in ["config_backup"]"#, "info", json!({"job_type": "sync"})));
        assert!(eval(r#"type == "job_failed""#, "info", json!({})));
        assert!(eval(r#"data.host.name is startingwith("db")"#, "info", json!({"host": {"name": "db-1"}})));
    }

    #[test]
    fn syntax_errors_carry_the_parser_message() {
        let err = Condition::parse("data.attempts >").unwrap_err();
        let ConditionError::Syntax(msg) = err else { panic!("{err:?}") };
        assert!(msg.contains("syntax error"), "{msg}");
        assert!(Condition::parse("   ").is_err());
        assert!(Condition::parse(&"a or ".repeat(500)).is_err());
    }

    #[test]
    fn runaway_evaluation_is_stopped() {
        let cond = Condition::parse("range(100000) | map('string') | join | length > 0").unwrap();
        let data = json!({});
        assert!(cond.eval(&ConditionInput { id: "e", event_type: "t", severity: "info", data: &data }).is_err());
    }
}
