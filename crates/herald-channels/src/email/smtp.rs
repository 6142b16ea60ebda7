//! The SMTP side of the email channel: resolving the server under the
//! address policy, a small pool of ready (encrypted, authenticated)
//! connections, and one mail transaction that reads the reply to each
//! recipient.
//!
//! lettre's high-level transport ends the whole transaction at the first
//! refused `RCPT TO`, so one bad address among the configured ones would
//! stop mail to all of them. This module drives lettre's connection itself
//! (connect, STARTTLS, AUTH, then MAIL / RCPT / DATA with lettre's typed
//! commands), which lets a transaction go on with the accepted recipients;
//! it therefore keeps its own pool.

use std::{
    error::Error as StdError,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use herald_core::Outcome;
use lettre::{
    Address,
    transport::smtp::{
        Error as SmtpError,
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, TlsParameters},
        commands::{self, Data, Rcpt, Rset},
        extension::{ClientId, Extension, MailBodyParameter, MailParameter},
        response::Response,
    },
};

use super::config::{Host, TlsMode};
use crate::{AddressPolicy, outbound::CONNECT_TIMEOUT, render::cut};

/// How long a resolved address list is used before the host is resolved again.
pub(super) const ROUTE_TTL: Duration = Duration::from_secs(5 * 60);
/// A parked connection older than this is closed rather than reused
/// (servers drop idle clients after a few minutes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per integration.
const MAX_IDLE: usize = 4;
/// The AUTH mechanisms used, in order of preference.
const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];
/// Errors and details are cut to this many characters (a server's reply
/// may run to many lines, and fifty refusals add up).
const MAX_TEXT: usize = 1024;

/// How to reach and log in to one SMTP server.
pub(super) struct Server {
    pub host: Host,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
    pub policy: AddressPolicy,
}

/// How the connection is protected; the TLS parameters verify the
/// certificate against the configured host, whatever address is dialled.
pub(super) enum Security {
    Plain,
    Starttls(TlsParameters),
    Implicit(TlsParameters),
}

impl Security {
    pub fn mode(&self) -> TlsMode {
        match self {
            Security::Plain => TlsMode::None,
            Security::Starttls(_) => TlsMode::Starttls,
            Security::Implicit(_) => TlsMode::Implicit,
        }
    }
}

/// A server's connections: the resolved addresses and the idle connections.
pub(super) struct Pool {
    server: Server,
    hello: ClientId,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    route: Option<Route>,
    idle: Vec<Parked>,
    /// Bumped whenever the route is dropped; parked connections of an older
    /// generation are closed instead of reused.
    generation: u64,
}

struct Route {
    addrs: Vec<SocketAddr>,
    resolved: Instant,
}

struct Parked {
    conn: AsyncSmtpConnection,
    since: Instant,
    generation: u64,
}

/// One mail to send: envelope and the formatted message.
pub(super) struct Mail<'a> {
    pub from: &'a Address,
    pub to: &'a [Address],
    pub bytes: &'a [u8],
}

impl Pool {
    pub fn new(server: Server) -> Pool {
        Pool { server, hello: ClientId::default(), state: Mutex::default() }
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Sends `mail` over a pooled or new connection. Not bounded in time:
    /// the caller wraps it in the attempt's timeout.
    pub async fn send(&self, mail: &Mail<'_>) -> Outcome {
        let (mut conn, generation) = match self.connection().await {
            Ok(ready) => ready,
            Err(outcome) => return outcome,
        };
        let (outcome, reusable) = transaction(&mut conn, mail, &self.server.host).await;
        if reusable {
            self.park(conn, generation);
        } else {
            conn.abort().await;
            if matches!(outcome, Outcome::Retry { status_code: None, .. }) {
                // The connection broke: the server may have moved.
                self.reset();
            }
        }
        outcome
    }

    /// Forgets the resolved addresses and the idle connections, so the next
    /// send resolves and connects afresh (after a connection error or a timeout).
    pub fn reset(&self) {
        let mut state = self.state.lock().expect("pool lock");
        state.route = None;
        state.idle.clear();
        state.generation += 1;
    }

    fn park(&self, conn: AsyncSmtpConnection, generation: u64) {
        let mut state = self.state.lock().expect("pool lock");
        if state.generation == generation && state.idle.len() < MAX_IDLE {
            state.idle.push(Parked { conn, since: Instant::now(), generation });
        }
    }

    /// A live idle connection, or a new one.
    async fn connection(&self) -> Result<(AsyncSmtpConnection, u64), Outcome> {
        loop {
            let parked = {
                let mut state = self.state.lock().expect("pool lock");
                let current = state.generation;
                state.idle.retain(|p| p.generation == current && p.since.elapsed() < IDLE_TIMEOUT);
                state.idle.pop()
            };
            let Some(mut parked) = parked else { break };
            // A NOOP tells a live connection from one the server closed.
            if parked.conn.test_connected().await {
                return Ok((parked.conn, parked.generation));
            }
            parked.conn.abort().await;
        }
        let (addrs, generation) = self.route().await?;
        match self.open(&addrs).await {
            Ok(conn) => Ok((conn, generation)),
            Err(outcome) => {
                if matches!(outcome, Outcome::Retry { .. }) {
                    self.reset();
                }
                Err(outcome)
            }
        }
    }

    /// The addresses to dial: resolved at most every [`ROUTE_TTL`], each
    /// checked against the policy, so what is dialled is what was checked.
    async fn route(&self) -> Result<(Vec<SocketAddr>, u64), Outcome> {
        {
            let state = self.state.lock().expect("pool lock");
            if let Some(route) = &state.route
                && route.resolved.elapsed() < ROUTE_TTL
            {
                return Ok((route.addrs.clone(), state.generation));
            }
        }
        let port = self.server.port;
        let addrs = match &self.server.host {
            Host::Ip(ip) => {
                self.server.policy.check_ip(*ip).map_err(|refused| failed(None, refused.to_string()))?;
                vec![SocketAddr::new(*ip, port)]
            }
            Host::Name(name) => {
                let resolved = crate::outbound::PolicyResolver::new(self.server.policy)
                    .resolve_allowed(name)
                    .await
                    .map_err(|e| match e.downcast_ref::<crate::outbound::Refused>() {
                        Some(refused) => failed(None, refused.to_string()),
                        None => retry(None, format!("cannot resolve {name}: {e}")),
                    })?;
                resolved.into_iter().map(|a| SocketAddr::new(a.ip(), port)).collect()
            }
        };
        let mut state = self.state.lock().expect("pool lock");
        state.route = Some(Route { addrs: addrs.clone(), resolved: Instant::now() });
        Ok((addrs, state.generation))
    }

    /// Connects, secures and logs in.
    async fn open(&self, addrs: &[SocketAddr]) -> Result<AsyncSmtpConnection, Outcome> {
        let server = &self.server;
        let implicit = match &server.security {
            Security::Implicit(parameters) => Some(parameters.clone()),
            Security::Plain | Security::Starttls(_) => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(addrs, Some(CONNECT_TIMEOUT), &self.hello, implicit, None)
            .await
            .map_err(|e| self.connect_error(&e, "connect", addrs))?;
        if let Security::Starttls(parameters) = &server.security {
            if !conn.server_info().supports_feature(Extension::StartTls) {
                // STARTTLS is required: nothing else goes over this connection.
                let _ = conn.quit().await;
                return Err(failed(
                    None,
                    format!(
                        "{}:{} does not offer STARTTLS, which tls \"starttls\" requires; \
                         no credentials or mail were sent",
                        server.host, server.port
                    ),
                ));
            }
            conn.starttls(parameters.clone(), &self.hello)
                .await
                .map_err(|e| self.connect_error(&e, "STARTTLS", addrs))?;
        }
        if let Some(credentials) = &server.credentials {
            if conn.server_info().get_auth_mechanism(&MECHANISMS).is_none() {
                let _ = conn.quit().await;
                return Err(failed(
                    None,
                    format!(
                        "{}:{} offers neither AUTH PLAIN nor AUTH LOGIN; no mail was sent",
                        server.host, server.port
                    ),
                ));
            }
            conn.auth(&MECHANISMS, credentials).await.map_err(|e| classify(&e, "AUTH", &server.host))?;
        }
        Ok(conn)
    }

    fn connect_error(&self, err: &SmtpError, stage: &str, addrs: &[SocketAddr]) -> Outcome {
        if tls_error(err).is_some() || err.is_tls() || err.status().is_some() || err.is_client() {
            return classify(err, stage, &self.server.host);
        }
        let dialled: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        retry(None, format!("cannot connect to {} ({}): {err}", self.server.host, dialled.join(", ")))
    }
}

/// MAIL, one RCPT per recipient, DATA. Returns the outcome and whether the
/// connection is in a clean state to be reused.
async fn transaction(conn: &mut AsyncSmtpConnection, mail: &Mail<'_>, host: &Host) -> (Outcome, bool) {
    let info = conn.server_info();
    let mut parameters = Vec::new();
    if mail.to.iter().chain([mail.from]).any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii()) {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            let error = "an address is not ASCII and the server does not support SMTPUTF8";
            return (failed(None, error.into()), false);
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !mail.bytes.is_ascii() && info.supports_feature(Extension::EightBitMime) {
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if let Err(e) = conn.command(commands::Mail::new(Some(mail.from.clone()), parameters)).await {
        return (classify(&e, "MAIL FROM", host), false);
    }
    // A refusal names one recipient only: the others still get the mail.
    let mut refused: Vec<(&Address, SmtpError)> = Vec::new();
    for to in mail.to {
        match conn.command(Rcpt::new(to.clone(), Vec::new())).await {
            Ok(_) => {}
            Err(e) if e.status().is_some() => refused.push((to, e)),
            Err(e) => return (classify(&e, "RCPT TO", host), false),
        }
    }
    if refused.len() == mail.to.len() {
        let clean = conn.command(Rset).await.is_ok();
        return (all_refused(&refused), clean);
    }
    if let Err(e) = conn.command(Data).await {
        return (classify(&e, "DATA", host), false);
    }
    match conn.message(mail.bytes).await {
        Ok(response) => {
            let mut detail = reply_text(&response);
            if !refused.is_empty() {
                detail.push_str(&format!("; refused: {}", refusals(&refused)));
            }
            let detail = Some(cut(&detail, MAX_TEXT));
            // A recipient deferred (4yz: greylisting, a full mailbox) must get
            // the mail later: the whole mail is sent again, with the same
            // Message-ID, so the others can tell the repeat for what it is.
            if let Some((to, e)) = refused.iter().find(|(_, e)| e.is_transient()) {
                let error = cut(&format!("RCPT TO <{to}>: {} (the others got the mail)", reply_of(e)), MAX_TEXT);
                let status_code = e.status().and_then(|c| c.to_string().parse().ok());
                return (Outcome::Retry { status_code, after: None, error, detail }, true);
            }
            (Outcome::Delivered { status_code: code_of(&response), detail }, true)
        }
        // The server answered the final dot: the transaction is over either way.
        Err(e) if e.status().is_some() => (classify(&e, "DATA", host), true),
        Err(e) => (classify(&e, "DATA", host), false),
    }
}

/// Every recipient refused: a retry when any refusal was transient (4yz).
fn all_refused(refused: &[(&Address, SmtpError)]) -> Outcome {
    let error = if refused.len() == 1 {
        let (to, e) = &refused[0];
        format!("RCPT TO <{to}>: {}", reply_of(e))
    } else {
        format!("every recipient was refused: {}", refusals(refused))
    };
    let transient = refused.iter().find(|(_, e)| e.is_transient());
    let first = transient.unwrap_or(&refused[0]);
    let status_code = first.1.status().and_then(|c| c.to_string().parse().ok());
    if transient.is_some() { retry(status_code, error) } else { failed(status_code, error) }
}

fn refusals(refused: &[(&Address, SmtpError)]) -> String {
    refused.iter().map(|(to, e)| format!("{to}: {}", reply_of(e))).collect::<Vec<_>>().join(", ")
}

/// Classifies a failed step: the server's reply decides (4yz retry, 5yz
/// fail), a TLS failure fails, a broken connection is retried, and a client
/// refusal (no usable AUTH mechanism) fails.
fn classify(err: &SmtpError, stage: &str, host: &Host) -> Outcome {
    if let Some(code) = err.status() {
        let status_code = code.to_string().parse().ok();
        let error = format!("{stage}: {}", reply_of(err));
        return if err.is_transient() { retry(status_code, error) } else { failed(status_code, error) };
    }
    if let Some(tls) = tls_error(err) {
        return failed(None, format!("TLS with {host} failed: {tls}"));
    }
    if err.is_tls() {
        return failed(None, format!("TLS with {host} failed: {err}"));
    }
    if err.is_client() {
        return failed(None, format!("{stage}: {}", source_text(err)));
    }
    if err.is_timeout() {
        return retry(None, format!("{stage}: timed out"));
    }
    retry(None, format!("{stage}: {err}"))
}

/// "550 5.1.1 mailbox unavailable": the code and the server's own text.
fn reply_of(err: &SmtpError) -> String {
    match (err.status(), err.source()) {
        (Some(code), Some(text)) => format!("{code} {text}"),
        (Some(code), None) => code.to_string(),
        _ => err.to_string(),
    }
}

fn source_text(err: &SmtpError) -> String {
    err.source().map_or_else(|| err.to_string(), ToString::to_string)
}

fn reply_text(response: &Response) -> String {
    let text: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), text.join(" ")).trim_end().to_owned()
}

fn code_of(response: &Response) -> Option<u16> {
    response.code().to_string().parse().ok()
}

/// The rustls error inside a lettre error (tokio-rustls wraps it in an `io::Error`).
fn tls_error(err: &SmtpError) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

fn retry(status_code: Option<u16>, error: String) -> Outcome {
    Outcome::Retry { status_code, after: None, error: cut(&error, MAX_TEXT), detail: None }
}

fn failed(status_code: Option<u16>, error: String) -> Outcome {
    Outcome::Failed { status_code, error: cut(&error, MAX_TEXT), detail: None }
}
