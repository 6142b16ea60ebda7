//! The create-issue request body: summary, description (an Atlassian
//! Document Format document for API 3, wiki markup for API 2), labels,
//! priority.

use serde_json::{Value, json};

use super::ApiVersion;
use crate::{
    Content,
    render::{cut, one_line},
};

/// Jira refuses a summary longer than this.
pub const MAX_SUMMARY: usize = 255;

/// What the config puts in every issue.
pub struct Fields<'a> {
    pub project_key: &'a str,
    pub issue_type: &'a str,
    pub labels: &'a [String],
    pub priority: Option<&'a str>,
    pub version: ApiVersion,
}

/// `{"fields": {...}}` for `POST /rest/api/{v}/issue`.
pub fn body(fields: &Fields<'_>, content: &Content) -> Value {
    let description = match fields.version {
        ApiVersion::V3 => adf(content),
        ApiVersion::V2 => Value::String(wiki(content)),
    };
    let mut body = json!({
        "project": {"key": fields.project_key},
        "issuetype": {"name": fields.issue_type},
        "summary": cut(&one_line(&content.title), MAX_SUMMARY),
        "description": description,
        "labels": fields.labels,
    });
    if let Some(priority) = fields.priority {
        body["priority"] = json!({"name": priority});
    }
    json!({"fields": body})
}

/// An Atlassian Document Format document: the body as paragraphs (a blank
/// line starts a new one, a single newline is a hard break), the facts as a
/// bullet list with bold names, and the link as a link mark.
pub fn adf(content: &Content) -> Value {
    let mut blocks: Vec<Value> = content.body.split("\n\n").filter_map(paragraph).collect();
    if !content.fields.is_empty() {
        let items: Vec<Value> = content
            .fields
            .iter()
            .map(|(name, value)| {
                let mut inline =
                    vec![json!({"type": "text", "text": format!("{name}:"), "marks": [{"type": "strong"}]})];
                if !value.is_empty() {
                    inline.push(json!({"type": "text", "text": format!(" {value}")}));
                }
                json!({"type": "listItem", "content": [{"type": "paragraph", "content": inline}]})
            })
            .collect();
        blocks.push(json!({"type": "bulletList", "content": items}));
    }
    if let Some(link) = &content.link {
        blocks.push(json!({
            "type": "paragraph",
            "content": [{"type": "text", "text": link, "marks": [{"type": "link", "attrs": {"href": link}}]}]
        }));
    }
    if blocks.is_empty() {
        blocks.extend(paragraph(&content.title));
    }
    json!({"type": "doc", "version": 1, "content": blocks})
}

/// One ADF paragraph of `text`, lines joined by hard breaks; `None` when
/// there is no text (ADF refuses empty text nodes).
fn paragraph(text: &str) -> Option<Value> {
    let mut inline = Vec::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()) {
        if !inline.is_empty() {
            inline.push(json!({"type": "hardBreak"}));
        }
        inline.push(json!({"type": "text", "text": line}));
    }
    (!inline.is_empty()).then(|| json!({"type": "paragraph", "content": inline}))
}

/// Wiki markup: the body, the facts as a bullet list, then the link. Event
/// text is escaped where wiki markup would turn it into a link, an image, a
/// macro or a table; emphasis characters are left as they are.
pub fn wiki(content: &Content) -> String {
    let mut parts = Vec::new();
    let body = content.body.trim();
    if !body.is_empty() {
        parts.push(escape(body));
    }
    if !content.fields.is_empty() {
        let facts: Vec<String> = content
            .fields
            .iter()
            .map(|(name, value)| format!("* *{}:* {}", escape_name(name), escape(value)))
            .collect();
        parts.push(facts.join("\n"));
    }
    if let Some(link) = &content.link {
        // `|` and `]` would end the link early; they are percent-encoded, which a URL allows.
        let href = link.replace('|', "%7C").replace(']', "%5D").replace('[', "%5B");
        parts.push(format!("[{href}]"));
    }
    if parts.is_empty() {
        parts.push(escape(&content.title));
    }
    parts.join("\n\n")
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // The backslash too: `\[` would otherwise become `\\[`, a line break
        // followed by live link markup.
        if matches!(c, '[' | ']' | '{' | '}' | '|' | '!' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A fact name goes inside `*…*`: a `*` of its own would end the bold early.
fn escape_name(name: &str) -> String {
    escape(name).replace('*', "\\*")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Severity;

    fn sample() -> Content {
        let data = json!({
            "title": "Backup failed\non db1", "message": "The nightly backup failed.\nExit code 3.\n\nSee the log.",
            "url": "https://ci.example.com/jobs/7", "host": "db1", "attempts": 3
        });
        Content::from_event("backup.failed", Severity::Error, &data, None)
    }

    #[test]
    fn v3_body_is_an_adf_document() {
        let labels = vec!["ops".to_owned(), "herald".to_owned()];
        let fields = Fields {
            project_key: "OPS",
            issue_type: "Task",
            labels: &labels,
            priority: Some("High"),
            version: ApiVersion::V3,
        };
        assert_eq!(
            body(&fields, &sample()),
            json!({"fields": {
                "project": {"key": "OPS"},
                "issuetype": {"name": "Task"},
                "summary": "Backup failed on db1",
                "description": {"type": "doc", "version": 1, "content": [
                    {"type": "paragraph", "content": [
                        {"type": "text", "text": "The nightly backup failed."},
                        {"type": "hardBreak"},
                        {"type": "text", "text": "Exit code 3."}
                    ]},
                    {"type": "paragraph", "content": [{"type": "text", "text": "See the log."}]},
                    {"type": "bulletList", "content": [
                        {"type": "listItem", "content": [{"type": "paragraph", "content": [
                            {"type": "text", "text": "attempts:", "marks": [{"type": "strong"}]},
                            {"type": "text", "text": " 3"}
                        ]}]},
                        {"type": "listItem", "content": [{"type": "paragraph", "content": [
                            {"type": "text", "text": "host:", "marks": [{"type": "strong"}]},
                            {"type": "text", "text": " db1"}
                        ]}]}
                    ]},
                    {"type": "paragraph", "content": [{"type": "text", "text": "https://ci.example.com/jobs/7",
                        "marks": [{"type": "link", "attrs": {"href": "https://ci.example.com/jobs/7"}}]}]}
                ]},
                "labels": ["ops", "herald"],
                "priority": {"name": "High"}
            }})
        );
    }

    #[test]
    fn v2_body_is_wiki_markup() {
        let fields =
            Fields { project_key: "OPS", issue_type: "Bug", labels: &[], priority: None, version: ApiVersion::V2 };
        let body = body(&fields, &sample());
        assert_eq!(
            body["fields"]["description"],
            json!(
                "The nightly backup failed.\nExit code 3.\n\nSee the log.\n\n* *attempts:* 3\n* *host:* db1\n\n[https://ci.example.com/jobs/7]"
            )
        );
        assert!(body["fields"].get("priority").is_none());
        assert_eq!(body["fields"]["labels"], json!([]));
    }

    #[test]
    fn event_text_cannot_make_wiki_links_images_or_macros() {
        let data = json!({"message": "see [here|http://evil] !http://evil/x.png! {code}x{code} a|b", "k*y": "v]"});
        let c = Content::from_event("x", Severity::Info, &data, Some("https://h/e?a=[1]|2"));
        assert_eq!(
            wiki(&c),
            "see \\[here\\|http://evil\\] \\!http://evil/x.png\\! \\{code\\}x\\{code\\} a\\|b\n\n* *k\\*y:* v\\]\n\n[https://h/e?a=%5B1%5D%7C2]"
        );
    }

    #[test]
    fn an_event_with_nothing_but_a_title_still_has_a_description() {
        let c = Content::from_event("disk.full", Severity::Warning, &json!({}), None);
        assert_eq!(
            adf(&c),
            json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Disk full"}]}]})
        );
        assert_eq!(wiki(&c), "Disk full");
    }

    #[test]
    fn the_summary_is_one_line_of_at_most_255_characters() {
        let mut c = sample();
        c.title = format!("{}\r\nInjected", "é".repeat(300));
        let fields =
            Fields { project_key: "OPS", issue_type: "Bug", labels: &[], priority: None, version: ApiVersion::V2 };
        let summary = body(&fields, &c)["fields"]["summary"].as_str().unwrap().to_owned();
        assert_eq!(summary.chars().count(), MAX_SUMMARY);
        assert!(!summary.contains('\n') && summary.ends_with('…'));
    }
}
