//! One attempt of one claimed delivery: build (or reuse) the target, send,
//! classify, and decide what the delivery becomes. The result goes to the
//! completer, which records it; the only database work here is Web Push's
//! (reading the recipients' subscriptions, forgetting those found gone).

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
};

use futures::FutureExt as _;
use herald_channels::{Content, Message, Outcome, Report, Severity, Target};
use herald_core::RetryDecision;
use herald_store::queue::{Completion, Job};

use herald_store::recipients::RecipientRow;

use crate::{
    render::{self, Subject},
    secrets,
    state::{AppState, now_ms, rfc3339},
};

/// The longest response excerpt kept with an attempt.
const MAX_EXCERPT: usize = 1024;

/// Built targets by integration id, valid while the integration's
/// `updated_at` is unchanged: configs are parsed and secrets opened once,
/// not per delivery, and HTTP connections are reused.
#[derive(Default)]
pub struct TargetCache {
    built: Mutex<HashMap<String, Built>>,
}

/// A built target and the integration `updated_at` it was built from.
type Built = (i64, Arc<dyn Target>);

impl TargetCache {
    fn get_or_build(
        &self,
        state: &AppState,
        job: &Job,
        config: &str,
        updated_at: i64,
    ) -> Result<Arc<dyn Target>, String> {
        let integration = job.integration_id.as_deref().ok_or("the delivery has no integration")?;
        if let Some((at, target)) = self.built.lock().expect("target cache lock").get(integration)
            && *at == updated_at
        {
            return Ok(target.clone());
        }
        let target = build(state, &job.tenant_id, integration, &job.channel, config)?;
        self.built.lock().expect("target cache lock").insert(integration.to_owned(), (updated_at, target.clone()));
        Ok(target)
    }
}

/// Builds a target from a stored integration config.
pub fn build(
    state: &AppState,
    tenant: &str,
    integration: &str,
    kind: &str,
    config: &str,
) -> Result<Arc<dyn Target>, String> {
    let channel = state.channels.get(kind).ok_or_else(|| format!("unknown integration type `{kind}`"))?;
    let mut value: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("stored config is not JSON: {e}"))?;
    secrets::open_fields(&state.key, tenant, integration, channel.secret_fields(), &mut value)
        .map_err(|e| e.to_string())?;
    channel.build(&value, &state.channel_ctx).map_err(|e| format!("invalid config: {e}"))
}

/// Sends one claimed delivery and returns what to record. `to` replaces the
/// configured destination (a test send's `recipient`).
pub async fn run(state: &AppState, targets: &TargetCache, job: &Job, to: Option<&str>) -> Completion {
    let mut done = Completion {
        delivery_id: job.delivery_id.clone(),
        tenant_id: job.tenant_id.clone(),
        lease_token: job.lease_token.clone(),
        attempt: job.attempts,
        at: now_ms(),
        duration_ms: 0,
        outcome: "none".into(),
        status_code: None,
        error: None,
        response: None,
        new_status: "cancelled".into(),
        due_at: now_ms(),
        sent_at: None,
    };
    let outcome = if job.channel == super::inbox::KIND {
        super::inbox::deliver(state, job).await
    } else {
        let (Some(config), Some(enabled), Some(updated_at)) =
            (&job.integration_config, job.integration_enabled, job.integration_updated_at)
        else {
            done.error = Some("integration deleted".into());
            return done;
        };
        if !enabled {
            done.new_status = "skipped".into();
            done.error = Some("integration disabled".into());
            return done;
        }
        match targets.get_or_build(state, job, config, updated_at) {
            // A channel bug must cost one failed attempt, not the worker task (which
            // would leave the delivery to be sent again at every lease expiry).
            Ok(target) => match AssertUnwindSafe(send(target.as_ref(), job, config, to, state)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::error!(delivery_id = %job.delivery_id, channel = %job.channel, "a channel panicked while sending");
                    Outcome::Failed {
                        status_code: None,
                        error: "internal error: the channel panicked".into(),
                        detail: None,
                    }
                }
            },
            Err(error) => Outcome::Failed { status_code: None, error, detail: None },
        }
    };
    let finished = now_ms();
    let outcome = match failing_clock(state, job, &outcome, finished).await {
        Some(note) => outcome.noted(&note),
        None => outcome,
    };
    done.duration_ms = finished - done.at;
    metrics::histogram!("herald_attempt_duration_seconds", "channel" => job.channel.clone())
        .record(done.duration_ms as f64 / 1000.0);
    metrics::counter!("herald_attempts_total", "channel" => job.channel.clone(), "outcome" => outcome.label())
        .increment(1);
    done.outcome = outcome.label().into();
    done.status_code = outcome.status_code().map(i64::from);
    done.error = outcome.error().map(str::to_owned);
    done.response = outcome.detail().map(|d| herald_channels::render::cut_bytes(d, MAX_EXCERPT).to_owned());
    let decision = state.config.retry.decide(job.attempts.max(1) as u32, &outcome, rand::random::<f64>());
    match decision {
        RetryDecision::Sent => {
            done.new_status = "sent".into();
            done.sent_at = Some(finished);
        }
        RetryDecision::RetryIn(delay) => {
            done.new_status = "pending".into();
            done.due_at = finished + delay.as_millis() as i64;
        }
        RetryDecision::Failed => done.new_status = "failed".into(),
    }
    if done.new_status != "pending" {
        metrics::counter!("herald_deliveries_total", "channel" => job.channel.clone(), "outcome" => done.new_status.clone()).increment(1);
    }
    tracing::debug!(delivery_id = %job.delivery_id, attempt = job.attempts, outcome = outcome.label(), status = %done.new_status, "attempt done");
    done
}

async fn send(target: &dyn Target, job: &Job, config: &str, to: Option<&str>, state: &AppState) -> Outcome {
    let data: serde_json::Value = serde_json::from_str(&job.data).unwrap_or_default();
    let timestamp = rfc3339(job.event_created_at);
    let severity = Severity::from_stored(&job.severity);
    let recipient = match recipient_of(state, job).await {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let content = if state.channels.get(&job.channel).is_some_and(|c| c.renders()) {
        match content_for(state, job, &data, severity, recipient.as_ref()).await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        }
    } else {
        Content::empty(severity)
    };
    let report = Report::default();
    let push = match super::push::subscriptions(state, job, config, to).await {
        Ok(push) => push,
        Err(outcome) => return outcome,
    };
    let message = Message {
        // A test send's recipient, else the person's address.
        to: to.or(job.address.as_deref()),
        push: &push,
        ..Message::new((&job.delivery_id, &job.event_id), &job.event_type, &timestamp, &data, &content, &report)
    };
    let outcome = target.send(&message, state.config.attempt_timeout).await;
    super::push::forget_gone(state, job, &report).await;
    if report.is_destination_gone() {
        return disable_gone(state, job, outcome).await;
    }
    outcome
}

/// A webhook integration's failing clock (as Svix's, but in the database):
/// the first failed attempt starts it, a success stops it, and a failure
/// past `HERALD_DISABLE_FAILING_AFTER` disables the integration. Writes
/// only when the state changes. Returns a note for the attempt when it
/// disabled the integration. Not for test sends, nor other channels (a
/// person's address failing says nothing about the integration).
async fn failing_clock(state: &AppState, job: &Job, outcome: &Outcome, now: i64) -> Option<String> {
    let id = job.integration_id.as_deref()?;
    let claimed_at = job.integration_updated_at?;
    // A 410 has disabled it already (`disable_gone`).
    if job.channel != "webhook"
        || job.is_test
        || job.integration_enabled != Some(true)
        || outcome.status_code() == Some(410)
    {
        return None;
    }
    let result = match (outcome, job.integration_failing_since) {
        (Outcome::Delivered { .. }, None) => return None,
        (Outcome::Delivered { .. }, Some(_)) => state.db.integration_recovered(&job.tenant_id, id).await,
        (_, None) => state.db.integration_failing(&job.tenant_id, id, now, claimed_at).await,
        (_, Some(since)) => {
            let limit = state.config.disable_failing_after?.as_millis() as i64;
            if now - since < limit {
                return None;
            }
            let reason = format!(
                "every attempt failed from {} to {} (delivery {})",
                rfc3339(since),
                rfc3339(now),
                job.delivery_id
            );
            // The database's clock decides: a success since stopped it.
            match disable(state, job, (id, claimed_at), &reason, Some(now - limit), "failing").await {
                Ok(true) => return Some(format!("failing since {}: the integration is now disabled", rfc3339(since))),
                Ok(false) => return None,
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(integration_id = id, error = %e, "could not update an integration's failing clock");
    }
    None
}

/// A destination gone for good (a webhook endpoint's 410): its integration
/// is disabled, saying why, so no more deliveries are made to it; the
/// attempt says so. Not for a test send: that is how one checks an
/// endpoint, and the answer is in front of whoever sent it.
async fn disable_gone(state: &AppState, job: &Job, outcome: Outcome) -> Outcome {
    let (Some(id), Some(claimed_at), false) = (job.integration_id.as_deref(), job.integration_updated_at, job.is_test)
    else {
        return outcome;
    };
    let reason = format!("the endpoint answered 410 Gone at {} (delivery {})", rfc3339(now_ms()), job.delivery_id);
    let note = match disable(state, job, (id, claimed_at), &reason, None, "gone").await {
        Ok(true) => "the integration is now disabled",
        // Another attempt got there first, or an admin changed it since.
        Ok(false) => "the integration is disabled already, or changed since this attempt began",
        Err(e) => {
            tracing::error!(integration_id = id, error = %e, "could not disable an integration whose endpoint is gone");
            "disabling the integration failed"
        }
    };
    outcome.noted(note)
}

/// Disables the job's integration (`id` as it was at `claimed_at`) on
/// Herald's own decision, saying why; see [`herald_store::Db::disable_integration`].
/// Logged and counted by `why` when it happened.
async fn disable(
    state: &AppState,
    job: &Job,
    (id, claimed_at): (&str, i64),
    reason: &str,
    failing_before: Option<i64>,
    why: &'static str,
) -> Result<bool, herald_store::StoreError> {
    let disabled =
        state.db.disable_integration(&job.tenant_id, id, reason, now_ms(), claimed_at, failing_before).await?;
    if disabled {
        tracing::warn!(integration_id = id, tenant = %job.tenant_id, reason, "integration disabled");
        metrics::counter!("herald_integrations_disabled_total", "reason" => why).increment(1);
    }
    Ok(disabled)
}

/// The person a delivery is for, when it is for one and they still exist.
pub async fn recipient_of(state: &AppState, job: &Job) -> Result<Option<RecipientRow>, Outcome> {
    let Some(id) = &job.recipient_id else { return Ok(None) };
    state.db.get_recipient(&job.tenant_id, id).await.map_err(|e| Outcome::Retry {
        status_code: None,
        after: None,
        error: format!("could not load the recipient: {e}"),
        detail: None,
    })
}

/// The message for people: the tenant's template for the type and channel
/// (in the recipient's locale), else the default rendering.
pub async fn content_for(
    state: &AppState,
    job: &Job,
    data: &serde_json::Value,
    severity: Severity,
    recipient: Option<&RecipientRow>,
) -> Result<Content, Outcome> {
    let templates = state.templates.of_tenant(&state.db, &job.tenant_id).await.map_err(|e| Outcome::Retry {
        status_code: None,
        after: None,
        error: format!("could not load templates: {e}"),
        detail: None,
    })?;
    let locale = recipient.and_then(|r| r.locale.as_deref());
    let template = render::choose(&templates, &job.event_type, &job.channel, locale).map(render::set_of);
    let subject = Subject {
        tenant_id: &job.tenant_id,
        event_id: &job.event_id,
        event_type: &job.event_type,
        severity,
        data,
        created_at: job.event_created_at,
        recipient,
    };
    Ok(render::render_or_default(template.as_ref(), &job.channel, &subject, state.config.public_url.as_deref()))
}
