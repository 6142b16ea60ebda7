//! Splitting an Apprise URL into its raw parts.
//!
//! Apprise URLs are not quite URLs: a Telegram bot token puts a colon where a
//! port would be, a Matrix room or Slack channel starts with `#` (a fragment
//! to any URL parser), and a query key starting with `+` names an HTTP
//! header. So the string is split here by hand: the authority ends at the
//! first `/` or `?`, the path at the first `?`, and `#` is an ordinary
//! character everywhere.

use std::{
    cell::{Cell, RefCell},
    net::{Ipv4Addr, Ipv6Addr},
};

use super::AppriseError;

/// The longest URL accepted; real ones are a few hundred characters.
const MAX_URL_LEN: usize = 4096;

/// Query parameters every Apprise service accepts, about Apprise's own
/// behaviour (timeouts, message splitting, formatting, tags): they mean
/// nothing to Herald and are ignored. `verify` is checked apart.
const APPRISE_GLOBAL: [&str; 10] =
    ["format", "overflow", "emojis", "cto", "rto", "salt", "cache", "tag", "store", "tz"];

/// An Apprise URL cut into its parts; nothing validated beyond the syntax.
pub(super) struct Raw {
    /// Lower-cased.
    pub scheme: String,
    /// Everything between `://` and the first `/` or `?`, not decoded.
    pub authority: String,
    /// The path as written (starts with `/` when there is one), not decoded.
    pub path: String,
    /// The non-empty `/`-separated path segments, percent-decoded.
    pub segments: Vec<String>,
    pub query: Query,
}

impl Raw {
    pub fn split(url: &str) -> Result<Raw, AppriseError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(AppriseError::new("the URL", "is empty"));
        }
        if url.len() > MAX_URL_LEN {
            return Err(AppriseError::new("the URL", format!("is longer than {MAX_URL_LEN} characters")));
        }
        if url.chars().any(char::is_control) {
            return Err(AppriseError::new("the URL", "must not contain control characters (line breaks, tabs…)"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(AppriseError::new("the URL", "must start with a scheme such as `tgram://` or `mailtos://`"));
        };
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-') {
            return Err(AppriseError::new("scheme", "must be letters, such as `tgram` or `mailtos`"));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, q),
            None => (rest, ""),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        let mut segments = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            let n = segments.len() + 1;
            segments.push(decode(raw).map_err(|m| AppriseError::new(format!("path segment {n}"), m))?);
        }
        Ok(Raw {
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.to_owned(),
            path: path.to_owned(),
            segments,
            query: Query::parse(query)?,
        })
    }

    /// Splits the authority at its last `@` into decoded user and password
    /// (either may be absent) and the raw rest (host, port, or a token).
    pub fn credentials(&self) -> Result<Credentials, AppriseError> {
        let Some((userinfo, rest)) = self.authority.rsplit_once('@') else {
            return Ok(Credentials { user: None, password: None, rest: self.authority.clone() });
        };
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        let user = decode(user).map_err(|m| AppriseError::new("user", m))?;
        let password = match password {
            Some(p) => decode(p).map_err(|m| AppriseError::new("password", m))?,
            None => String::new(),
        };
        Ok(Credentials {
            user: Some(user).filter(|u| !u.is_empty()),
            password: Some(password).filter(|p| !p.is_empty()),
            rest: rest.to_owned(),
        })
    }

    /// Path segment `n` (1-based), or an error naming it as `what`.
    pub fn segment(&self, n: usize, what: &str) -> Result<&str, AppriseError> {
        self.segments
            .get(n - 1)
            .map(String::as_str)
            .ok_or_else(|| AppriseError::new(format!("path segment {n} ({what})"), "is missing"))
    }

    /// The path segments from number `first` on, each with its part name,
    /// then the entries of a `?to=` list: the destinations a URL names.
    pub fn targets(&self, first: usize, what: &str, to: Option<&str>) -> Vec<(String, String)> {
        let path = self.segments.iter().enumerate().skip(first - 1);
        let mut targets: Vec<(String, String)> =
            path.map(|(i, s)| (format!("path segment {} ({what})", i + 1), s.clone())).collect();
        targets.extend(list(to.unwrap_or_default()).map(|t| ("query parameter `to`".to_owned(), t.to_owned())));
        targets
    }

    /// Refuses path segments after the first `count`, naming the URL shape.
    pub fn no_more_segments(&self, count: usize, shape: &str) -> Result<(), AppriseError> {
        match self.segments.len() > count {
            true => Err(AppriseError::new(
                format!("path segment {}", count + 1),
                format!("is one too many; the URL is {shape}"),
            )),
            false => Ok(()),
        }
    }
}

/// The user-info part of an authority, decoded, and what follows it, raw.
pub(super) struct Credentials {
    pub user: Option<String>,
    pub password: Option<String>,
    pub rest: String,
}

/// A validated host and optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Server {
    /// A DNS name or an IP address, without brackets.
    pub host: String,
    pub port: Option<u16>,
    ipv6: bool,
}

impl Server {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
    pub fn parse(raw: &str) -> Result<Server, AppriseError> {
        let bad_host = || AppriseError::new("host", "must be a host name or an IP address (IPv6 in brackets: [::1])");
        if raw.is_empty() {
            return Err(AppriseError::new("host", "is missing"));
        }
        let (host, port, ipv6) = if let Some(inner) = raw.strip_prefix('[') {
            let (v6, after) = inner.split_once(']').ok_or_else(bad_host)?;
            v6.parse::<Ipv6Addr>().map_err(|_| bad_host())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
            };
            (v6.to_owned(), port, true)
        } else {
            let (host, port) = match raw.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (raw, None),
            };
            if port.is_some_and(|p| p.contains(':')) {
                return Err(AppriseError::new("host", "an IPv6 address must be written in brackets, e.g. [::1]"));
            }
            if !is_host_name(host) && host.parse::<Ipv4Addr>().is_err() {
                return Err(bad_host());
            }
            (host.to_ascii_lowercase(), port, false)
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| AppriseError::new("port", "must be a number from 1 to 65535"))?,
            ),
        };
        Ok(Server { host, port, ipv6 })
    }

    /// The host as written in a URL or a Matrix id: IPv6 in brackets.
    pub fn name(&self) -> String {
        if self.ipv6 { format!("[{}]", self.host) } else { self.host.clone() }
    }

    /// `http(s)://host[:port]`.
    pub fn origin(&self, secure: bool) -> String {
        let scheme = if secure { "https" } else { "http" };
        let host = self.name();
        match self.port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`.
pub(super) fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Percent-decodes `raw` into UTF-8; a `%` not followed by two hex digits
/// stays as written (as in Apprise). Control characters are refused: a
/// decoded line break could smuggle a header into a mail or a request.
pub(super) fn decode(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| "is not valid UTF-8 once percent-decoded".to_owned())?;
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters (%0A, %0D, %00…)".into());
    }
    Ok(text)
}

/// The query string: `key=value` pairs split on `&` and `;`, keys
/// lower-cased, values percent-decoded with `+` kept as `+` (Apprise's rule:
/// tokens and passwords are full of them). A key starting with `+`, `-` or
/// `:` keeps its case (an HTTP header name, for instance).
///
/// Each service takes the parameters it understands; [`Query::finish`] then
/// refuses whatever is left, naming it, so a typo is never silently ignored.
pub(super) struct Query {
    pairs: Vec<Pair>,
    asked: RefCell<Vec<&'static str>>,
}

struct Pair {
    key: String,
    value: String,
    used: Cell<bool>,
}

impl Query {
    fn parse(query: &str) -> Result<Query, AppriseError> {
        let mut pairs: Vec<Pair> = Vec::new();
        for item in query.split(['&', ';']).filter(|s| !s.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let key = decode(key).map_err(|m| AppriseError::new("query", format!("a parameter name {m}")))?;
            let key = match key.chars().next() {
                Some('+' | '-' | ':') => key.trim().to_owned(),
                _ => key.trim().to_lowercase(),
            };
            if key.is_empty() {
                continue;
            }
            let part = || format!("query parameter `{key}`");
            let value = decode(value).map_err(|m| AppriseError::new(part(), m))?.trim().to_owned();
            if pairs.iter().any(|p| p.key == key) {
                return Err(AppriseError::new(part(), "is given twice"));
            }
            pairs.push(Pair { key, value, used: Cell::new(false) });
        }
        Ok(Query { pairs, asked: RefCell::default() })
    }

    /// The value of `key`, if given and not empty (an empty value counts as
    /// absent, as in Apprise). Marks it as understood.
    pub fn take(&self, key: &'static str) -> Option<&str> {
        self.asked.borrow_mut().push(key);
        let pair = self.pairs.iter().find(|p| p.key == key)?;
        pair.used.set(true);
        Some(pair.value.as_str()).filter(|v| !v.is_empty())
    }

    /// The first of several aliases that is given, with its name.
    pub fn take_any(&self, keys: &[&'static str]) -> Option<(&'static str, &str)> {
        let mut found = None;
        for key in keys {
            if let Some(value) = self.take(key)
                && found.is_none()
            {
                found = Some((*key, value));
            }
        }
        found
    }

    /// A yes/no parameter, read the way Apprise reads it.
    pub fn take_bool(&self, key: &'static str) -> Result<Option<bool>, AppriseError> {
        self.take(key).map(|v| parse_bool(v).ok_or_else(|| bad_value(key, "must be yes or no"))).transpose()
    }

    /// Every `<prefix>name=value` parameter (`+` headers, `-` query
    /// parameters, `:` payload fields), names without the prefix.
    pub fn take_prefixed(&self, prefix: char) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|p| p.key.starts_with(prefix))
            .map(|p| {
                p.used.set(true);
                (p.key[prefix.len_utf8()..].to_owned(), p.value.clone())
            })
            .collect()
    }

    /// Accepts Apprise options that only change how Apprise itself renders a
    /// message (an icon, a footer): Herald renders its own way.
    pub fn ignore(&self, keys: &[&str]) {
        for pair in &self.pairs {
            if keys.contains(&pair.key.as_str()) {
                pair.used.set(true);
            }
        }
    }

    /// Refuses `key` if given, saying why.
    pub fn refuse(&self, key: &'static str, why: &str) -> Result<(), AppriseError> {
        match self.pairs.iter().any(|p| p.key == key) {
            true => Err(AppriseError::new(format!("query parameter `{key}`"), why)),
            false => Ok(()),
        }
    }

    /// Refuses any parameter no one took, naming it and listing those the
    /// scheme understands.
    pub fn finish(&self, scheme: &str) -> Result<(), AppriseError> {
        for pair in &self.pairs {
            let key = pair.key.as_str();
            if pair.used.get() || APPRISE_GLOBAL.contains(&key) {
                continue;
            }
            if key == "verify" {
                if pair.value.is_empty() || parse_bool(&pair.value) == Some(true) {
                    continue;
                }
                return Err(bad_value(
                    "verify",
                    "cannot turn certificate checks off: Herald always verifies TLS certificates",
                ));
            }
            let mut known: Vec<&str> = self.asked.borrow().clone();
            known.sort_unstable();
            known.dedup();
            let message = match known.is_empty() {
                true => format!("is not supported by {scheme}://, which takes no query parameters"),
                false => format!("is not supported by {scheme}://; it understands {}", known.join(", ")),
            };
            return Err(AppriseError::new(format!("query parameter `{key}`"), message));
        }
        Ok(())
    }
}

/// An error about the value of query parameter `key`.
pub(super) fn bad_value(key: &str, message: &str) -> AppriseError {
    AppriseError::new(format!("query parameter `{key}`"), message)
}

/// Apprise's yes/no words (it reads only their first letters).
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "1" | "on" | "enable" | "enabled" | "allow" | "always" => Some(true),
        "no" | "n" | "false" | "f" | "0" | "off" | "disable" | "disabled" | "deny" | "never" => Some(false),
        _ => None,
    }
}

/// Splits a list written in one value or segment: commas and spaces.
pub(super) fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty())
}
