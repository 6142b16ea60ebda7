//! The HTML part of a notification mail: a transactional layout themed by
//! severity. Tables and inline styles only, because that is what mail
//! clients (Outlook above all) render consistently; every piece of event
//! text is escaped.

use std::fmt::Write as _;

use crate::{Content, Message, Theme, html_text::escape};

/// The text stack every client has some member of.
const FONT: &str = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";

/// The whole HTML document for `message`.
pub(super) fn render(message: &Message<'_>) -> String {
    let content = message.content;
    let theme = Theme::of(content.severity);
    let color = theme.color;
    let title = escape(&content.title);
    let mut out = String::with_capacity(4096);
    // `write!` into a String cannot fail.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light\">\n<title>{title}</title>\n</head>\n\
         <body style=\"margin:0;padding:0;background-color:#f4f5f7;\">\n\
         <div style=\"display:none;max-height:0;overflow:hidden;mso-hide:all;\">{preheader}</div>\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
         style=\"background-color:#f4f5f7;\">\n<tr><td align=\"center\" style=\"padding:24px 12px;\">\n\
         <table role=\"presentation\" width=\"600\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
         style=\"width:100%;max-width:600px;background-color:#ffffff;border:1px solid #e3e5e8;border-radius:8px;\">\n\
         <tr><td style=\"background-color:{color};border-radius:8px 8px 0 0;padding:14px 24px;font-family:{FONT};\
         font-size:13px;line-height:18px;font-weight:bold;letter-spacing:1px;text-transform:uppercase;\
         color:#ffffff;\">{label}</td></tr>\n\
         <tr><td style=\"padding:24px 24px 8px 24px;font-family:{FONT};\">\
         <h1 style=\"margin:0;font-size:20px;line-height:28px;font-weight:bold;color:#1f2328;\">{title}</h1>\
         </td></tr>\n",
        preheader = escape(&crate::render::cut(&crate::render::one_line(&content.plain_body()), 120)),
        label = escape(theme.label),
    );
    body(&mut out, content);
    facts(&mut out, content);
    if let Some(link) = content.link.as_deref().filter(|l| l.starts_with("https://") || l.starts_with("http://")) {
        let href = escape(link);
        let _ = write!(
            out,
            "<tr><td style=\"padding:16px 24px 8px 24px;\">\
             <table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\"><tr>\
             <td style=\"background-color:{color};border-radius:6px;\">\
             <a href=\"{href}\" target=\"_blank\" style=\"display:inline-block;padding:12px 24px;font-family:{FONT};\
             font-size:15px;line-height:20px;font-weight:bold;color:#ffffff;text-decoration:none;border-radius:6px;\">\
             View details</a></td></tr></table></td></tr>\n\
             <tr><td style=\"padding:4px 24px 0 24px;font-family:{FONT};font-size:12px;line-height:18px;\
             color:#8a9099;word-break:break-all;\">{href}</td></tr>\n"
        );
    }
    let _ = write!(
        out,
        "<tr><td style=\"padding:0 0 24px 0;\"></td></tr>\n</table>\n\
         <table role=\"presentation\" width=\"600\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
         style=\"width:100%;max-width:600px;\">\n<tr><td align=\"center\" style=\"padding:16px 24px;\
         font-family:{FONT};font-size:12px;line-height:18px;color:#8a9099;\">\
         Sent by Herald &middot; {event_type} &middot; {timestamp}</td></tr>\n</table>\n\
         </td></tr>\n</table>\n</body>\n</html>\n",
        event_type = escape(message.event_type),
        timestamp = escape(message.timestamp),
    );
    out
}

/// The body as paragraphs (split on blank lines), line breaks kept.
fn body(out: &mut String, content: &Content) {
    let text = content.body.replace("\r\n", "\n");
    let paragraphs: Vec<&str> = text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect();
    if paragraphs.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<tr><td style=\"padding:8px 24px;font-family:{FONT};font-size:15px;line-height:22px;color:#3c4149;\">"
    );
    for paragraph in paragraphs {
        let lines: Vec<String> = paragraph.lines().map(escape).collect();
        let _ = write!(out, "<p style=\"margin:0 0 12px 0;\">{}</p>", lines.join("<br>\n"));
    }
    out.push_str("</td></tr>\n");
}

/// The facts as a two-column table.
fn facts(out: &mut String, content: &Content) {
    if content.fields.is_empty() {
        return;
    }
    out.push_str(
        "<tr><td style=\"padding:8px 24px;\">\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" \
         style=\"border-collapse:collapse;border-top:1px solid #eceef1;\">\n",
    );
    for (name, value) in &content.fields {
        let _ = writeln!(
            out,
            "<tr><td style=\"padding:8px 12px 8px 0;border-bottom:1px solid #eceef1;font-family:{FONT};\
             font-size:13px;line-height:18px;color:#6a737d;width:35%;vertical-align:top;\">{}</td>\
             <td style=\"padding:8px 0;border-bottom:1px solid #eceef1;font-family:{FONT};font-size:13px;\
             line-height:18px;color:#1f2328;vertical-align:top;word-break:break-word;\">{}</td></tr>",
            escape(name),
            escape(value),
        );
    }
    out.push_str("</table></td></tr>\n");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Severity, testing::Sample};

    #[test]
    fn event_text_is_escaped() {
        let sample = Sample::new(
            "job.failed",
            Severity::Error,
            json!({
                "title": "<b>Build</b> & \"deploy\"",
                "message": "<script>alert('x')</script>\nsecond line\n\nnext paragraph",
                "host": "<img src=x onerror=alert(1)>",
            }),
        );
        let html = render(&sample.message());
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt;<br>\nsecond line</p>"), "{html}");
        assert!(html.contains("<p style=\"margin:0 0 12px 0;\">next paragraph</p>"), "{html}");
        assert!(html.contains("&lt;b&gt;Build&lt;/b&gt; &amp; &quot;deploy&quot;</h1>"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;</td>"), "{html}");
    }

    #[test]
    fn themed_by_severity_with_facts_link_and_footer() {
        let sample = Sample::new(
            "backup.done",
            Severity::Success,
            json!({"title": "Backup done", "url": "https://ci.example.com/b?x=1&y=2", "size": "4 GB"}),
        );
        let html = render(&sample.message());
        assert!(html.contains("background-color:#2E7D32;border-radius:8px 8px 0 0"), "{html}");
        assert!(html.contains(">Success</td>"), "{html}");
        assert!(html.contains("<a href=\"https://ci.example.com/b?x=1&amp;y=2\""), "{html}");
        assert!(html.contains(">size</td>") && html.contains(">4 GB</td>"), "{html}");
        assert!(html.contains("Sent by Herald &middot; backup.done &middot; 2026-01-02T03:04:05Z"), "{html}");
        for (severity, color) in [
            (Severity::Info, "#1565C0"),
            (Severity::Warning, "#EF6C00"),
            (Severity::Error, "#C62828"),
            (Severity::Critical, "#8E0000"),
        ] {
            let html = render(&Sample::new("x", severity, json!({})).message());
            assert!(html.contains(&format!("background-color:{color};")), "{severity:?}");
        }
    }

    #[test]
    fn no_button_without_an_http_link() {
        let mut sample = Sample::new("x", Severity::Info, json!({}));
        sample.content.link = None;
        assert!(!render(&sample.message()).contains("<a "));
        sample.content.link = Some("javascript:alert(1)".into());
        assert!(!render(&sample.message()).contains("<a "));
    }
}
