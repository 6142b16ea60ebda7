//! A local SMTP server for the email tests: speaks enough of RFC 5321 for a
//! real client (EHLO, STARTTLS, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT), answers RCPT and DATA from a script, and records every
//! command and every transaction.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

/// What the server offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Advertise and accept STARTTLS.
    pub starttls: bool,
    /// TLS from the first byte (SMTPS).
    pub implicit_tls: bool,
    /// Advertise `AUTH PLAIN LOGIN` (and require it before MAIL).
    pub auth: bool,
}

/// One command as received: which connection, whether TLS was on, the verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub conn: usize,
    pub tls: bool,
    pub verb: String,
}

/// One finished mail transaction (after DATA's final dot).
#[derive(Debug, Clone)]
pub struct Transaction {
    pub conn: usize,
    pub mail_from: String,
    /// Recipients the server accepted.
    pub rcpt_to: Vec<String>,
    /// The message as received, dot-stuffing removed.
    pub data: Vec<u8>,
    pub tls: bool,
    /// `(mechanism, username, password)` of this connection's AUTH.
    pub auth: Option<(String, String, String)>,
    /// The reply the server gave to the final dot.
    pub reply: String,
}

#[derive(Default)]
struct Script {
    /// Replies to `RCPT TO` by address (lower case), in order; then 250.
    rcpt: HashMap<String, VecDeque<String>>,
    /// Replies to the final dot, in order; then 250.
    data: VecDeque<String>,
}

#[derive(Default)]
struct Log {
    commands: Vec<Command>,
    transactions: Vec<Transaction>,
    connections: usize,
}

/// A running server on 127.0.0.1.
#[derive(Clone)]
pub struct SmtpServer {
    pub addr: SocketAddr,
    /// PEM of the self-signed certificate (for `localhost` and 127.0.0.1).
    pub cert_pem: String,
    log: Arc<Mutex<Log>>,
    script: Arc<Mutex<Script>>,
}

impl SmtpServer {
    pub async fn start(options: Options) -> SmtpServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("a self-signed certificate");
        let cert_pem = key.cert.pem();
        let chain: Vec<CertificateDer<'static>> = vec![key.cert.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
        let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, private).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server =
            SmtpServer { addr: listener.local_addr().unwrap(), cert_pem, log: Arc::default(), script: Arc::default() };
        let shared = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = {
                    let mut log = shared.log.lock().unwrap();
                    log.connections += 1;
                    log.connections
                };
                let (server, acceptor) = (shared.clone(), acceptor.clone());
                tokio::spawn(async move { server.session(conn, stream, acceptor, options).await });
            }
        });
        server
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Queues replies to `RCPT TO:<address>`, e.g. `"550 5.1.1 mailbox unavailable"`.
    pub fn script_rcpt(&self, address: &str, replies: &[&str]) {
        let mut script = self.script.lock().unwrap();
        script.rcpt.entry(address.to_lowercase()).or_default().extend(replies.iter().map(|r| r.to_string()));
    }

    /// Queues replies to the final dot of DATA.
    pub fn script_data(&self, replies: &[&str]) {
        self.script.lock().unwrap().data.extend(replies.iter().map(|r| r.to_string()));
    }

    pub fn commands(&self) -> Vec<Command> {
        self.log.lock().unwrap().commands.clone()
    }

    pub fn verbs(&self) -> Vec<String> {
        self.commands().into_iter().map(|c| c.verb).collect()
    }

    pub fn transactions(&self) -> Vec<Transaction> {
        self.log.lock().unwrap().transactions.clone()
    }

    /// Transactions whose message was accepted.
    pub fn delivered(&self) -> Vec<Transaction> {
        self.transactions().into_iter().filter(|t| t.reply.starts_with('2')).collect()
    }

    pub fn connections(&self) -> usize {
        self.log.lock().unwrap().connections
    }

    async fn session(self, conn: usize, stream: TcpStream, acceptor: TlsAcceptor, options: Options) {
        let mut tls = false;
        let stream: Box<dyn Io> = if options.implicit_tls {
            match acceptor.accept(stream).await {
                Ok(s) => {
                    tls = true;
                    Box::new(s)
                }
                Err(_) => return,
            }
        } else {
            Box::new(stream)
        };
        let mut io = BufReader::new(stream);
        let mut auth: Option<(String, String, String)> = None;
        let mut mail_from: Option<String> = None;
        let mut rcpt_to: Vec<String> = Vec::new();
        if send(&mut io, "220 smtp.test ESMTP ready").await.is_err() {
            return;
        }
        loop {
            let Some(line) = read_line(&mut io).await else { return };
            let verb = line.split([' ', ':']).next().unwrap_or("").to_uppercase();
            self.log.lock().unwrap().commands.push(Command { conn, tls, verb: verb.clone() });
            let arg = line.get(verb.len()..).unwrap_or("").trim().to_owned();
            let reply = match verb.as_str() {
                "EHLO" => {
                    let mut lines = vec!["smtp.test greets you".to_owned(), "8BITMIME".into(), "SIZE 10485760".into()];
                    if options.starttls && !tls {
                        lines.push("STARTTLS".into());
                    }
                    if options.auth {
                        lines.push("AUTH PLAIN LOGIN".into());
                    }
                    let last = lines.len() - 1;
                    lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                        .collect::<Vec<_>>()
                        .join("\r\n")
                }
                "HELO" => "250 smtp.test".into(),
                "STARTTLS" if options.starttls && !tls => {
                    if send(&mut io, "220 2.0.0 Ready to start TLS").await.is_err() {
                        return;
                    }
                    match acceptor.accept(io.into_inner()).await {
                        Ok(s) => {
                            io = BufReader::new(Box::new(s) as Box<dyn Io>);
                            tls = true;
                            // A new session starts: forget everything said before.
                            (auth, mail_from) = (None, None);
                            rcpt_to.clear();
                            continue;
                        }
                        Err(_) => return,
                    }
                }
                "AUTH" if options.auth && auth.is_none() => match self.auth(&mut io, &arg).await {
                    Some(done) => {
                        auth = Some(done);
                        "235 2.7.0 Authentication successful".into()
                    }
                    None => "535 5.7.8 Authentication credentials invalid".into(),
                },
                "MAIL" if options.auth && auth.is_none() => "530 5.7.0 Authentication required".into(),
                "MAIL" => {
                    mail_from = Some(path(&arg));
                    rcpt_to.clear();
                    "250 2.1.0 OK".into()
                }
                "RCPT" if mail_from.is_none() => "503 5.5.1 MAIL first".into(),
                "RCPT" => {
                    let to = path(&arg);
                    let scripted =
                        self.script.lock().unwrap().rcpt.get_mut(&to.to_lowercase()).and_then(VecDeque::pop_front);
                    let reply = scripted.unwrap_or_else(|| "250 2.1.5 OK".into());
                    if reply.starts_with('2') {
                        rcpt_to.push(to);
                    }
                    reply
                }
                "DATA" if rcpt_to.is_empty() => "503 5.5.1 No valid recipients".into(),
                "DATA" => {
                    if send(&mut io, "354 End data with <CR><LF>.<CR><LF>").await.is_err() {
                        return;
                    }
                    let Some(data) = read_data(&mut io).await else { return };
                    let reply = self.script.lock().unwrap().data.pop_front();
                    let reply = reply.unwrap_or_else(|| {
                        format!("250 2.0.0 OK: queued as Q{}", self.log.lock().unwrap().transactions.len() + 1)
                    });
                    self.log.lock().unwrap().transactions.push(Transaction {
                        conn,
                        mail_from: mail_from.take().unwrap_or_default(),
                        rcpt_to: std::mem::take(&mut rcpt_to),
                        data,
                        tls,
                        auth: auth.clone(),
                        reply: reply.clone(),
                    });
                    reply
                }
                "RSET" => {
                    mail_from = None;
                    rcpt_to.clear();
                    "250 2.0.0 OK".into()
                }
                "NOOP" => "250 2.0.0 OK".into(),
                "QUIT" => {
                    let _ = send(&mut io, "221 2.0.0 Bye").await;
                    return;
                }
                _ => "502 5.5.2 Command not recognised".into(),
            };
            if send(&mut io, &reply).await.is_err() {
                return;
            }
        }
    }

    /// AUTH PLAIN (initial response or not) and AUTH LOGIN.
    async fn auth(&self, io: &mut BufReader<Box<dyn Io>>, arg: &str) -> Option<(String, String, String)> {
        let mut words = arg.split_whitespace();
        let mechanism = words.next()?.to_uppercase();
        let decode = |s: &str| B64.decode(s.trim()).ok().and_then(|b| String::from_utf8(b).ok());
        match mechanism.as_str() {
            "PLAIN" => {
                let initial = match words.next() {
                    Some(initial) => initial.to_owned(),
                    None => {
                        send(io, "334 ").await.ok()?;
                        read_line(io).await?
                    }
                };
                let plain = decode(&initial)?;
                let mut parts = plain.split('\0');
                let (_authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
                Some((mechanism, user.to_owned(), password.to_owned()))
            }
            "LOGIN" => {
                send(io, "334 VXNlcm5hbWU6").await.ok()?;
                let user = decode(&read_line(io).await?)?;
                send(io, "334 UGFzc3dvcmQ6").await.ok()?;
                let password = decode(&read_line(io).await?)?;
                Some((mechanism, user, password))
            }
            _ => None,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn send(io: &mut BufReader<Box<dyn Io>>, reply: &str) -> std::io::Result<()> {
    io.get_mut().write_all(format!("{reply}\r\n").as_bytes()).await?;
    io.get_mut().flush().await
}

async fn read_line(io: &mut BufReader<Box<dyn Io>>) -> Option<String> {
    let mut line = Vec::new();
    match io.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned()),
    }
}

/// The lines up to a lone ".", with one leading dot removed from the others.
async fn read_data(io: &mut BufReader<Box<dyn Io>>) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if io.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            return Some(data);
        }
        let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        data.extend_from_slice(unstuffed);
    }
}

/// The address in `FROM:<a@b> SIZE=1` or `TO:<a@b>`.
fn path(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_owned()
}
