//! The email config: what the API accepts and stores, and the validated
//! [`Settings`] a target is built from. Parsed once; after that the types
//! say it is valid.

use std::{fmt, net::IpAddr};

use lettre::{Address, message::Mailbox};
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ConfigError;

/// At most this many fixed recipients.
pub const MAX_TO: usize = 50;
/// The longest address RFC 5321 allows through a path.
const MAX_ADDRESS: usize = 254;
const MAX_HOST: usize = 253;
const MAX_NAME: usize = 200;
const MAX_CREDENTIAL: usize = 1024;
const MAX_CA_CERT: usize = 64 * 1024;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text, only when chosen explicitly.
    None,
    /// Plain connect, then STARTTLS, required: no credentials or mail
    /// before it succeeded.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

impl TlsMode {
    /// The usual port for the mode: 25, 587 (submission), 465 (submissions).
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
        }
    }
}

/// The config as the API accepts and stores it. No `Debug`: it holds the password.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EmailConfig {
    // Optional here so that a missing value is reported on its own field.
    #[serde(default)]
    host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default)]
    tls: Option<TlsMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default)]
    from_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_cert: Option<String>,
}

/// Where the server is: a name to resolve (and to verify the certificate
/// against) or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A validated config.
pub(super) struct Settings {
    pub host: Host,
    pub port: u16,
    pub tls: TlsMode,
    /// Username and password.
    pub credentials: Option<(String, String)>,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub to: Vec<Address>,
    /// Extra trust anchors (DER), checked to parse.
    pub ca_certs: Vec<CertificateDer<'static>>,
}

/// Parses and validates a config; the stored form comes back normalised.
pub(super) fn parse(config: &Value) -> Result<(EmailConfig, Settings), ConfigError> {
    let mut raw: EmailConfig = serde_path_to_error::deserialize(config).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::new(field, e.into_inner().to_string())
    })?;
    let host = parse_host(raw.host.as_deref())?;
    raw.host = Some(host.to_string());
    let tls = raw.tls.ok_or_else(|| {
        ConfigError::new(
            "tls",
            "is required: \"starttls\" (port 587), \"implicit\" (TLS from the first byte, port 465) \
             or \"none\" (plain text, port 25)",
        )
    })?;
    let port = match raw.port {
        Some(0) => return Err(ConfigError::new("port", "must be between 1 and 65535")),
        Some(port) => port,
        None => tls.default_port(),
    };
    let credentials = match (&raw.username, &raw.password) {
        (None, None) => None,
        (Some(_), None) => return Err(ConfigError::new("password", "is required when username is set")),
        (None, Some(_)) => return Err(ConfigError::new("username", "is required when password is set")),
        (Some(user), Some(password)) => {
            check_text("username", user, MAX_CREDENTIAL)?;
            // AUTH PLAIN joins the parts with NUL; line breaks are never part of a password.
            check_text("password", password, MAX_CREDENTIAL)?;
            Some((user.clone(), password.clone()))
        }
    };
    let from_email = raw.from_email.as_deref().ok_or_else(|| ConfigError::new("from_email", "is required"))?;
    let from_address = parse_address("from_email", from_email)?;
    let from_name = match &raw.from_name {
        None => None,
        Some(name) => {
            check_text("from_name", name, MAX_NAME)?;
            if name.chars().any(char::is_control) {
                return Err(ConfigError::new("from_name", "must not contain control characters"));
            }
            Some(name.trim().to_owned()).filter(|n| !n.is_empty())
        }
    };
    let reply_to = match &raw.reply_to {
        None => None,
        Some(addr) => Some(Mailbox::new(None, parse_address("reply_to", addr)?)),
    };
    if raw.to.len() > MAX_TO {
        return Err(ConfigError::new("to", format!("at most {MAX_TO} addresses")));
    }
    let mut to: Vec<Address> = Vec::with_capacity(raw.to.len());
    for (i, addr) in raw.to.iter().enumerate() {
        let field = format!("to[{i}]");
        let parsed = parse_address(&field, addr)?;
        if to.iter().any(|seen| AsRef::<str>::as_ref(seen).eq_ignore_ascii_case(parsed.as_ref())) {
            return Err(ConfigError::new(field, format!("{parsed} is listed twice")));
        }
        to.push(parsed);
    }
    let ca_certs = match &raw.ca_cert {
        None => Vec::new(),
        Some(_) if tls == TlsMode::None => {
            return Err(ConfigError::new("ca_cert", "is only used with tls \"starttls\" or \"implicit\""));
        }
        Some(pem) => parse_ca_cert(pem)?,
    };
    raw.from_email = Some(from_address.to_string());
    raw.reply_to = reply_to.as_ref().map(|m| m.email.to_string());
    raw.to = to.iter().map(ToString::to_string).collect();
    let settings =
        Settings { host, port, tls, credentials, from: Mailbox::new(from_name, from_address), reply_to, to, ca_certs };
    Ok((raw, settings))
}

/// A host name (IDNA, lower-cased) or an IP literal, with or without brackets.
fn parse_host(host: Option<&str>) -> Result<Host, ConfigError> {
    let bad = |message: &str| ConfigError::new("host", message);
    let host = host.ok_or_else(|| bad("is required"))?;
    if host.contains(['\r', '\n', '\0']) {
        return Err(bad("must not contain CR, LF or NUL"));
    }
    let host = host.trim();
    if host.is_empty() {
        return Err(bad("is required"));
    }
    if host.len() > MAX_HOST || host.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("is not a valid host name or IP address"));
    }
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(name)) if ServerName::try_from(name.as_str()).is_ok() => {
            Ok(Host::Name(name.trim_end_matches('.').to_owned()))
        }
        // The url crate reads "2130706433" or "0x7f.1" as IPv4: refuse such
        // spellings instead of guessing what was meant.
        Ok(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => Err(bad("spell an IP address in its usual form")),
        _ => Err(bad("is not a valid host name or IP address")),
    }
}

/// Refuses the characters that could end a header or a command line.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(ConfigError::new(field, "must not contain CR, LF or NUL"));
    }
    if value.is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ConfigError::new(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

/// One email address (`user@example.com`, no display name).
pub(super) fn parse_address(field: &str, value: &str) -> Result<Address, ConfigError> {
    check_text(field, value, MAX_ADDRESS)?;
    value.trim().parse::<Address>().map_err(|e| ConfigError::new(field, format!("is not a valid email address ({e})")))
}

/// PEM text holding one or more certificates, each usable as a trust anchor.
fn parse_ca_cert(pem: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bad = |message: String| ConfigError::new("ca_cert", message);
    if pem.len() > MAX_CA_CERT {
        return Err(bad(format!("must be at most {} KiB", MAX_CA_CERT / 1024)));
    }
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("is not PEM certificate text ({e})")))?;
    if certs.is_empty() {
        return Err(bad("holds no -----BEGIN CERTIFICATE----- block".into()));
    }
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store.add(cert.clone()).map_err(|e| bad(format!("is not a usable certificate ({e})")))?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A self-signed certificate for `localhost` (only parsed here, never used for a handshake).
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUVKu/avECy3ZDhk5bzzncr1b3YhwwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNDIwMDgxM1oYDzIxMjYxMDMx
MjAwODEzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAR5m52r5R35laiRM4sS8KQpi/QYHdfby7rBdXZjyfgyXxziWKwxza/j
SVmltOZdCp6z2cct6Jp+aKWKYifAUViOo28wbTAdBgNVHQ4EFgQU75uNHf7MP/cO
0T7BpzIdBYoTZL0wHwYDVR0jBBgwFoAU75uNHf7MP/cO0T7BpzIdBYoTZL0wDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSAAwRQIhAIOu7F5e43Ljp0jukHqGdz2V1YxmFuLqgCZs8lA5aP6iAiAQ
FTcI0GJad1dOGJJYcCrN5EhQ2QJvIE+aAr+DDs8MpQ==
-----END CERTIFICATE-----
";

    fn base() -> Value {
        json!({"host": "smtp.example.com", "tls": "starttls", "from_email": "herald@example.com"})
    }

    fn with(changes: Value) -> Value {
        let mut config = base();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                config.as_object_mut().unwrap().remove(k);
            } else {
                config[k] = v.clone();
            }
        }
        config
    }

    fn field(changes: Value) -> String {
        match parse(&with(changes)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.field,
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(json!({"host": null})), "host");
        assert_eq!(field(json!({"host": "bad host"})), "host");
        assert_eq!(field(json!({"host": "smtp.example.com\r\n"})), "host");
        assert_eq!(field(json!({"host": "2130706433"})), "host");
        assert_eq!(field(json!({"port": 0})), "port");
        assert_eq!(field(json!({"port": 70000})), "port");
        assert_eq!(field(json!({"tls": null})), "tls");
        assert_eq!(field(json!({"tls": "ssl"})), "tls");
        assert_eq!(field(json!({"from_email": null})), "from_email");
        assert_eq!(field(json!({"from_email": "not an address"})), "from_email");
        assert_eq!(field(json!({"from_email": "a@example.com\r\nBcc: evil@example.com"})), "from_email");
        assert_eq!(field(json!({"from_name": "Ops\r\nBcc: evil@example.com"})), "from_name");
        assert_eq!(field(json!({"from_name": "Ops\u{0}"})), "from_name");
        assert_eq!(field(json!({"from_name": "Ops\tTeam"})), "from_name");
        assert_eq!(field(json!({"reply_to": "x@example.com\nBcc: evil@example.com"})), "reply_to");
        assert_eq!(field(json!({"reply_to": "nope"})), "reply_to");
        assert_eq!(field(json!({"to": ["ok@example.com", "bad@example.com\r\nBcc: x@example.com"]})), "to[1]");
        assert_eq!(field(json!({"to": ["ok@example.com", "@example.com"]})), "to[1]");
        assert_eq!(field(json!({"to": ["a@example.com", "A@example.com"]})), "to[1]");
        assert_eq!(field(json!({"to": "a@example.com"})), "to");
        let many: Vec<String> = (0..51).map(|i| format!("u{i}@example.com")).collect();
        assert_eq!(field(json!({ "to": many })), "to");
        assert_eq!(field(json!({"username": "u"})), "password");
        assert_eq!(field(json!({"password": "p"})), "username");
        assert_eq!(field(json!({"username": "u\n", "password": "p"})), "username");
        assert_eq!(field(json!({"username": "u", "password": "p\u{0}"})), "password");
        assert_eq!(field(json!({"ca_cert": "not pem"})), "ca_cert");
        assert_eq!(
            field(json!({"ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"})),
            "ca_cert"
        );
        assert_eq!(field(json!({"tls": "none", "ca_cert": CERT})), "ca_cert");
        assert_eq!(field(json!({"cc": ["a@example.com"]})), "cc");
        assert_eq!(parse(&json!("smtp://x")).err().unwrap().field, "");
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let err = parse(&with(json!({"tls": null}))).err().unwrap();
        assert!(err.message.starts_with("is required: \"starttls\""), "{err}");
        let err = parse(&with(json!({"to": ["a@example.com", "b@example.com\r\n"]}))).err().unwrap();
        assert_eq!(err.to_string(), "to[1]: must not contain CR, LF or NUL");
        let err = parse(&with(json!({"ca_cert": "hello"}))).err().unwrap();
        assert_eq!(err.message, "holds no -----BEGIN CERTIFICATE----- block");
    }

    #[test]
    fn ports_default_by_tls_mode() {
        let port = |tls: &str| parse(&with(json!({ "tls": tls }))).map(|(_, s)| s.port).ok();
        assert_eq!(port("none"), Some(25));
        assert_eq!(port("starttls"), Some(587));
        assert_eq!(port("implicit"), Some(465));
        let (raw, settings) = parse(&with(json!({"tls": "implicit", "port": 2465}))).unwrap();
        assert_eq!(settings.port, 2465);
        assert_eq!(serde_json::to_value(&raw).unwrap()["port"], 2465);
    }

    #[test]
    fn valid_configs_are_normalised() {
        let config = with(json!({
            "host": "SMTP.Example.COM.", "username": "u", "password": "p", "from_name": " Ops ",
            "reply_to": " help@example.com ", "to": ["a@example.com", "b@example.org"], "ca_cert": CERT
        }));
        let (raw, settings) = parse(&config).unwrap();
        assert_eq!(settings.host, Host::Name("smtp.example.com".into()));
        assert_eq!(settings.from.to_string(), "Ops <herald@example.com>");
        assert_eq!(settings.reply_to.unwrap().email.to_string(), "help@example.com");
        assert_eq!(settings.to.len(), 2);
        assert_eq!(settings.ca_certs.len(), 1);
        assert_eq!(settings.credentials, Some(("u".into(), "p".into())));
        let stored = serde_json::to_value(&raw).unwrap();
        assert_eq!(stored["host"], "smtp.example.com");
        assert_eq!(stored["reply_to"], "help@example.com");
        assert_eq!(stored["tls"], "starttls");
        // Parsing the stored form again gives the same.
        let (again, _) = parse(&stored).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), stored);

        for (host, expected) in [
            ("127.0.0.1", Host::Ip("127.0.0.1".parse().unwrap())),
            ("[::1]", Host::Ip("::1".parse().unwrap())),
            ("::1", Host::Ip("::1".parse().unwrap())),
            ("bücher.example", Host::Name("xn--bcher-kva.example".into())),
        ] {
            assert_eq!(parse(&with(json!({ "host": host }))).unwrap().1.host, expected, "{host}");
        }
    }
}
