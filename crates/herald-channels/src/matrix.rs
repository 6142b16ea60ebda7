//! The `matrix` channel: an `m.room.message` sent with the client-server
//! API (<https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid>).
//!
//! The transaction id is the delivery id, so a retried send is deduplicated
//! by the homeserver: a message whose answer was lost is not posted twice.
//! Messages are `m.text`, not `m.notice`: the default push rule
//! `.m.rule.suppress_notices` silences notices, and an alert should notify.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::{
    AddressPolicy, Channel, ConfigError, Content, Context, Message, Outcome, SendFuture, Target,
    html_text::escape,
    provider_api::{self, encode_segment, parse_config, required},
};

/// The longest room id or alias accepted (the spec's limit for identifiers).
const MAX_ROOM: usize = 255;

/// The `matrix` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Matrix;

/// The config as the API accepts and stores it (no `Debug`: it holds the token).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct MatrixConfig {
    #[serde(default)]
    homeserver_url: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    room_id: Option<String>,
}

/// Where messages go: a room id, or an alias resolved at each send.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Room {
    /// `!opaque:server`, or `!hash` (room version 12 ids have no server part).
    Id(String),
    /// `#alias:server`.
    Alias(String),
}

fn parse_room(value: &str) -> Result<Room, String> {
    let value = value.trim();
    let clean = value.len() <= MAX_ROOM && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    let valid_id = |rest: &str| match rest.split_once(':') {
        Some((opaque, server)) => !opaque.is_empty() && !server.is_empty(),
        None => !rest.is_empty(),
    };
    let valid_alias =
        |rest: &str| rest.split_once(':').is_some_and(|(name, server)| !name.is_empty() && !server.is_empty());
    match (value.strip_prefix('!'), value.strip_prefix('#')) {
        (Some(rest), _) if clean && valid_id(rest) => Ok(Room::Id(value.to_owned())),
        (_, Some(rest)) if clean && valid_alias(rest) => Ok(Room::Alias(value.to_owned())),
        _ => Err("must be a room id (!opaque:server) or a room alias (#alias:server)".into()),
    }
}

fn check_token(token: &str) -> Result<(), ConfigError> {
    // It goes into an Authorization header: visible ASCII only.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new("access_token", "must be the access token of the sending account (no spaces)"));
    }
    Ok(())
}

/// The validated parts of a config.
struct Parsed {
    base: Url,
    token: String,
    room: Room,
}

fn parse(config: &Value) -> Result<(MatrixConfig, Parsed), ConfigError> {
    let raw: MatrixConfig = parse_config(config)?;
    let base =
        provider_api::parse_base_url("homeserver_url", &required("homeserver_url", raw.homeserver_url.clone())?)?;
    let token = required("access_token", raw.access_token.clone())?;
    check_token(&token)?;
    let room = parse_room(&required("room_id", raw.room_id.clone())?).map_err(|e| ConfigError::new("room_id", e))?;
    Ok((raw, Parsed { base, token, room }))
}

impl Channel for Matrix {
    fn reaches_people(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "matrix"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["homeserver_url", "access_token", "room_id"],
            "properties": {
                "homeserver_url": {
                    "type": "string",
                    "format": "uri",
                    "description": "The homeserver's client-server API base URL (e.g. https://matrix-client.matrix.org), where /_matrix/client lives."
                },
                "access_token": {
                    "type": "string",
                    "secret": true,
                    "description": "The access token of the account that posts (a bot account that has joined the room)."
                },
                "room_id": {
                    "type": "string",
                    "maxLength": MAX_ROOM,
                    "description": "The room to post in: its id (!opaque:server), or an alias (#alias:server) resolved at each send."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["access_token"]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        ctx.policy.check_url(&parsed.base).map_err(|e| ConfigError::new("homeserver_url", e.to_string()))?;
        raw.homeserver_url = Some(provider_api::stored_url(&parsed.base));
        raw.room_id = Some(match parsed.room {
            Room::Id(id) | Room::Alias(id) => id,
        });
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        let (_, parsed) = parse(config)?;
        Ok(Arc::new(MatrixTarget {
            base: parsed.base,
            token: parsed.token,
            room: parsed.room,
            client: ctx.http.clone(),
            policy: ctx.policy,
        }))
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        parse_room(to).map(|_| ())
    }
}

/// A built Matrix room.
pub struct MatrixTarget {
    base: Url,
    token: String,
    room: Room,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for MatrixTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatrixTarget")
            .field("base", &self.base.as_str())
            .field("access_token", &"[REDACTED]")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

/// An `m.room.message` event's content.
#[derive(Serialize)]
struct RoomMessage {
    msgtype: &'static str,
    body: String,
    format: &'static str,
    formatted_body: String,
    /// Empty: the message mentions nobody, so `@room` or a member's name in
    /// event data notifies no one (Matrix 1.7 intentional mentions).
    #[serde(rename = "m.mentions")]
    mentions: serde_json::Map<String, serde_json::Value>,
}

/// The directory's answer for an alias.
#[derive(Deserialize)]
struct Directory {
    room_id: String,
}

impl MatrixTarget {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        if let Some(refused) = provider_api::refused(&self.policy, &self.base) {
            return refused;
        }
        let deadline = Instant::now() + timeout;
        let room = match message.to {
            None => self.room.clone(),
            Some(to) => match parse_room(to) {
                Ok(room) => room,
                Err(e) => return Outcome::Failed { status_code: None, error: format!("recipient: {e}"), detail: None },
            },
        };
        let room_id = match room {
            Room::Id(id) => id,
            Room::Alias(alias) => match self.resolve(&alias, timeout).await {
                Ok(id) => id,
                Err(outcome) => return outcome,
            },
        };
        let url = provider_api::endpoint(
            &self.base,
            &format!(
                "_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                encode_segment(&room_id),
                encode_segment(message.delivery_id)
            ),
        );
        let content = RoomMessage {
            msgtype: "m.text",
            body: format!("{} {}", message.content.theme().emoji, message.content.plain_text()),
            format: "org.matrix.custom.html",
            formatted_body: formatted_body(message.content),
            mentions: serde_json::Map::new(),
        };
        // The alias lookup and the send share the attempt's time.
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let request = self.client.put(url).bearer_auth(&self.token).json(&content);
        classify(crate::http::send_and_classify(request, left).await)
    }

    /// The room an alias points to now (`GET /directory/room/{alias}`).
    async fn resolve(&self, alias: &str, timeout: Duration) -> Result<String, Outcome> {
        let url =
            provider_api::endpoint(&self.base, &format!("_matrix/client/v3/directory/room/{}", encode_segment(alias)));
        let request = self.client.get(url).bearer_auth(&self.token);
        let prefix = |error: String| format!("resolving {alias}: {error}");
        match classify(crate::http::send_and_classify(request, timeout).await) {
            Outcome::Delivered { status_code, detail } => {
                let found =
                    detail.as_deref().and_then(room_id_in).filter(|id| matches!(parse_room(id), Ok(Room::Id(_))));
                found.ok_or_else(|| Outcome::Failed {
                    status_code,
                    error: prefix("the homeserver answered no room id".into()),
                    detail,
                })
            }
            Outcome::Retry { status_code, after, error, detail } => {
                Err(Outcome::Retry { status_code, after, error: prefix(error), detail })
            }
            Outcome::Failed { status_code, error, detail } => {
                Err(Outcome::Failed { status_code, error: prefix(error), detail })
            }
        }
    }
}

impl Target for MatrixTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

/// The `room_id` of a directory answer, also from an excerpt cut short by
/// a long `servers` list (the id comes first).
fn room_id_in(detail: &str) -> Option<String> {
    if let Ok(directory) = serde_json::from_str::<Directory>(detail) {
        return Some(directory.room_id);
    }
    let rest = detail[detail.find("\"room_id\"")? + "\"room_id\"".len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let id = &rest[..rest.find('"')?];
    (!id.contains('\\')).then(|| id.to_owned())
}

/// The HTML rendering: the title in bold behind the severity's symbol, the
/// body with its line breaks, the facts as a list, the link.
fn formatted_body(content: &Content) -> String {
    let mut out = format!("<p><strong>{} {}</strong></p>", content.theme().emoji, escape(&content.title));
    if !content.body.is_empty() {
        let lines: Vec<String> = content.body.lines().map(escape).collect();
        out.push_str(&format!("<p>{}</p>", lines.join("<br>")));
    }
    if !content.fields.is_empty() {
        out.push_str("<ul>");
        for (key, value) in &content.fields {
            out.push_str(&format!("<li><strong>{}:</strong> {}</li>", escape(key), escape(value)));
        }
        out.push_str("</ul>");
    }
    if let Some(link) = &content.link {
        out.push_str(&format!("<p><a href=\"{}\">Open</a></p>", escape(link)));
    }
    out
}

/// A Matrix error: `{"errcode", "error", "retry_after_ms"?}`.
#[derive(Deserialize)]
struct MatrixError {
    #[serde(default)]
    errcode: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

/// Refines the status table's verdict with the homeserver's `errcode` and
/// `error`, and `retry_after_ms` as the wait (a `Retry-After` header is
/// used when the body has none).
fn classify(outcome: Outcome) -> Outcome {
    if matches!(outcome, Outcome::Delivered { .. }) {
        return outcome;
    }
    let Some(err) = provider_api::answer::<MatrixError>(&outcome) else {
        return outcome;
    };
    let reason = match (err.errcode, err.error) {
        (Some(code), Some(text)) => Some(format!("{code}: {text}")),
        (code, text) => code.or(text),
    };
    provider_api::explain(outcome, reason.as_deref(), err.retry_after_ms.map(Duration::from_millis))
}

#[cfg(test)]
mod tests;
