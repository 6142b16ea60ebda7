//! Schemes that stand for an incoming-webhook URL: Slack, Discord, Teams
//! (connector and Power Automate workflow), Mattermost, Google Chat, and
//! Apprise's generic `json://`, which becomes a Herald webhook.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use url::Url;

use super::{
    AppriseError, alnum, alnum_dash, secure, token,
    url::{Raw, Server, bad_value, list},
};

/// `slack://[botname@]TokenA/TokenB/TokenC[/#channel]`.
pub(super) fn slack(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let mode = q.take("mode");
    let to = q.take("to");
    q.ignore(&["image", "footer", "timestamp", "blocks"]);
    let creds = raw.credentials()?;
    if creds.password.is_some() {
        return Err(AppriseError::new("user", "only a bot name may come before `@` (botname@TokenA/…)"));
    }
    let token_a = super::url::decode(&creds.rest).map_err(|m| AppriseError::new("host (token A)", m))?;
    if token_a.to_ascii_lowercase().starts_with("xo") {
        return Err(AppriseError::new(
            "host (token A)",
            "Slack bot tokens (xoxb-…, xoxp-…) are not supported; use an incoming webhook: slack://TokenA/TokenB/TokenC",
        ));
    }
    if !token(&token_a, alnum) {
        return Err(AppriseError::new(
            "host (token A)",
            "must be the first part of the webhook (T…), letters and digits",
        ));
    }
    let token_b = raw.segment(1, "token B")?;
    let token_c = raw.segment(2, "token C")?;
    for (n, t, what) in [(1, token_b, "token B"), (2, token_c, "token C")] {
        if !token(t, alnum) {
            return Err(AppriseError::new(format!("path segment {n} ({what})"), "must be letters and digits"));
        }
    }
    let host = match mode.map(str::to_ascii_lowercase).as_deref() {
        None | Some("hook") => "hooks.slack.com",
        Some("gov-hook") => "hooks.slack-gov.com",
        Some(_) => {
            return Err(bad_value("mode", "must be hook or gov-hook: Herald posts to incoming webhooks only"));
        }
    };
    // Targets: the path after the tokens, then `?to=` (where `#` also separates).
    let mut targets: Vec<(String, String)> = raw
        .segments
        .iter()
        .enumerate()
        .skip(2)
        .map(|(i, s)| (format!("path segment {} (channel)", i + 1), s.clone()))
        .collect();
    if let Some(to) = to {
        let names = to.split([',', ' ', '#', '/']).filter(|s| !s.is_empty());
        targets.extend(names.map(|s| ("query parameter `to`".to_owned(), s.to_owned())));
    }
    let mut config = Map::new();
    config.insert("webhook_url".into(), json!(format!("https://{host}/services/{token_a}/{token_b}/{token_c}")));
    if let Some((part, target)) = one_target(targets, "channel")? {
        config.insert(
            "channel".into(),
            json!(slack_channel(&target).ok_or_else(|| {
                AppriseError::new(part, "must be #channel, @user or +ID (letters, digits, - _ .)")
            })?),
        );
    }
    if let Some(botname) = creds.user {
        config.insert("username".into(), json!(botname));
    }
    Ok(Value::Object(config))
}

/// Apprise's channel forms: `#name` and bare `name` are channels, `@name` a
/// user, `+ID` an encoded id sent as is.
fn slack_channel(target: &str) -> Option<String> {
    let (prefix, name) = match target.chars().next()? {
        c @ ('#' | '@' | '+') => (c, &target[1..]),
        _ => ('#', target),
    };
    let valid = !name.is_empty()
        && name.len() <= 80
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    valid.then(|| match prefix {
        '+' => name.to_owned(),
        p => format!("{p}{name}"),
    })
}

/// `discord://[botname@]webhook_id/webhook_token`.
pub(super) fn discord(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let botname = q.take("botname");
    let avatar_url = q.take("avatar_url");
    q.ignore(&["avatar", "footer", "footer_logo", "image", "fields", "batch"]);
    let creds = raw.credentials()?;
    if creds.password.is_some() {
        return Err(AppriseError::new("user", "only a bot name may come before `@` (botname@id/token)"));
    }
    let id = super::url::decode(&creds.rest).map_err(|m| AppriseError::new("host (webhook id)", m))?;
    if !token(&id, |c| c.is_ascii_digit()) {
        return Err(AppriseError::new("host (webhook id)", "must be the webhook's number (discord://ID/TOKEN)"));
    }
    let webhook_token = raw.segment(1, "webhook token")?;
    if !token(webhook_token, alnum_dash) {
        return Err(AppriseError::new("path segment 1 (webhook token)", "must be letters, digits, - and _"));
    }
    raw.no_more_segments(1, "discord://webhook_id/webhook_token")?;
    let mut config = Map::new();
    config.insert("webhook_url".into(), json!(format!("https://discord.com/api/webhooks/{id}/{webhook_token}")));
    if let Some(name) = botname.map(str::to_owned).or(creds.user) {
        config.insert("username".into(), json!(name));
    }
    if let Some(avatar) = avatar_url {
        if !(avatar.starts_with("https://") || avatar.starts_with("http://")) {
            return Err(bad_value("avatar_url", "must be an http(s) URL"));
        }
        config.insert("avatar_url".into(), json!(avatar));
    }
    Ok(Value::Object(config))
}

/// `msteams://team/TokenA/TokenB/TokenC[/TokenD]`, or the legacy
/// `msteams://TokenA/TokenB/TokenC` where token A (`x@y`) fills the
/// authority. The version follows Apprise: 1 legacy, 2 with a team, 3 with
/// a fourth token; `?version=` and `?team=` override.
pub(super) fn msteams(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let version = q.take("version");
    let team_param = q.take("team");
    q.ignore(&["image"]);
    let creds = raw.credentials()?;
    if creds.password.is_some() {
        return Err(AppriseError::new("user", "a `:` does not belong in a Teams URL"));
    }
    let rest = super::url::decode(&creds.rest).map_err(|m| AppriseError::new("host", m))?;
    // In the legacy form token A is `user@host`; otherwise the host is the team.
    let (team, token_a, first) = match creds.user {
        Some(user) => (None, (format!("{user}@{rest}"), "host (token A)".to_owned()), 1),
        None => {
            let a = raw.segment(1, "token A")?;
            (Some(rest), (a.to_owned(), "path segment 1 (token A)".to_owned()), 2)
        }
    };
    let team = team_param.map(str::to_owned).or(team);
    let token_b = raw.segment(first, "token B")?;
    let token_c = raw.segment(first + 1, "token C")?;
    let token_d = raw.segments.get(first + 1).map(String::as_str);
    let detected = match (&team, token_d) {
        (None, _) => 1,
        (Some(_), None) => 2,
        (Some(_), Some(_)) => 3,
    };
    let version = match version {
        None => detected,
        Some("1") => 1,
        Some("2") => 2,
        Some("3") => 3,
        Some(_) => return Err(bad_value("version", "must be 1, 2 or 3")),
    };
    let a_ok = token_a.0.split_once('@').is_some_and(|(x, y)| {
        token(x, |c| c.is_ascii_alphanumeric() || c == '-') && token(y, |c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !a_ok {
        return Err(AppriseError::new(token_a.1, "must look like xxxxxxxx-…@yyyyyyyy-… (the part after webhookb2/)"));
    }
    let seg = |n: usize, what: &str| format!("path segment {n} ({what})");
    if !token(token_b, alnum) {
        return Err(AppriseError::new(seg(first, "token B"), "must be letters and digits"));
    }
    if !token(token_c, |c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(AppriseError::new(seg(first + 1, "token C"), "must be letters, digits and -"));
    }
    let (a, b, c) = (&token_a.0, token_b, token_c);
    let webhook_url = match version {
        1 => {
            raw.no_more_segments(first + 1, "msteams://TokenA/TokenB/TokenC")?;
            format!("https://outlook.office.com/webhook/{a}/IncomingWebhook/{b}/{c}")
        }
        _ => {
            let team = team.ok_or_else(|| AppriseError::new("host (team)", "is missing"))?;
            if !token(&team, alnum_dash) {
                return Err(AppriseError::new(
                    "host (team)",
                    "must be the team name of the webhook host (letters, digits, -)",
                ));
            }
            let base = format!("https://{team}.webhook.office.com/webhookb2/{a}/IncomingWebhook/{b}/{c}");
            if version == 2 {
                raw.no_more_segments(first + 1, "msteams://team/TokenA/TokenB/TokenC")?;
                base
            } else {
                let d = raw.segment(first + 2, "token D")?;
                let d_ok = d.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("V2")) && token(&d[2..], alnum_dash);
                if !d_ok {
                    return Err(AppriseError::new(seg(first + 2, "token D"), "must start with V2"));
                }
                raw.no_more_segments(first + 2, "msteams://team/TokenA/TokenB/TokenC/TokenD")?;
                format!("{base}/{d}")
            }
        }
    };
    Ok(json!({"webhook_url": webhook_url, "format": "message_card"}))
}

/// `workflows://host[:port]/workflow/signature` (Power Automate), built into
/// `https://host/workflows/{id}/triggers/manual/paths/invoke?api-version=…&sp=…&sv=…&sig=…`
/// as Apprise does; `?pa=yes` adds the `/powerautomate/automations/direct`
/// prefix of newer flows.
pub(super) fn workflows(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let workflow_param = q.take_any(&["workflow", "id"]);
    let signature_param = q.take_any(&["signature", "sig"]);
    let api_version = q.take_any(&["api-version", "ver"]).map(|(_, v)| v);
    let power_automate = match q.take_bool("pa")? {
        Some(pa) => Some(pa),
        None => q.take_bool("powerautomate")?,
    }
    .unwrap_or(false);
    let sp = q.take("sp").unwrap_or("/triggers/manual/run");
    let sv = q.take("sv").unwrap_or("1.0");
    q.ignore(&["image", "wrap"]);
    let creds = raw.credentials()?;
    if creds.user.is_some() || creds.password.is_some() {
        return Err(AppriseError::new("user", "a workflows:// URL has no user; it is host/workflow/signature"));
    }
    let server = Server::parse(&creds.rest)?;
    // Each value comes from its query parameter or else the next path segment.
    let mut used = 0;
    let mut from_path = |param: Option<(&'static str, &str)>, what: &str| match param {
        Some((key, v)) => Ok((format!("query parameter `{key}`"), v.to_owned())),
        None => {
            used += 1;
            Ok::<_, AppriseError>((format!("path segment {used} ({what})"), raw.segment(used, what)?.to_owned()))
        }
    };
    let (workflow_part, workflow) = from_path(workflow_param, "workflow id")?;
    let (signature_part, signature) = from_path(signature_param, "signature")?;
    raw.no_more_segments(used, "workflows://host/workflow/signature")?;
    if !token(&workflow, alnum_dash) {
        return Err(AppriseError::new(workflow_part, "must be the id after /workflows/ (letters, digits, - _)"));
    }
    if !token(&signature, alnum_dash) {
        return Err(AppriseError::new(signature_part, "must be the sig= value of the flow URL (letters, digits, - _)"));
    }
    let default_version = if power_automate { "2022-03-01-preview" } else { "2016-06-01" };
    let api_version = api_version.unwrap_or(default_version);
    if !token(api_version, |c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(bad_value("api-version", "must look like 2016-06-01"));
    }
    let prefix = if power_automate { "/powerautomate/automations/direct" } else { "" };
    let base = format!("{}{prefix}/workflows/{workflow}/triggers/manual/paths/invoke", server.origin(true));
    let mut url = Url::parse(&base).map_err(|_| AppriseError::new("host", "does not make a valid URL"))?;
    url.query_pairs_mut()
        .append_pair("api-version", api_version)
        .append_pair("sp", sp)
        .append_pair("sv", sv)
        .append_pair("sig", &signature);
    Ok(json!({"webhook_url": url.as_str(), "format": "adaptive_card"}))
}

/// `mmost[s]://[botname@]host[:port][/path]/token[?channel=name]`, posting
/// to `http(s)://host[:port][/path]/hooks/{token}`.
pub(super) fn mattermost(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let mut channels = Vec::new();
    for key in ["channel", "channels", "to"] {
        if let Some(v) = q.take(key) {
            channels
                .extend(list(v).map(|c| (format!("query parameter `{key}`"), c.trim_start_matches('#').to_owned())));
        }
    }
    q.ignore(&["image"]);
    let creds = raw.credentials()?;
    if creds.password.is_some() {
        return Err(AppriseError::new("user", "only a bot name may come before `@` (botname@host/token)"));
    }
    let server = Server::parse(&creds.rest)?;
    let n = raw.segments.len();
    let hook = raw.segments.last().ok_or_else(|| AppriseError::new("path segment 1 (webhook token)", "is missing"))?;
    if !token(hook, alnum_dash) {
        return Err(AppriseError::new(format!("path segment {n} (webhook token)"), "must be letters, digits, - and _"));
    }
    let mut url = base_url(&server, secure(raw))?;
    {
        let mut path = url.path_segments_mut().map_err(|_| AppriseError::new("host", "does not make a valid URL"))?;
        path.clear().extend(&raw.segments[..n - 1]).push("hooks").push(hook);
    }
    let mut config = Map::new();
    config.insert("webhook_url".into(), json!(url.as_str()));
    if let Some((part, channel)) = one_target(channels, "channel")? {
        if !token(&channel, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(AppriseError::new(part, "must be a channel name (letters, digits, - _ .)"));
        }
        config.insert("channel".into(), json!(channel));
    }
    if let Some(botname) = creds.user {
        config.insert("username".into(), json!(botname));
    }
    Ok(Value::Object(config))
}

/// `gchat://workspace/key/token` (Google Chat space webhook).
pub(super) fn gchat(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let workspace_param = q.take("workspace");
    let key_param = q.take("key");
    let token_param = q.take("token");
    q.refuse("thread", "Herald's Google Chat integration does not post into threads")?;
    q.refuse("threadkey", "Herald's Google Chat integration does not post into threads")?;
    let creds = raw.credentials()?;
    if creds.user.is_some() || creds.password.is_some() {
        return Err(AppriseError::new("user", "a gchat:// URL has no user; it is workspace/key/token"));
    }
    let workspace = match workspace_param {
        Some(w) => (w.to_owned(), "query parameter `workspace`".to_owned()),
        None => (
            super::url::decode(&creds.rest).map_err(|m| AppriseError::new("host (workspace)", m))?,
            "host (workspace)".into(),
        ),
    };
    let key = match key_param {
        Some(k) => (k, "query parameter `key`".to_owned()),
        None => (raw.segment(1, "webhook key")?, "path segment 1 (webhook key)".to_owned()),
    };
    let webhook_token = match token_param {
        Some(t) => (t, "query parameter `token`".to_owned()),
        None => (raw.segment(2, "webhook token")?, "path segment 2 (webhook token)".to_owned()),
    };
    if raw.segments.len() > 2 {
        return Err(AppriseError::new(
            "path segment 3 (thread key)",
            "Herald's Google Chat integration does not post into threads; remove it",
        ));
    }
    if !token(&workspace.0, alnum_dash) {
        return Err(AppriseError::new(workspace.1, "must be the space id after /spaces/ (letters, digits, - _)"));
    }
    for (value, part) in [&key, &webhook_token] {
        if value.is_empty() || value.contains(char::is_whitespace) {
            return Err(AppriseError::new(part.clone(), "must be the value from the webhook URL, without spaces"));
        }
    }
    let mut url = Url::parse(&format!("https://chat.googleapis.com/v1/spaces/{}/messages", workspace.0))
        .map_err(|_| AppriseError::new(workspace.1, "does not make a valid URL"))?;
    url.query_pairs_mut().append_pair("key", key.0).append_pair("token", webhook_token.0);
    Ok(json!({"webhook_url": url.as_str()}))
}

/// `json[s]://[host][:port][/path]` with `+Header=value` and `-param=value`
/// query parameters, as a Herald webhook (signed per Standard Webhooks).
pub(super) fn json(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let method = q.take("method");
    let headers = q.take_prefixed('+');
    let params = q.take_prefixed('-');
    let payload = q.take_prefixed(':');
    if let Some((name, _)) = payload.first() {
        return Err(AppriseError::new(
            format!("query parameter `:{name}`"),
            "Herald's webhook body is fixed (type, timestamp, data); payload fields cannot be added",
        ));
    }
    if method.is_some_and(|m| !m.eq_ignore_ascii_case("post")) {
        return Err(bad_value("method", "must be POST: Herald webhooks are always POSTed"));
    }
    let creds = raw.credentials()?;
    if creds.user.is_some() || creds.password.is_some() {
        return Err(AppriseError::new(
            "user",
            "Basic auth in a json:// URL is not supported (webhook headers are not secret); Herald signs each \
             webhook instead (Standard Webhooks)",
        ));
    }
    let server = Server::parse(&creds.rest)?;
    // Keep the path as written (a trailing slash can matter to a receiver);
    // `#` is a character here, not a fragment.
    let url = format!("{}{}", server.origin(secure(raw)), raw.path.replace('#', "%23"));
    let mut url = Url::parse(&url).map_err(|_| AppriseError::new("path", "does not make a valid URL"))?;
    if !params.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &params {
            if name.is_empty() {
                return Err(AppriseError::new("query parameter `-`", "needs a name: -name=value"));
            }
            pairs.append_pair(name, value);
        }
    }
    let mut config = Map::new();
    config.insert("url".into(), json!(url.as_str()));
    if !headers.is_empty() {
        let mut map = BTreeMap::new();
        for (name, value) in headers {
            if name.is_empty() {
                return Err(AppriseError::new("query parameter `+`", "needs a header name: +Name=value"));
            }
            map.insert(name, value);
        }
        config.insert("headers".into(), json!(map));
    }
    Ok(Value::Object(config))
}

/// The origin of `server` as a [`Url`].
fn base_url(server: &Server, secure: bool) -> Result<Url, AppriseError> {
    Url::parse(&server.origin(secure)).map_err(|_| AppriseError::new("host", "does not make a valid URL"))
}

/// One integration sends to one destination: zero or one target, never more.
pub(super) fn one_target(targets: Vec<(String, String)>, what: &str) -> Result<Option<(String, String)>, AppriseError> {
    let mut targets = targets.into_iter();
    let first = targets.next();
    if let Some((part, _)) = targets.next() {
        return Err(AppriseError::new(
            part,
            format!(
                "is a second {what}; a Herald integration sends to one {what}, so create one integration per {what}"
            ),
        ));
    }
    Ok(first)
}
