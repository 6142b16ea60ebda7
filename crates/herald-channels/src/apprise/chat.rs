//! Chat schemes with a bot or user token: Telegram and Matrix.

use serde_json::{Map, Value, json};

use super::{
    AppriseError, alnum_dash, secure, token,
    url::{Raw, Server, bad_value, decode},
    webhooks::one_target,
};

/// `tgram://bottoken/chat_id[:topic]`. The bot token's colon sits where a
/// port would, so the authority is read whole (`123456789:ABC…`, with an
/// optional `bot` prefix, or `%3A` for the colon); Apprise also accepts the
/// token's two halves as `123456789/ABC…`.
///
/// One integration posts to one chat: a second chat id is refused rather
/// than dropped, so nothing a user wrote is silently ignored.
pub(super) fn telegram(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let to = q.take("to");
    let topic = q.take_any(&["topic", "thread"]);
    let silent = q.take_bool("silent")?;
    q.ignore(&["image", "detect", "preview", "mdv", "content"]);
    let bad_token = |message: &str| AppriseError::new("host (bot token)", message.to_owned());
    if raw.authority.contains('@') {
        return Err(bad_token("must be the bot token alone, as @BotFather gives it (123456789:ABC-def…)"));
    }
    let authority = decode(&raw.authority).map_err(|m| bad_token(&m))?;
    let authority = match authority.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("bot") => &authority[3..],
        _ => authority.as_str(),
    };
    let (bot_token, first_chat) = match authority.contains(':') {
        true => (authority.to_owned(), 1),
        false => (format!("{authority}:{}", raw.segment(1, "bot token, second half")?), 2),
    };
    let token_ok = bot_token
        .split_once(':')
        .is_some_and(|(id, secret)| token(id, |c| c.is_ascii_digit()) && token(secret, alnum_dash));
    if !token_ok {
        return Err(bad_token(
            "must be the bot token from @BotFather: digits, a colon, then letters (123456789:ABC-def…)",
        ));
    }
    let targets = raw.targets(first_chat, "chat id", to);
    let (part, target) = one_target(targets, "chat")?.ok_or_else(|| {
        AppriseError::new(
            format!("path segment {first_chat} (chat id)"),
            "is missing: Herald needs the chat id (tgram://bottoken/chat_id)",
        )
    })?;
    let (chat_id, chat_topic) =
        telegram_chat(&target).ok_or_else(|| AppriseError::new(part.clone(), "must be a number or @channelname"))?;
    let mut config = Map::new();
    config.insert("bot_token".into(), json!(bot_token));
    config.insert("chat_id".into(), json!(chat_id));
    // A topic written on the chat id (`-100123:45`) wins over `?topic=`, as in Apprise.
    let thread = match (chat_topic, topic) {
        (Some(t), _) => Some(t.parse::<i64>().map_err(|_| AppriseError::new(part, "has a topic that is too large"))?),
        (None, Some((key, t))) => Some(
            t.parse::<i64>()
                .ok()
                .filter(|t| *t > 0)
                .ok_or_else(|| bad_value(key, "must be the topic's number (message_thread_id)"))?,
        ),
        (None, None) => None,
    };
    if let Some(thread) = thread {
        config.insert("message_thread_id".into(), json!(thread));
    }
    if let Some(silent) = silent {
        config.insert("silent".into(), json!(silent));
    }
    Ok(Value::Object(config))
}

/// A chat id as Apprise reads it: a (negative) number or a public name with
/// an optional `@`, then an optional `:topic`. Names get their `@`, as the
/// Bot API wants them.
fn telegram_chat(target: &str) -> Option<(String, Option<&str>)> {
    let (chat, topic) = match target.split_once(':') {
        Some((c, t)) if token(t, |c| c.is_ascii_digit()) => (c, Some(t)),
        Some(_) => return None,
        None => (target, None),
    };
    let digits = chat.strip_prefix('-').unwrap_or(chat);
    if token(digits, |c| c.is_ascii_digit()) && digits.len() <= 32 {
        return Some((chat.to_owned(), topic));
    }
    let name = chat.strip_prefix('@').unwrap_or(chat);
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '-');
    (first_ok && name.len() > 1 && token(name, alnum_dash)).then(|| (format!("@{name}"), topic))
}

/// `matrix[s]://[user:]token@host[:port]/#room[:server]` or `/!roomid:server`.
///
/// Herald sends with an access token; it does not log in. So the secret in
/// the URL (after `user:`, or alone before `@`, or `?token=`) is taken as
/// the access token, and the user name, if any, is not needed.
pub(super) fn matrix(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let to = q.take("to");
    let token_param = q.take("token");
    let mode = q.take("mode");
    q.ignore(&["image", "discovery", "msgtype", "version", "v"]);
    if mode.is_some_and(|m| !m.eq_ignore_ascii_case("off")) {
        return Err(bad_value("mode", "webhook modes (matrix, slack, t2bot) are not supported; use an access token"));
    }
    let creds = raw.credentials()?;
    let (access_token, part) = match (token_param, creds.password, creds.user) {
        (Some(t), _, _) => (t.to_owned(), "query parameter `token`"),
        (None, Some(p), _) => (p, "password (access token)"),
        (None, None, Some(u)) => (u, "user (access token)"),
        (None, None, None) => {
            return Err(AppriseError::new(
                "user (access token)",
                "is missing: Herald needs an access token (matrixs://TOKEN@host/#room)",
            ));
        }
    };
    if access_token.contains(char::is_whitespace) {
        return Err(AppriseError::new(part, "must not contain spaces"));
    }
    let server = Server::parse(&creds.rest)?;
    let targets = raw.targets(1, "room", to);
    let (part, room) = one_target(targets, "room")?.ok_or_else(|| {
        AppriseError::new("path segment 1 (room)", "is missing: write /#alias:server or /!roomid:server")
    })?;
    let room_id = matrix_room(&room, &server.name())
        .ok_or_else(|| AppriseError::new(part, "must be a room alias (#room[:server]) or a room id (!id:server)"))?;
    Ok(json!({
        "homeserver_url": server.origin(secure(raw)),
        "access_token": access_token,
        "room_id": room_id,
    }))
}

/// `#alias[:server]`, bare `alias[:server]`, or `!id[:server]`; the server
/// defaults to the homeserver's host, as in Apprise.
fn matrix_room(room: &str, host: &str) -> Option<String> {
    let (sigil, rest) = match room.chars().next()? {
        c @ ('#' | '!') => (c, &room[1..]),
        _ => ('#', room),
    };
    let (name, server) = match rest.split_once(':') {
        Some((n, s)) => (n, s),
        None => (rest, host),
    };
    let name_ok = token(name, |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '=' | '-'));
    let server_ok = token(server, |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    (name_ok && server_ok).then(|| format!("{sigil}{name}:{server}"))
}
