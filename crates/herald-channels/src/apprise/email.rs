//! `mailto://` and `mailtos://`: an SMTP server, its login and the mail's
//! sender and recipients.

use serde_json::{Map, Value, json};

use super::{
    AppriseError,
    url::{Raw, Server, bad_value, is_host_name, list},
};

/// TLS as the email config names it, with its usual port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tls {
    None,
    Starttls,
    Implicit,
}

impl Tls {
    fn name(self) -> &'static str {
        match self {
            Tls::None => "none",
            Tls::Starttls => "starttls",
            Tls::Implicit => "implicit",
        }
    }

    fn port(self) -> u16 {
        match self {
            Tls::None => 25,
            Tls::Starttls => 587,
            Tls::Implicit => 465,
        }
    }
}

/// How a provider wants its login written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Login {
    /// The whole address (`me@gmail.com`).
    Email,
    /// The name before `@`.
    UserId,
    /// Whatever the URL says.
    AsGiven,
}

/// Well-known mail providers, after Apprise's email templates: a URL whose
/// host is the provider's mail domain (`mailtos://me:pw@gmail.com`) sends
/// through the provider's SMTP server without `?smtp=`. (Apprise lists Yahoo
/// as STARTTLS on port 465; Yahoo's 465 is implicit TLS, as here.)
const PROVIDERS: [(&[&str], &str, Tls, Login); 13] = [
    (&["gmail.com"], "smtp.gmail.com", Tls::Starttls, Login::Email),
    (
        &["hotmail.com", "live.com", "hotmail.com.au", "live.com.au"],
        "smtp-mail.outlook.com",
        Tls::Starttls,
        Login::Email,
    ),
    (&["outlook.com", "outlook.com.au", "smtp.outlook.com"], "smtp.outlook.com", Tls::Starttls, Login::Email),
    (&["office365.com", "smtp.office365.com"], "smtp.office365.com", Tls::Starttls, Login::AsGiven),
    (&["yahoo.com", "yahoo.ca"], "smtp.mail.yahoo.com", Tls::Implicit, Login::Email),
    (&["gmx.com", "gmx.net", "gmx.de", "gmx.at", "gmx.ch", "gmx.fr"], "mail.gmx.com", Tls::Starttls, Login::Email),
    (
        &["fastmail.com", "fastmail.fm", "fastmail.net", "fastmail.org"],
        "smtp.fastmail.com",
        Tls::Implicit,
        Login::Email,
    ),
    (&["zoho.com", "zohomail.com"], "smtp.zoho.com", Tls::Starttls, Login::Email),
    (&["yandex.com", "yandex.ru"], "smtp.yandex.ru", Tls::Implicit, Login::UserId),
    (&["sendgrid.com", "sendgrid.net"], "smtp.sendgrid.net", Tls::Implicit, Login::UserId),
    (&["163.com"], "smtp.163.com", Tls::Implicit, Login::Email),
    (&["qq.com", "foxmail.com"], "smtp.qq.com", Tls::Starttls, Login::Email),
    (&["comcast.net"], "smtp.comcast.net", Tls::Implicit, Login::Email),
];

/// `mailto[s]://[user[:password]@]host[:port][/to@x…][?to=…&from=…&name=…&smtp=…&mode=…&reply=…]`.
///
/// Like Apprise: the sender is `?from=` or else `user@host`; with no
/// recipient the mail goes to the sender itself; `mailto` is plain SMTP,
/// `mailtos` STARTTLS on 587, `?mode=ssl` implicit TLS on 465.
pub(super) fn mailto(raw: &Raw) -> Result<Value, AppriseError> {
    let q = &raw.query;
    let to_param = q.take("to");
    let from_param = q.take("from");
    let name_param = q.take("name");
    let smtp_param = q.take("smtp");
    let mode_param = q.take("mode");
    let reply_param = q.take("reply");
    for key in ["cc", "bcc"] {
        q.refuse(key, "Herald's email integration sends To only; list every address in `to`")?;
    }
    if !q.take_prefixed('+').is_empty() {
        return Err(AppriseError::new("query parameter `+…`", "custom mail headers are not supported"));
    }
    let creds = raw.credentials()?;
    let server = Server::parse(&creds.rest)?;
    let mode = match mode_param.map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("ssl") => Some(Tls::Implicit),
        Some("starttls") => Some(Tls::Starttls),
        Some("insecure") => Some(Tls::None),
        Some(_) => return Err(bad_value("mode", "must be ssl, starttls or insecure")),
    };
    let provider = match smtp_param {
        Some(_) => None,
        None => PROVIDERS.iter().find(|(domains, ..)| domains.contains(&server.host.as_str())),
    };
    let scheme_tls = if raw.scheme == "mailtos" { Tls::Starttls } else { Tls::None };
    let tls = mode.or(provider.map(|p| p.2)).unwrap_or(scheme_tls);
    // An explicit mode brings its own port; a provider's port goes with its own TLS.
    let port = server.port.unwrap_or(tls.port());
    let host = match (smtp_param, provider) {
        (Some(smtp), _) => {
            if !is_host_name(smtp) {
                return Err(bad_value("smtp", "must be the SMTP server's host name"));
            }
            smtp.to_ascii_lowercase()
        }
        (None, Some(p)) => p.1.to_owned(),
        (None, None) => server.host.clone(),
    };

    let (from_name, from_email) = sender(from_param, name_param, creds.user.as_deref(), &server)?;
    let mut to = Vec::new();
    for (i, segment) in raw.segments.iter().enumerate() {
        for address in list(segment) {
            to.push(address_or(address, format!("path segment {} (recipient)", i + 1))?);
        }
    }
    for address in list(to_param.unwrap_or_default()) {
        to.push(address_or(address, "query parameter `to`".into())?);
    }
    if to.is_empty() {
        to.push(from_email.clone());
    }

    let mut config = Map::new();
    config.insert("host".into(), json!(host));
    config.insert("port".into(), json!(port));
    config.insert("tls".into(), json!(tls.name()));
    if let Some(password) = creds.password {
        let user = creds
            .user
            .ok_or_else(|| AppriseError::new("user", "is missing before the password (user:password@host)"))?;
        let login = provider.map_or(Login::AsGiven, |p| p.3);
        let username = match login {
            Login::Email if !user.contains('@') => format!("{user}@{}", server.host),
            Login::UserId => user.split('@').next().unwrap_or_default().to_owned(),
            _ => user,
        };
        config.insert("username".into(), json!(username));
        config.insert("password".into(), json!(password));
    }
    config.insert("from_email".into(), json!(from_email));
    if let Some(name) = from_name {
        config.insert("from_name".into(), json!(name));
    }
    if let Some(reply) = reply_param {
        let mut replies = list(reply);
        let first = replies.next().unwrap_or_default();
        if replies.next().is_some() {
            return Err(bad_value("reply", "takes one address"));
        }
        config.insert("reply_to".into(), json!(address_or(first, "query parameter `reply`".into())?));
    }
    config.insert("to".into(), json!(to));
    Ok(Value::Object(config))
}

/// The sender as Apprise finds it: `?from=` (`Name <addr>`, an address, or
/// only a name), `?name=`, else `user@host` with the user cut at any `@`.
fn sender(
    from: Option<&str>,
    name: Option<&str>,
    user: Option<&str>,
    server: &Server,
) -> Result<(Option<String>, String), AppriseError> {
    let (mut from_name, mut from_email) = (name.map(str::to_owned), None);
    if let Some(from) = from {
        match from.split_once('<') {
            Some((display, rest)) => {
                let address = rest.strip_suffix('>').unwrap_or(rest).trim();
                from_email = Some(address_or(address, "query parameter `from`".into())?);
                let display = display.trim().trim_matches('"');
                if !display.is_empty() {
                    from_name = Some(display.to_owned());
                }
            }
            None if from.contains('@') => from_email = Some(address_or(from, "query parameter `from`".into())?),
            None => from_name = Some(from.to_owned()),
        }
    }
    let from_email = match (from_email, user) {
        (Some(address), _) => address,
        (None, Some(user)) => {
            let local = user.split('@').next().unwrap_or_default();
            address_or(&format!("{local}@{}", server.name()), "user".into())?
        }
        (None, None) => {
            return Err(AppriseError::new("user", "is missing: the sender is user@host, or give ?from=address"));
        }
    };
    Ok((from_name, from_email))
}

/// `address` if it looks like one mail address, else an error naming `part`.
/// (The email channel parses addresses for real; this catches slips early.)
fn address_or(address: &str, part: String) -> Result<String, AppriseError> {
    let ok = address.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !address.contains(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | ',' | '"'))
    });
    if ok {
        Ok(address.to_owned())
    } else {
        Err(AppriseError::new(part, "must be an email address (name@example.com)"))
    }
}
