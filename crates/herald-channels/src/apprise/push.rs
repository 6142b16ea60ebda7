//! Push services: ntfy, Gotify and Pushover.

use serde_json::{Map, Value, json};
use url::Url;

use super::{
    AppriseError, alnum, alnum_dash, secure, token,
    url::{Raw, Server, bad_value, decode, is_host_name, list},
    webhooks::one_target,
};

/// `ntfy[s]://topic` (on ntfy.sh) or `ntfy[s]://[user:pass@|token@]host[:port]/topic`.
///
/// Like Apprise: a host followed by a topic is a private server; a lone
/// name is a topic on ntfy.sh (`?mode=cloud|private` decides otherwise). A
/// user of the form `tk_…` with no password, `?token=` or `?auth=token` make
/// token authentication; otherwise user and password are Basic auth.
pub(super) fn ntfy(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let to = q.take("to");
    let token_param = q.take("token");
    let auth = q.take("auth");
    let mode = q.take("mode");
    let priority = q.take("priority");
    let tags = q.take_any(&["tags", "xtags"]).map(|(_, v)| v);
    q.ignore(&["image", "avatar_url"]);
    let creds = raw.credentials()?;
    let mut topics = raw.targets(1, "topic", to);
    let host_like = is_host_name(creds.rest.split(':').next().unwrap_or_default()) || creds.rest.starts_with('[');
    let cloud = match mode.map(str::to_ascii_lowercase).as_deref() {
        Some("cloud") => true,
        Some("private") => false,
        None => !host_like || topics.is_empty(),
        Some(_) => return Err(bad_value("mode", "must be cloud or private")),
    };
    let server_url = if cloud {
        // The "host" is really the first topic, unless it names ntfy.sh itself.
        let first = decode(&creds.rest).map_err(|m| AppriseError::new("host (topic)", m))?;
        if !first.is_empty() && !first.eq_ignore_ascii_case("ntfy.sh") {
            topics.insert(0, ("host (topic)".to_owned(), first));
        }
        None
    } else {
        Some(Server::parse(&creds.rest)?.origin(secure(raw)))
    };
    let (part, topic) = one_target(topics, "topic")?.ok_or_else(|| {
        AppriseError::new("path segment 1 (topic)", "is missing (ntfys://host/topic or ntfys://topic)")
    })?;
    if !token(&topic, alnum_dash) || topic.len() > 64 {
        return Err(AppriseError::new(part, "must be 1 to 64 letters, digits, - or _"));
    }
    let mut config = Map::new();
    if let Some(url) = server_url {
        config.insert("server_url".into(), json!(url));
    }
    config.insert("topic".into(), json!(topic));
    let use_token = match auth.map(str::to_ascii_lowercase).as_deref() {
        Some("token") => true,
        Some("basic") => false,
        Some(_) => return Err(bad_value("auth", "must be basic or token")),
        None => {
            token_param.is_some()
                || (creds.password.is_none() && creds.user.as_deref().is_some_and(|u| u.starts_with("tk_")))
        }
    };
    if use_token {
        let secret = token_param
            .map(str::to_owned)
            .or(creds.password)
            .or(creds.user)
            .ok_or_else(|| bad_value("auth", "is token, but no token is given (token@host, or ?token=)"))?;
        config.insert("token".into(), json!(secret));
    } else {
        if let Some(user) = creds.user {
            config.insert("username".into(), json!(user));
        }
        if let Some(password) = creds.password {
            config.insert("password".into(), json!(password));
        }
    }
    if let Some(p) = priority {
        let levels = [
            ("min", 1),
            ("low", 2),
            ("moderate", 2),
            ("default", 3),
            ("normal", 3),
            ("high", 4),
            ("max", 5),
            ("urgent", 5),
            ("emergency", 5),
        ];
        let value = level(p, &levels, 1..=5)
            .ok_or_else(|| bad_value("priority", "must be 1-5 or min, low, default, high, max"))?;
        config.insert("priority".into(), json!(value));
    }
    if let Some(tags) = tags {
        config.insert("tags".into(), json!(list(tags).collect::<Vec<_>>()));
    }
    Ok(Value::Object(config))
}

/// `gotify[s]://host[:port][/path]/apptoken`.
pub(super) fn gotify(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let priority = q.take("priority");
    let creds = raw.credentials()?;
    if creds.user.is_some() || creds.password.is_some() {
        return Err(AppriseError::new("user", "a gotify:// URL has no user; the app token is the last path segment"));
    }
    let server = Server::parse(&creds.rest)?;
    let n = raw.segments.len();
    let app_token = raw.segments.last().ok_or_else(|| AppriseError::new("path segment 1 (app token)", "is missing"))?;
    if !token(app_token, |c| alnum_dash(c) || c == '.') {
        return Err(AppriseError::new(format!("path segment {n} (app token)"), "must be letters, digits, . - and _"));
    }
    let mut url = Url::parse(&server.origin(secure(raw))).map_err(|_| AppriseError::new("host", "is not valid"))?;
    url.path_segments_mut()
        .map_err(|_| AppriseError::new("host", "is not valid"))?
        .clear()
        .extend(&raw.segments[..n - 1]);
    let mut config = Map::new();
    config.insert("server_url".into(), json!(url.as_str().trim_end_matches('/')));
    config.insert("app_token".into(), json!(app_token));
    if let Some(p) = priority {
        let names = [("low", 0), ("moderate", 3), ("normal", 5), ("high", 8), ("emergency", 10)];
        let value = level(p, &names, 0..=10)
            .ok_or_else(|| bad_value("priority", "must be 0-10 or low, moderate, normal, high, emergency"))?;
        config.insert("priority".into(), json!(value));
    }
    Ok(Value::Object(config))
}

/// `pover://user_key@app_token[/device]`.
pub(super) fn pushover(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let to = q.take("to");
    let priority = q.take("priority");
    let sound = q.take("sound");
    let creds = raw.credentials()?;
    let user_key =
        creds.user.ok_or_else(|| AppriseError::new("user (user key)", "is missing (pover://user_key@app_token)"))?;
    if creds.password.is_some() {
        return Err(AppriseError::new("user (user key)", "a `:` does not belong here (pover://user_key@app_token)"));
    }
    if !token(&user_key, alnum) {
        return Err(AppriseError::new("user (user key)", "must be your Pushover user key (letters and digits)"));
    }
    let app_token = decode(&creds.rest).map_err(|m| AppriseError::new("host (app token)", m))?;
    if !token(&app_token, alnum) {
        return Err(AppriseError::new("host (app token)", "must be the application's API token (letters and digits)"));
    }
    let devices = raw.targets(1, "device", to);
    let mut config = Map::new();
    config.insert("user_key".into(), json!(user_key));
    config.insert("app_token".into(), json!(app_token));
    if let Some((part, device)) = one_target(devices, "device")? {
        if device.starts_with('#') {
            return Err(AppriseError::new(
                part,
                "Pushover groups are not supported; use the group key as the user key",
            ));
        }
        if !token(&device, alnum_dash) || device.len() > 25 {
            return Err(AppriseError::new(part, "must be a device name (up to 25 letters, digits, - or _)"));
        }
        config.insert("device".into(), json!(device));
    }
    if let Some(p) = priority {
        let names = [("low", -2), ("moderate", -1), ("normal", 0), ("high", 1), ("emergency", 2)];
        let value = level(p, &names, -2..=2)
            .ok_or_else(|| bad_value("priority", "must be -2 to 2 or low, moderate, normal, high, emergency"))?;
        config.insert("priority".into(), json!(value));
    }
    if let Some(sound) = sound {
        if !token(sound, |c| c.is_ascii_alphabetic()) || sound.len() > 12 {
            return Err(bad_value("sound", "must be a Pushover sound name (pushover, siren, none…)"));
        }
        config.insert("sound".into(), json!(sound.to_ascii_lowercase()));
    }
    Ok(Value::Object(config))
}

/// A priority given as a number in `range` or as a name (or the start of
/// one: `h` for high, as Apprise reads it).
fn level(given: &str, names: &[(&str, i64)], range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    if let Ok(n) = given.parse::<i64>() {
        return range.contains(&n).then_some(n);
    }
    let given = given.to_ascii_lowercase();
    names.iter().find(|(name, _)| name.starts_with(&given)).map(|(_, v)| *v)
}
