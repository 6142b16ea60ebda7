//! The `email` channel: a multipart (plain text + themed HTML) mail over a
//! real SMTP conversation, with STARTTLS required or implicit TLS, optional
//! AUTH, and the outbound address policy applied to the server's addresses.
//!
//! Outcomes: a 4yz reply is retried and a 5yz reply fails, both with the
//! server's own text; `status_code` carries the SMTP reply code that decided
//! (250 when sent). A 5yz to one `RCPT TO` refuses that recipient only: when
//! others were accepted the mail is sent to them and the attempt is `sent`,
//! naming the refused ones in its detail; a 4yz to one of them is retried
//! (the whole mail, same Message-ID). Connection failures, DNS failures
//! and timeouts are retried; TLS failures (a certificate that does not
//! verify, a server without STARTTLS) fail.

use std::{fmt, sync::Arc, time::Duration};

use lettre::{
    Address,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, TlsParameters},
    },
};
use serde_json::{Value, json};

use self::{
    config::{Host, MAX_TO, TlsMode},
    smtp::{Pool, Security, Server},
};
use crate::{Channel, ConfigError, Context, Message, Outcome, SendFuture, Target};

mod config;
mod html;
mod smtp;

/// The `email` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Email;

impl Channel for Email {
    fn reaches_people(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "email"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["host", "tls", "from_email"],
            "properties": {
                "host": {
                    "type": "string",
                    "description": "SMTP server host name or IP address; the TLS certificate is verified against it."
                },
                "port": {
                    "type": "integer", "minimum": 1, "maximum": 65535,
                    "description": "SMTP port; defaults to 25 for tls none, 587 for starttls, 465 for implicit."
                },
                "tls": {
                    "type": "string",
                    "enum": ["none", "starttls", "implicit"],
                    "description": "starttls: STARTTLS required (no credentials or mail if the server does not offer it); implicit: TLS from the first byte (SMTPS); none: plain text."
                },
                "username": {
                    "type": "string",
                    "description": "SMTP AUTH user name (AUTH PLAIN or LOGIN); set together with password."
                },
                "password": {
                    "type": "string",
                    "secret": true,
                    "description": "SMTP AUTH password; set together with username."
                },
                "from_email": {
                    "type": "string", "format": "email",
                    "description": "Sender address (From and the envelope sender); its domain names the Message-ID."
                },
                "from_name": {
                    "type": "string",
                    "description": "Sender display name shown with from_email."
                },
                "reply_to": {
                    "type": "string", "format": "email",
                    "description": "Address replies go to (Reply-To)."
                },
                "to": {
                    "type": "array", "maxItems": MAX_TO,
                    "items": {"type": "string", "format": "email"},
                    "description": "Fixed recipients for rules that mail these addresses; a test send's recipient replaces them."
                },
                "ca_cert": {
                    "type": "string",
                    "description": "PEM certificate(s) of a private CA or a self-signed server to trust besides the public roots."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["password"]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (raw, settings) = config::parse(&config)?;
        // Names are checked at every send, after resolving; a literal now.
        if let Host::Ip(ip) = settings.host {
            ctx.policy.check_ip(ip).map_err(|e| ConfigError::new("host", e.to_string()))?;
        }
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        Ok(Arc::new(build_target(config, ctx)?))
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        config::parse_address("recipient", to).map(drop).map_err(|e| e.message)
    }
}

fn build_target(config: &Value, ctx: &Context) -> Result<EmailTarget, ConfigError> {
    let (_, settings) = config::parse(config)?;
    // The certificate is verified against the configured host, whatever address is dialled.
    let tls_parameters = || {
        let mut builder = TlsParameters::builder(settings.host.to_string());
        for der in &settings.ca_certs {
            let cert = Certificate::from_der(der.to_vec())
                .map_err(|e| ConfigError::new("ca_cert", format!("is not a usable certificate ({e})")))?;
            builder = builder.add_root_certificate(cert);
        }
        builder.build_rustls().map_err(|e| ConfigError::new("tls", e.to_string()))
    };
    let security = match settings.tls {
        TlsMode::None => Security::Plain,
        TlsMode::Starttls => Security::Starttls(tls_parameters()?),
        TlsMode::Implicit => Security::Implicit(tls_parameters()?),
    };
    let username = settings.credentials.as_ref().map(|(user, _)| user.clone());
    let server = Server {
        host: settings.host,
        port: settings.port,
        security,
        credentials: settings.credentials.map(|(user, password)| Credentials::new(user, password)),
        policy: ctx.policy,
    };
    let message_id_domain = message_id_domain(&settings.from.email);
    Ok(EmailTarget {
        pool: Pool::new(server),
        username,
        from: settings.from,
        reply_to: settings.reply_to,
        to: settings.to,
        message_id_domain,
    })
}

/// A built email integration: the sender, the fixed recipients and a pool
/// of connections to the server.
pub struct EmailTarget {
    pool: Pool,
    /// Kept for `Debug` only; the credentials live in the pool's server.
    username: Option<String>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    to: Vec<Address>,
    message_id_domain: String,
}

impl fmt::Debug for EmailTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = self.pool.server();
        f.debug_struct("EmailTarget")
            .field("host", &server.host)
            .field("port", &server.port)
            .field("tls", &server.security.mode())
            .field("username", &self.username)
            .field("password", &server.credentials.as_ref().map(|_| "[REDACTED]"))
            .field("from", &self.from.to_string())
            .field("reply_to", &self.reply_to.as_ref().map(ToString::to_string))
            .field("to", &self.to.iter().map(ToString::to_string).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EmailTarget {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        let recipients = match message.to {
            Some(to) => match config::parse_address("recipient", to) {
                Ok(address) => vec![address],
                Err(e) => return failed(format!("recipient {to:?} {}", e.message)),
            },
            None if self.to.is_empty() => return failed("no recipient: set config.to".into()),
            None => self.to.clone(),
        };
        let bytes = match self.format(message, &recipients) {
            Ok(bytes) => bytes,
            Err(e) => return failed(format!("cannot build the message: {e}")),
        };
        let mail = smtp::Mail { from: &self.from.email, to: &recipients, bytes: &bytes };
        match tokio::time::timeout(timeout, self.pool.send(&mail)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                // A timeout after the final dot may still have delivered: the
                // retry carries the same Message-ID, so clients can tell.
                self.pool.reset();
                Outcome::Retry {
                    status_code: None,
                    after: None,
                    error: format!("timed out after {}", human_duration(timeout)),
                    detail: None,
                }
            }
        }
    }

    /// The whole message as sent: headers through lettre's typed builder
    /// (it encodes anything that could break a header line), a plain-text
    /// and an HTML alternative.
    fn format(&self, message: &Message<'_>, recipients: &[Address]) -> Result<Vec<u8>, lettre::error::Error> {
        let content = message.content;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(content.title.clone())
            .message_id(Some(message_id(message.delivery_id, &self.message_id_domain)));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        for to in recipients {
            builder = builder.to(Mailbox::new(None, to.clone()));
        }
        let html = content.html.clone().unwrap_or_else(|| html::render(message));
        let text = content.text.clone().unwrap_or_else(|| content.plain_text());
        let body = MultiPart::alternative_plain_html(text, html);
        Ok(builder.multipart(body)?.formatted())
    }
}

/// A person's mail as it would be sent: subject, plain text and HTML
/// (for template previews).
pub fn preview(message: &Message<'_>) -> (String, String, String) {
    let content = message.content;
    let text = content.text.clone().unwrap_or_else(|| content.plain_text());
    (content.title.clone(), text, content.html.clone().unwrap_or_else(|| html::render(message)))
}

impl Target for EmailTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

/// `<{delivery id}@{domain}>`: the same on every retry of a delivery, so a
/// mail sent twice (a timeout after DATA) is recognisable as one.
fn message_id(delivery_id: &str, domain: &str) -> String {
    format!("<{delivery_id}@{domain}>")
}

/// The sender's domain in ASCII (an internationalised one as punycode).
fn message_id_domain(from: &Address) -> String {
    match url::Host::parse(from.domain()) {
        Ok(url::Host::Domain(ascii)) => ascii,
        _ => from.domain().to_owned(),
    }
}

fn failed(error: String) -> Outcome {
    Outcome::Failed { status_code: None, error, detail: None }
}

/// "15s", or "1500ms" when not a whole number of seconds.
fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Severity,
        testing::{Sample, ctx},
    };

    fn config() -> Value {
        json!({
            "host": "smtp.example.com", "tls": "starttls", "username": "mailer", "password": "hunter2-secret",
            "from_email": "alerts@example.com", "from_name": "Herald Alerts", "reply_to": "ops@example.com",
            "to": ["oncall@example.com", "team@example.org"]
        })
    }

    #[test]
    fn schema_marks_the_password_secret() {
        let schema = Email.schema();
        assert_eq!(schema["properties"]["password"]["secret"], true);
        assert_eq!(Email.secret_fields(), ["password"]);
        for (name, property) in schema["properties"].as_object().unwrap() {
            assert!(property["description"].is_string(), "{name} has no description");
        }
    }

    #[test]
    fn prepare_checks_ip_literals_against_the_policy() {
        let mut config = config();
        config["host"] = json!("169.254.169.254");
        assert_eq!(Email.prepare(config.clone(), &ctx(true)).unwrap_err().field, "host");
        config["host"] = json!("127.0.0.1");
        let err = Email.prepare(config.clone(), &ctx(false)).unwrap_err();
        assert_eq!(err.field, "host");
        assert!(err.message.starts_with("127.0.0.1 is loopback"), "{err}");
        assert!(Email.prepare(config, &ctx(true)).is_ok());
    }

    #[test]
    fn prepare_keeps_the_config_and_build_works() {
        let prepared = Email.prepare(config(), &ctx(false)).unwrap();
        assert_eq!(prepared, config());
        assert!(Email.build(&prepared, &ctx(false)).is_ok());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let target = build_target(&config(), &ctx(false)).unwrap();
        let debug = format!("{target:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("[REDACTED]") && debug.contains("mailer"), "{debug}");
    }

    #[test]
    fn recipients_are_one_clean_address() {
        assert_eq!(Email.check_recipient("someone@example.com"), Ok(()));
        assert!(Email.check_recipient("someone@example.com\r\nBcc: x@example.com").is_err());
        assert!(Email.check_recipient("not an address").is_err());
        assert!(Email.check_recipient("a@example.com, b@example.com").is_err());
    }

    #[test]
    fn message_id_is_the_delivery_id_at_the_sender_domain() {
        assert_eq!(message_id("dlv_01J0", "example.com"), "<dlv_01J0@example.com>");
        let address: Address = "a@bücher.example".parse().unwrap();
        assert_eq!(message_id_domain(&address), "xn--bcher-kva.example");
    }

    #[test]
    fn the_message_has_typed_headers_and_two_alternatives() {
        let target = build_target(&config(), &ctx(false)).unwrap();
        let sample = Sample::new("disk.full", Severity::Warning, json!({"title": "Disk full", "host": "db1"}));
        let message = sample.message();
        let bytes = target.format(&message, &target.to).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Message-ID: <dlv_0190c6b6f3a87c2a9e1f0b1c2d3e4f50@example.com>\r\n"), "{text}");
        assert!(text.contains("From: \"Herald Alerts\" <alerts@example.com>\r\n"), "{text}");
        assert!(text.contains("Reply-To: ops@example.com\r\n"), "{text}");
        assert!(text.contains("To: oncall@example.com, team@example.org\r\n"), "{text}");
        assert!(text.contains("Subject: Disk full\r\n"), "{text}");
        assert!(text.contains("Content-Type: multipart/alternative;"), "{text}");
        assert!(text.contains("Content-Type: text/plain; charset=utf-8"), "{text}");
        assert!(text.contains("Content-Type: text/html; charset=utf-8"), "{text}");
    }
}
