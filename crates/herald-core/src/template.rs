//! Tenant templates: the subject, bodies and titles of a message, written in
//! Jinja (minijinja) and rendered against one event for one recipient.
//!
//! Rendering is sandboxed the way conditions are: no loader (so no
//! `include`, `import` or `extends`), a fuel budget per render, minijinja's
//! recursion limit, and a cap on the output. Event data is a value the
//! template reads, never template source itself: there is no second pass.

mod filters;
mod locale;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, fmt, io, sync::LazyLock};

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, value::Serde};
use serde::{Deserialize, Serialize};

pub use self::locale::{locale_chain, validate_locale, validate_timezone};

/// The longest template source accepted, per field.
pub const MAX_SOURCE: usize = 64 * 1024;

/// The longest output a field may render to.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Instructions (and data, about one per 64 bytes) one render of one field
/// may spend before it is stopped.
const FUEL: u64 = 50_000;

/// Where the filters find the render's timezone. Set after the data keys, so
/// event data cannot override it.
const TZ_KEY: &str = "__herald_timezone";

/// Names the template sees at the top level that event data cannot shadow.
const RESERVED: [&str; 5] = ["data", "recipient", "event", "tenant", TZ_KEY];

/// The environment for plain-text fields: everything is output verbatim.
static TEXT_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| environment(AutoEscape::None));

/// The environment for `html_body`: values are HTML-escaped unless marked `|safe`.
static HTML_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| environment(AutoEscape::Html));

fn environment(escape: AutoEscape) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    // A missing optional data field renders as nothing rather than failing
    // the whole message, and so does a field below it (`data.host.name`
    // without `host`): chainable, unlike conditions' plain lenient mode.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Spans are tracked either way; debug mode would only add snapshots of
    // the context to errors, and differ between debug and release builds.
    env.set_debug(false);
    env.set_auto_escape_callback(move |_| escape.clone());
    filters::register(&mut env);
    env
}

/// One field of a template set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Subject,
    TextBody,
    HtmlBody,
    Title,
    Body,
}

impl Field {
    /// Every field, in the order errors and renders visit them.
    pub const ALL: [Field; 5] = [Field::Subject, Field::TextBody, Field::HtmlBody, Field::Title, Field::Body];

    /// The field's name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Field::Subject => "subject",
            Field::TextBody => "text_body",
            Field::HtmlBody => "html_body",
            Field::Title => "title",
            Field::Body => "body",
        }
    }

    /// Parses a JSON field name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    fn env(self) -> &'static Environment<'static> {
        match self {
            Field::HtmlBody => &HTML_ENV,
            _ => &TEXT_ENV,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A template: the optional fields a channel renders (email uses `subject`,
/// `text_body` and `html_body`; other channels `title` and `body`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl TemplateSet {
    /// The source of one field, if present.
    pub fn get(&self, field: Field) -> Option<&str> {
        match field {
            Field::Subject => self.subject.as_deref(),
            Field::TextBody => self.text_body.as_deref(),
            Field::HtmlBody => self.html_body.as_deref(),
            Field::Title => self.title.as_deref(),
            Field::Body => self.body.as_deref(),
        }
    }

    /// Sets (or clears) one field.
    pub fn set(&mut self, field: Field, source: Option<String>) {
        match field {
            Field::Subject => self.subject = source,
            Field::TextBody => self.text_body = source,
            Field::HtmlBody => self.html_body = source,
            Field::Title => self.title = source,
            Field::Body => self.body = source,
        }
    }

    /// The present fields with their sources.
    pub fn fields(&self) -> impl Iterator<Item = (Field, &str)> {
        Field::ALL.into_iter().filter_map(|f| self.get(f).map(|s| (f, s)))
    }

    /// True when no field is present.
    pub fn is_empty(&self) -> bool {
        self.fields().next().is_none()
    }

    /// Compiles every present field; the first that does not compile is the error.
    pub fn check(&self) -> Result<(), TemplateError> {
        for (field, source) in self.fields() {
            check_size(field, source)?;
            field.env().template_from_str(source).map_err(|e| TemplateError::from_minijinja(field, source, &e))?;
        }
        Ok(())
    }
}

/// A template set rendered for one message: the same fields, each holding
/// its output instead of its source.
pub type Rendered = TemplateSet;

/// What a template sees of one message.
///
/// `data` is the event's data; `recipient` a JSON object or null; `event`
/// carries `id`, `type`, `severity` and `created_at` (RFC 3339); `tenant`
/// carries `id` and `name`. `timezone` (IANA) is where the `datetime` and
/// `date` filters show times (UTC when absent or unknown). `locale` is the
/// recipient's tag, used to pick a template variant (see [`locale_chain`]);
/// rendering itself does not localise numbers or dates yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderContext {
    pub data: serde_json::Value,
    pub recipient: serde_json::Value,
    pub event: serde_json::Value,
    pub tenant: serde_json::Value,
    pub timezone: Option<String>,
    pub locale: Option<String>,
}

impl RenderContext {
    /// The template's root: each top-level key of `data`, then the reserved
    /// names, which win over data keys of the same name.
    fn to_value(&self) -> Value {
        let data = Value::from(Serde(&self.data));
        let mut root: BTreeMap<String, Value> = BTreeMap::new();
        if let serde_json::Value::Object(map) = &self.data {
            for key in map.keys().filter(|k| !RESERVED.contains(&k.as_str())) {
                root.insert(key.clone(), data.get_attr(key).unwrap_or_default());
            }
        }
        root.insert("data".into(), data);
        root.insert("recipient".into(), Value::from(Serde(&self.recipient)));
        root.insert("event".into(), Value::from(Serde(&self.event)));
        root.insert("tenant".into(), Value::from(Serde(&self.tenant)));
        let tz = self.timezone.as_deref().filter(|tz| validate_timezone(tz)).unwrap_or("UTC");
        root.insert(TZ_KEY.into(), Value::from(tz));
        Value::from_pairs(root)
    }
}

/// Renders every present field of `set` against `ctx`.
pub fn render(set: &TemplateSet, ctx: &RenderContext) -> Result<Rendered, TemplateError> {
    let root = ctx.to_value();
    let mut out = Rendered::default();
    for (field, source) in set.fields() {
        out.set(field, Some(render_field(field, source, root.clone())?));
    }
    Ok(out)
}

fn render_field(field: Field, source: &str, root: Value) -> Result<String, TemplateError> {
    check_size(field, source)?;
    let tmpl = field.env().template_from_str(source).map_err(|e| TemplateError::from_minijinja(field, source, &e))?;
    let mut sink = CappedSink::default();
    match tmpl.render_captured_to(root, &mut sink) {
        Ok(_) => Ok(String::from_utf8(sink.buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Err(_) if sink.overflowed => {
            Err(TemplateError::new(field, format!("output is longer than {MAX_OUTPUT} bytes")))
        }
        Err(e) => Err(TemplateError::from_minijinja(field, source, &e)),
    }
}

fn check_size(field: Field, source: &str) -> Result<(), TemplateError> {
    if source.len() > MAX_SOURCE {
        return Err(TemplateError::new(field, format!("template is longer than {MAX_SOURCE} bytes")));
    }
    Ok(())
}

/// Collects a render's output and refuses to grow past [`MAX_OUTPUT`].
#[derive(Default)]
struct CappedSink {
    buf: Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len() + bytes.len() > MAX_OUTPUT {
            self.overflowed = true;
            return Err(io::Error::other("output cap reached"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A template that does not compile or render: the field, the position in
/// its source (1-based; 0 when unknown) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    pub field: Field,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl TemplateError {
    fn new(field: Field, message: String) -> Self {
        Self { field, line: 0, column: 0, message }
    }

    fn from_minijinja(field: Field, source: &str, err: &minijinja::Error) -> Self {
        let message = match err.detail() {
            Some(detail) if err.kind() == minijinja::ErrorKind::SyntaxError => detail.to_owned(),
            Some(detail) => format!("{}: {detail}", err.kind()),
            None => err.kind().to_string(),
        };
        let (line, column) = position(source, err);
        Self { field, line, column, message }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => f.write_str(&self.message),
            (line, 0) => write!(f, "line {line}: {}", self.message),
            (line, column) => write!(f, "line {line}, column {column}: {}", self.message),
        }
    }
}

/// The 1-based line and column (in characters) of an error, from its byte
/// range when minijinja has one; `(0, 0)` when it has neither.
fn position(source: &str, err: &minijinja::Error) -> (usize, usize) {
    let Some(start) = err.range().map(|r| r.start) else {
        return (err.line().unwrap_or(0), 0);
    };
    let Some(before) = source.get(..start.min(source.len())) else {
        return (err.line().unwrap_or(0), 0);
    };
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
