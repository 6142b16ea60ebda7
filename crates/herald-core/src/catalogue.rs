//! Importing a notification catalogue: the notification types an application
//! declares (`notifications_config.json`) and their default templates
//! (`notification_templates.json`), checked and turned into plain values.
//!
//! Unknown fields are ignored in the config (real files carry icons, order
//! and more), but a known field of the wrong type is an error, and so is an
//! unknown key inside a template. Every error names the JSON path of the
//! offending value, such as `categories[0].types[2].id`.

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    event::Severity,
    template::{Field, TemplateSet, validate_locale},
};

/// The most notification types one import may declare.
pub const MAX_TYPES: usize = 10_000;
/// The most template sets one import may carry.
pub const MAX_TEMPLATES: usize = 10_000;
/// The longest notification type id accepted.
pub const MAX_TYPE_ID_LEN: usize = 200;

/// A kind of notification an application sends, as users see it in their preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationType {
    pub id: String,
    pub label: String,
    pub description: Option<String>,
    /// The category's id, or the plugin's name for plugin notifications.
    pub category: Option<String>,
    pub default_enabled: bool,
    /// Channel names, aliases resolved (`push` is `web_push`), without duplicates.
    pub channels: Vec<String>,
    pub severity: Option<Severity>,
    /// A required notification cannot be turned off by the recipient.
    pub required: bool,
}

/// The template of one notification type on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedTemplate {
    pub notification_type: String,
    pub channel: String,
    pub locale: Option<String>,
    pub set: TemplateSet,
}

/// Everything one import declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    pub types: Vec<NotificationType>,
    pub templates: Vec<ImportedTemplate>,
}

/// Why an import is refused: the JSON path of the value and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ImportError {
    pub path: String,
    pub message: String,
}

/// Parses a notifications config, a templates file, or both.
pub fn parse(config: Option<&Value>, templates: Option<&Value>) -> Result<Catalogue, ImportError> {
    let mut catalogue = Catalogue::default();
    if let Some(config) = config {
        catalogue.types = parse_config(config)?;
    }
    if let Some(templates) = templates {
        catalogue.templates = parse_templates(templates)?;
    }
    Ok(catalogue)
}

/// The canonical name of a channel: `push` is `web_push`, `sms` is
/// `twilio_sms`; a name must match `[a-z][a-z0-9_]*`.
pub fn channel_name(name: &str) -> Option<&str> {
    let name = match name {
        "push" => "web_push",
        "sms" => "twilio_sms",
        other => other,
    };
    let mut bytes = name.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    valid.then_some(name)
}

/// Why `id` is not a notification type id, if it is not one.
fn type_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        Some("must not be empty".into())
    } else if id.chars().count() > MAX_TYPE_ID_LEN {
        Some(format!("must be at most {MAX_TYPE_ID_LEN} characters"))
    } else {
        id.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
            .map(|c| format!("may only contain letters, digits and `_ . : -` (found {c:?})"))
    }
}

fn parse_config(config: &Value) -> Result<Vec<NotificationType>, ImportError> {
    let root = object(config, "")?;
    let mut types = Vec::new();
    let mut seen = HashSet::new();
    if let Some(categories) = array_field(root, "categories", "")? {
        for (i, category) in categories.iter().enumerate() {
            let path = format!("categories[{i}]");
            let obj = object(category, &path)?;
            let mut id = None;
            for key in ["id", "name", "label"] {
                if let Some(value) = string_field(obj, key, &path)?.filter(|v| !v.trim().is_empty()) {
                    id = Some(value.to_owned());
                    break;
                }
            }
            let id = id.ok_or_else(|| err(&path, "a category needs an `id` (or a `name` or `label`)"))?;
            let types_path = join(&path, "types");
            for (j, ty) in array_field(obj, "types", &path)?.unwrap_or_default().iter().enumerate() {
                let ty = notification_type(ty, &format!("{types_path}[{j}]"), &id)?;
                add_type(&mut types, &mut seen, ty, &format!("{types_path}[{j}]"))?;
            }
        }
    }
    if let Some(plugins) = root.get("plugins").filter(|v| !v.is_null()) {
        for (name, plugin) in object(plugins, "plugins")? {
            let path = join("plugins", name);
            if name.trim().is_empty() {
                return Err(err(&path, "a plugin needs a name"));
            }
            let list_path = join(&path, "notifications");
            for (j, ty) in
                array_field(object(plugin, &path)?, "notifications", &path)?.unwrap_or_default().iter().enumerate()
            {
                let ty = notification_type(ty, &format!("{list_path}[{j}]"), name)?;
                add_type(&mut types, &mut seen, ty, &format!("{list_path}[{j}]"))?;
            }
        }
    }
    Ok(types)
}

fn add_type(
    types: &mut Vec<NotificationType>,
    seen: &mut HashSet<String>,
    ty: NotificationType,
    path: &str,
) -> Result<(), ImportError> {
    if types.len() == MAX_TYPES {
        return Err(err(path, &format!("more than {MAX_TYPES} notification types")));
    }
    if !seen.insert(ty.id.clone()) {
        return Err(err(&join(path, "id"), &format!("duplicate notification type id {:?}", ty.id)));
    }
    types.push(ty);
    Ok(())
}

fn notification_type(value: &Value, path: &str, category: &str) -> Result<NotificationType, ImportError> {
    let obj = object(value, path)?;
    let id = string_field(obj, "id", path)?.ok_or_else(|| err(&join(path, "id"), "is required"))?;
    if let Some(problem) = type_id_problem(id) {
        return Err(err(&join(path, "id"), &problem));
    }
    let label = string_field(obj, "label", path)?.ok_or_else(|| err(&join(path, "label"), "is required"))?;
    if label.trim().is_empty() {
        return Err(err(&join(path, "label"), "must not be empty"));
    }
    let severity = match string_field(obj, "severity", path)? {
        None => None,
        Some(s) => Some(severity(s).ok_or_else(|| {
            err(&join(path, "severity"), &format!("unknown severity {s:?} (info, success, warning, error, critical)"))
        })?),
    };
    let mut channels: Vec<String> = Vec::new();
    let listed = obj.get("channels").is_some_and(|c| !c.is_null());
    let channels_path = join(path, "channels");
    for (k, channel) in array_field(obj, "channels", path)?.unwrap_or_default().iter().enumerate() {
        let channel_path = format!("{channels_path}[{k}]");
        let raw = channel.as_str().ok_or_else(|| err(&channel_path, "must be a string"))?;
        let name = channel_name(raw).ok_or_else(|| err(&channel_path, &bad_channel(raw)))?;
        if !channels.iter().any(|c| c == name) {
            channels.push(name.to_owned());
        }
    }
    Ok(NotificationType {
        id: id.to_owned(),
        label: label.to_owned(),
        description: string_field(obj, "description", path)?.map(str::to_owned),
        category: Some(category.to_owned()),
        default_enabled: bool_field(obj, "default_enabled", path)?.unwrap_or(true),
        // A type that names no channels goes to the inbox, like a type
        // nobody defined; one that lists none on purpose (`[]`) stays silent.
        channels: if listed { channels } else { vec!["in_app".to_owned()] },
        severity,
        required: bool_field(obj, "required", path)?.unwrap_or(false),
    })
}

fn severity(name: &str) -> Option<Severity> {
    Some(match name {
        "info" => Severity::Info,
        "success" => Severity::Success,
        "warning" => Severity::Warning,
        "error" => Severity::Error,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

fn parse_templates(file: &Value) -> Result<Vec<ImportedTemplate>, ImportError> {
    let root = object(file, "")?;
    let locale = string_field(root, "locale", "")?;
    if let Some(locale) = locale.filter(|l| !validate_locale(l)) {
        return Err(err("locale", &format!("{locale:?} is not a locale tag such as `de` or `pt-BR`")));
    }
    let by_type = root.get("templates").filter(|v| !v.is_null()).ok_or_else(|| err("templates", "is required"))?;
    let mut out = Vec::new();
    for (type_id, channels) in object(by_type, "templates")? {
        let type_path = join("templates", type_id);
        if let Some(problem) = type_id_problem(type_id) {
            return Err(err(&type_path, &format!("notification type id {problem}")));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (raw, set) in object(channels, &type_path)? {
            let path = join(&type_path, raw);
            let channel = channel_name(raw).ok_or_else(|| err(&path, &bad_channel(raw)))?;
            if seen.contains(&channel) {
                return Err(err(&path, &format!("a second template for channel {channel:?}")));
            }
            seen.push(channel);
            if out.len() == MAX_TEMPLATES {
                return Err(err(&path, &format!("more than {MAX_TEMPLATES} templates")));
            }
            let set = template_set(set, &path)?;
            out.push(ImportedTemplate {
                notification_type: type_id.clone(),
                channel: channel.to_owned(),
                locale: locale.map(str::to_owned),
                set,
            });
        }
    }
    Ok(out)
}

fn template_set(value: &Value, path: &str) -> Result<TemplateSet, ImportError> {
    let mut set = TemplateSet::default();
    for (key, source) in object(value, path)? {
        let field_path = join(path, key);
        let field = Field::from_name(key)
            .ok_or_else(|| err(&field_path, "unknown field (expected subject, text_body, html_body, title or body)"))?;
        match source {
            Value::Null => {}
            Value::String(s) => set.set(field, Some(s.clone())),
            _ => return Err(err(&field_path, "must be a string")),
        }
    }
    set.check().map_err(|e| err(&join(path, e.field.name()), &e.to_string()))?;
    Ok(set)
}

fn bad_channel(raw: &str) -> String {
    format!("{raw:?} is not a channel name (lowercase letters, digits and `_`, starting with a letter)")
}

fn err(path: &str, message: &str) -> ImportError {
    ImportError { path: path.to_owned(), message: message.to_owned() }
}

/// `parent.key`, or `parent["key"]` when the key is not a plain identifier.
fn join(parent: &str, key: &str) -> String {
    let mut chars = key.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::from(key)),
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ImportError> {
    value.as_object().ok_or_else(|| err(if path.is_empty() { "$" } else { path }, "must be an object"))
}

/// A field that may be absent or null, else must be a string.
fn string_field<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>, ImportError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(err(&join(path, key), "must be a string")),
    }
}

fn bool_field(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, ImportError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(err(&join(path, key), "must be true or false")),
    }
}

fn array_field<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a [Value]>, ImportError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(err(&join(path, key), "must be an array")),
    }
}
