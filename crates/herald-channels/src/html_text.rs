//! HTML for providers that take a small subset of it (Telegram, Matrix,
//! Pushover): event text escaped, and a message built under the provider's
//! length limit by cutting the text, never a tag or an entity.

/// Escapes text for an HTML element or a double-quoted attribute value:
/// `&`, `<`, `>` and `"` (the entities Telegram knows, and all an attribute needs).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        c => out.push(c),
    }
}

fn escaped_len(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        '"' => 6,
        c => c.len_utf16(),
    }
}

/// Length as providers count it: UTF-16 code units (Telegram's unit; for
/// providers counting characters it errs on the short side).
pub(crate) fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// An HTML message under a length limit. Markup goes in whole or not at
/// all; text is escaped and, when it does not fit, cut with "…". After the
/// first cut nothing more is added, so a message never ends in the middle
/// of a tag or an entity and every opened element is closed.
#[derive(Debug)]
pub(crate) struct Html {
    out: String,
    used: usize,
    max: usize,
    full: bool,
}

impl Html {
    /// A message of at most `max` units.
    pub(crate) fn new(max: usize) -> Html {
        Html { out: String::new(), used: 0, max, full: false }
    }

    /// Appends `markup` as it is, if it fits whole.
    pub(crate) fn markup(&mut self, markup: &str) -> &mut Self {
        let n = units(markup);
        if self.full || self.used + n > self.max {
            self.full = true;
        } else {
            self.out.push_str(markup);
            self.used += n;
        }
        self
    }

    /// Appends `text` escaped; what does not fit is cut and marked with "…".
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        if self.full {
            return self;
        }
        let total: usize = text.chars().map(escaped_len).sum();
        if self.used + total <= self.max {
            for c in text.chars() {
                push_escaped(&mut self.out, c);
            }
            self.used += total;
            return self;
        }
        // Keep room for the ellipsis.
        let room = self.max.saturating_sub(self.used + 1);
        let mut kept = 0;
        for c in text.chars() {
            let n = escaped_len(c);
            if kept + n > room {
                break;
            }
            push_escaped(&mut self.out, c);
            kept += n;
        }
        if self.used + kept < self.max {
            self.out.push('…');
            kept += 1;
        }
        self.used += kept;
        self.full = true;
        self
    }

    /// `open`, the escaped `text`, then `close`, which always fits when
    /// `open` did: the text is cut to leave room for it.
    pub(crate) fn element(&mut self, open: &str, text: &str, close: &str) -> &mut Self {
        let close_len = units(close);
        if self.full || self.used + units(open) + close_len > self.max {
            self.full = true;
            return self;
        }
        self.markup(open);
        self.max -= close_len;
        self.text(text);
        self.max += close_len;
        self.out.push_str(close);
        self.used += close_len;
        self
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn escapes_the_four_characters() {
        assert_eq!(escape(r#"a<b>&"c""#), "a&lt;b&gt;&amp;&quot;c&quot;");
        assert_eq!(escape("é 🚨"), "é 🚨");
        assert_eq!(units("🚨a"), 3);
    }

    #[test]
    fn cuts_text_never_markup() {
        let mut html = Html::new(24);
        html.element("<b>", "a&b title", "</b>").markup("\n").text("0123456789").text("never");
        let out = html.finish();
        assert_eq!(out, "<b>a&amp;b title</b>\n01…");
        assert_eq!(units(&out), 24);

        // An entity is never split: "&amp;" does not fit in the 4 units left.
        let mut html = Html::new(12);
        html.element("<b>", "abc&", "</b>");
        assert_eq!(html.finish(), "<b>abc…</b>");

        // Markup that does not fit is left out, and so is everything after it.
        let mut html = Html::new(10);
        html.text("abc").markup("<a href=\"x\">").text("more");
        assert_eq!(html.finish(), "abc");
    }

    proptest! {
        #[test]
        fn never_longer_than_the_limit(text in "[a-z<>&\" é🚨]{0,80}", max in 8usize..60) {
            let mut html = Html::new(max);
            html.element("<b>", &text, "</b>").markup("\n\n").text(&text);
            let out = html.finish();
            prop_assert!(units(&out) <= max, "{out:?} is longer than {max}");
            // Every `&` starts a whole entity.
            for (i, _) in out.match_indices('&') {
                let rest = &out[i..];
                prop_assert!(["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| rest.starts_with(e)), "{out:?}");
            }
            if out.starts_with("<b>") {
                prop_assert!(out.contains("</b>"));
            }
        }
    }
}
