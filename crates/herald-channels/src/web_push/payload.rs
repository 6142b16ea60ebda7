//! What a service worker receives: a small JSON object, made to fit one
//! encrypted record (the body is cut, never split across messages).

use serde::Serialize;

use super::crypto::MAX_PLAINTEXT;
use crate::Message;

/// The decrypted push message.
#[derive(Debug, Clone, Serialize)]
pub struct Payload<'a> {
    pub title: String,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    pub severity: &'static str,
    pub event_type: &'a str,
    pub event_id: &'a str,
    pub delivery_id: &'a str,
    pub timestamp: &'a str,
}

impl<'a> Payload<'a> {
    /// The message's rendered content and ids.
    pub fn of(message: &'a Message<'a>) -> Payload<'a> {
        let content = message.content;
        let body = content.plain_body();
        Payload {
            // The body repeats the title when the event has nothing else to say.
            body: if body == content.title { String::new() } else { body },
            title: content.title.clone(),
            url: content.link.as_deref(),
            severity: content.severity.as_str(),
            event_type: message.event_type,
            event_id: message.event_id,
            delivery_id: message.delivery_id,
            timestamp: message.timestamp,
        }
    }
}

/// The payload as JSON of at most [`MAX_PLAINTEXT`] bytes: the body is cut
/// first (ending with "…"), then the title, then the link is left out.
pub fn fit(mut payload: Payload<'_>) -> Result<Vec<u8>, String> {
    loop {
        let json = serde_json::to_vec(&payload).map_err(|e| format!("payload: {e}"))?;
        if json.len() <= MAX_PLAINTEXT {
            return Ok(json);
        }
        // "…" adds three bytes; escaped characters take more room in JSON
        // than in the text, so the cut is scaled by the text's own ratio.
        let excess = json.len() - MAX_PLAINTEXT + 3;
        if !payload.body.is_empty() {
            payload.body = shorten(&payload.body, excess);
        } else if !payload.title.is_empty() {
            payload.title = shorten(&payload.title, excess);
        } else if payload.url.is_some() {
            payload.url = None;
        } else {
            return Err(format!("the push message is larger than {MAX_PLAINTEXT} bytes even without its text"));
        }
    }
}

/// `text` made about `excess` bytes of JSON shorter (cut on a character
/// boundary), plus "…"; empty when nothing would be left.
fn shorten(text: &str, excess: usize) -> String {
    let text = text.trim_end_matches('…');
    let escaped = serde_json::to_string(text).map_or(text.len(), |json| json.len() - 2);
    // At least one byte goes, so every round makes progress.
    let cut = (excess * text.len()).div_ceil(escaped.max(1)).max(1);
    let keep = text.len().saturating_sub(cut);
    if keep == 0 {
        return String::new();
    }
    let mut end = keep;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::{Severity, testing::Sample};

    #[test]
    fn the_payload_carries_content_and_ids() {
        let sample = Sample::new(
            "disk.full",
            Severity::Critical,
            json!({"title": "Disk full", "message": "/ is at 97%", "host": "db1", "url": "https://grafana.example.com/d/1"}),
        );
        let message = sample.message();
        let json: Value = serde_json::from_slice(&fit(Payload::of(&message)).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "title": "Disk full",
                "body": "/ is at 97%\n\nhost: db1",
                "url": "https://grafana.example.com/d/1",
                "severity": "critical",
                "event_type": "disk.full",
                "event_id": "evt_0190c6b6f3a87c2a9e1f0b1c2d3e4f51",
                "delivery_id": "dlv_0190c6b6f3a87c2a9e1f0b1c2d3e4f50",
                "timestamp": "2026-01-02T03:04:05Z"
            })
        );
        // No body beyond the title: the body is empty rather than a repeat.
        let bare = Sample::new("deploy.done", Severity::Success, json!({}));
        let message = bare.message();
        let json: Value = serde_json::from_slice(&fit(Payload::of(&message)).unwrap()).unwrap();
        assert_eq!(json["title"], "Deploy done");
        assert_eq!(json["body"], "");
    }

    #[test]
    fn long_content_is_cut_to_one_record() {
        // Quotes and control characters grow when escaped; multi-byte characters must not be split.
        for filler in ["x", "é", "\"", "\u{1}", "日本"] {
            let text = filler.repeat(5000);
            let sample = Sample::new("log.line", Severity::Info, json!({"title": text, "message": text}));
            let message = sample.message();
            let bytes = fit(Payload::of(&message)).unwrap();
            assert!(bytes.len() <= MAX_PLAINTEXT, "{filler}: {}", bytes.len());
            let json: Value = serde_json::from_slice(&bytes).unwrap();
            let body = json["body"].as_str().unwrap();
            assert!(body.ends_with('…') && body.chars().count() > 500, "{filler}: {json}");
            assert!(bytes.len() > MAX_PLAINTEXT - 10, "{filler}: the cut is not much more than needed");
            assert_eq!(json["event_type"], "log.line");
            // The title (at most 250 characters) stays whole while the body can give room.
            assert_eq!(json["title"], sample.content.title);
        }
        assert_eq!(shorten("abcdef", 2), "abcd…");
        assert_eq!(shorten("abcd…", 2), "ab…");
        assert_eq!(shorten("ab", 5), "");
        assert_eq!(shorten("aé", 1), "a…");
        // Two bytes of JSON are about one escaped quote of text.
        assert_eq!(shorten("a\"\"\"", 2), "a\"…");
    }
}
