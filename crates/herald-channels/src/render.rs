//! The default rendering of an event for people: a title, a plain-text body,
//! a few facts, a link, and a theme by severity. Every channel that speaks
//! to people (everything but `webhook`) formats this [`Content`] in its
//! provider's shape; templates (later) produce the same struct.

use herald_core::Severity;
use serde_json::Value;

/// The longest title kept, in characters.
pub const MAX_TITLE: usize = 250;
/// The longest body kept, in characters.
pub const MAX_BODY: usize = 4000;
/// At most this many facts.
pub const MAX_FIELDS: usize = 10;
/// The longest fact value kept, in characters.
pub const MAX_FIELD_VALUE: usize = 200;

/// `data` keys read as the title, first found wins.
const TITLE_KEYS: [&str; 4] = ["title", "subject", "summary", "name"];
/// `data` keys read as the body, first found wins.
const BODY_KEYS: [&str; 4] = ["message", "body", "description", "text"];
/// `data` keys read as the link, first found wins (http and https only).
const LINK_KEYS: [&str; 2] = ["url", "link"];

/// A message for people, before a channel gives it its provider's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// One line of plain text.
    pub title: String,
    /// Plain text, possibly several lines; may be empty.
    pub body: String,
    /// Short facts (`host: db1`) shown as a list or table where the provider can.
    pub fields: Vec<(String, String)>,
    /// Where a click should lead: the event's own `url`, else the event in Herald.
    pub link: Option<String>,
    pub severity: Severity,
    /// A tenant template's own HTML (email's `html_body`), used instead of
    /// the themed layout.
    pub html: Option<String>,
    /// A tenant template's own plain text (email's `text_body`), used as
    /// the plain part instead of [`Content::plain_text`].
    pub text: Option<String>,
}

/// How a severity looks: colour and a word (success green, failure red,
/// partial orange, info blue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// `#rrggbb`.
    pub color: &'static str,
    /// The same colour as a number (Discord's embed colour).
    pub color_int: u32,
    /// "Info", "Success", "Warning", "Error", "Critical".
    pub label: &'static str,
    /// A symbol for plain-text channels.
    pub emoji: &'static str,
}

impl Theme {
    pub fn of(severity: Severity) -> Theme {
        let (color_int, color, label, emoji) = match severity {
            Severity::Info => (0x1565C0, "#1565C0", "Info", "ℹ️"),
            Severity::Success => (0x2E7D32, "#2E7D32", "Success", "✅"),
            Severity::Warning => (0xEF6C00, "#EF6C00", "Warning", "⚠️"),
            Severity::Error => (0xC62828, "#C62828", "Error", "❌"),
            Severity::Critical => (0x8E0000, "#8E0000", "Critical", "🚨"),
        };
        Theme { color, color_int, label, emoji }
    }
}

impl Content {
    /// The default rendering of an event. `event_link` is the event's page in
    /// Herald, when a public URL is configured; the event's own `url` or
    /// `link` (http or https) takes precedence.
    pub fn from_event(event_type: &str, severity: Severity, data: &Value, event_link: Option<&str>) -> Content {
        let text =
            |keys: &[&'static str]| keys.iter().find_map(|k| data.get(*k).and_then(non_empty_str).map(|s| (*k, s)));
        let title = text(&TITLE_KEYS);
        let body = text(&BODY_KEYS);
        let link = LINK_KEYS
            .iter()
            .find_map(|k| data.get(*k).and_then(Value::as_str).filter(|s| is_http_url(s)).map(|s| (*k, s)));
        let used = [title.map(|t| t.0), body.map(|b| b.0), link.map(|l| l.0)];
        let fields = match data {
            Value::Object(map) => map
                .iter()
                .filter(|(k, _)| !used.contains(&Some(k.as_str())))
                .filter_map(|(k, v)| scalar_text(v).map(|v| (cut(k, 64), cut(&v, MAX_FIELD_VALUE))))
                .take(MAX_FIELDS)
                .collect(),
            _ => Vec::new(),
        };
        Content {
            title: cut(&one_line(title.map_or_else(|| humanise(event_type), |t| t.1.to_owned()).as_str()), MAX_TITLE),
            body: cut(body.map_or("", |b| b.1), MAX_BODY),
            fields,
            link: link.map(|l| l.1.to_owned()).or_else(|| event_link.map(str::to_owned)),
            severity,
            html: None,
            text: None,
        }
    }

    /// Nothing to show: what channels that do not render get.
    pub fn empty(severity: Severity) -> Content {
        Content {
            title: String::new(),
            body: String::new(),
            fields: Vec::new(),
            link: None,
            severity,
            html: None,
            text: None,
        }
    }

    pub fn theme(&self) -> Theme {
        Theme::of(self.severity)
    }

    /// Body, facts and link as plain text (no title), for channels that
    /// carry the title separately (ntfy, Gotify, Pushover, push).
    pub fn plain_body(&self) -> String {
        let mut out = self.body.clone();
        if !self.fields.is_empty() {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            let facts: Vec<String> = self.fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            out.push_str(&facts.join("\n"));
        }
        if out.is_empty() {
            out = self.title.clone();
        }
        out
    }

    /// Title, body, facts and link as one plain text (SMS, plain email part).
    pub fn plain_text(&self) -> String {
        let mut out = self.title.clone();
        let rest = self.plain_body();
        if rest != self.title {
            out.push_str("\n\n");
            out.push_str(&rest);
        }
        if let Some(link) = &self.link {
            out.push_str("\n\n");
            out.push_str(link);
        }
        out
    }
}

fn non_empty_str(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// A string, number or boolean as text; objects, arrays and null are left out.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// "disk.full" → "Disk full"; "job_failed" → "Job failed".
pub fn humanise(event_type: &str) -> String {
    let spaced: String = event_type.chars().map(|c| if matches!(c, '.' | '_' | '-' | ':') { ' ' } else { c }).collect();
    let spaced = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => event_type.to_owned(),
    }
}

/// Line breaks and other control characters become spaces (titles, subjects).
pub fn one_line(s: &str) -> String {
    let mapped: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, with "…" as the last when cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let end = s.char_indices().nth(max.saturating_sub(1)).map_or(0, |(i, _)| i);
            format!("{}…", &s[..end])
        }
    }
}

/// At most `max` bytes of UTF-8, ending with "…" when cut (for providers
/// whose limits are in bytes).
pub fn cut_bytes_marked(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", cut_bytes(text, max - '…'.len_utf8()))
}

/// At most `max` bytes of `text`, cut on a character boundary (for stored
/// excerpts, whose limits are in bytes).
pub fn cut_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn title_body_link_and_facts_come_from_data() {
        let data = json!({
            "title": "Backup failed", "message": "The nightly backup of db1 failed.",
            "url": "https://ci.example.com/jobs/7", "host": "db1", "attempts": 3, "ok": false,
            "nested": {"skipped": true}, "list": [1], "none": null
        });
        let c = Content::from_event("backup.failed", Severity::Error, &data, Some("https://herald.example/e/1"));
        assert_eq!(c.title, "Backup failed");
        assert_eq!(c.body, "The nightly backup of db1 failed.");
        assert_eq!(c.link.as_deref(), Some("https://ci.example.com/jobs/7"));
        assert_eq!(
            c.fields,
            vec![("attempts".into(), "3".into()), ("host".into(), "db1".into()), ("ok".into(), "false".into())]
        );
        assert_eq!(c.theme().color, "#C62828");
        assert_eq!(
            c.plain_text(),
            "Backup failed\n\nThe nightly backup of db1 failed.\n\nattempts: 3\nhost: db1\nok: false\n\nhttps://ci.example.com/jobs/7"
        );
    }

    #[test]
    fn defaults_when_data_says_little() {
        let c = Content::from_event("disk.full", Severity::Warning, &json!({}), None);
        assert_eq!(c.title, "Disk full");
        assert_eq!(c.body, "");
        assert_eq!(c.link, None);
        assert_eq!(c.plain_body(), "Disk full");
        assert_eq!(c.plain_text(), "Disk full");
        let c = Content::from_event("x", Severity::Info, &json!({"url": "javascript:alert(1)"}), Some("https://h/e/1"));
        assert_eq!(c.link.as_deref(), Some("https://h/e/1"), "only http(s) links are taken from data");
        assert_eq!(c.fields, vec![("url".into(), "javascript:alert(1)".into())]);
        assert_eq!(humanise("job_failed"), "Job failed");
        assert_eq!(humanise("auth.login:failed"), "Auth login failed");
    }

    #[test]
    fn titles_are_one_bounded_line() {
        let c = Content::from_event("x", Severity::Info, &json!({"title": "a\r\nBcc: evil@example.com"}), None);
        assert_eq!(c.title, "a Bcc: evil@example.com");
        let long = "é".repeat(400);
        let c = Content::from_event("x", Severity::Info, &json!({"title": long}), None);
        assert_eq!(c.title.chars().count(), MAX_TITLE);
        assert!(c.title.ends_with('…'));
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
        assert_eq!(cut_bytes("aé", 2), "a");
        assert_eq!(cut_bytes("aé", 3), "aé");
    }

    #[test]
    fn every_severity_has_its_colour() {
        assert_eq!(Theme::of(Severity::Success).color, "#2E7D32");
        assert_eq!(Theme::of(Severity::Info).color, "#1565C0");
        assert_eq!(Theme::of(Severity::Warning).color, "#EF6C00");
        for s in [Severity::Info, Severity::Success, Severity::Warning, Severity::Error, Severity::Critical] {
            let t = Theme::of(s);
            assert_eq!(format!("#{:06X}", t.color_int), t.color);
        }
    }
}
