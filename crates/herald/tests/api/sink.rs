//! A local webhook receiver: records every request and answers from a
//! script (then with a default status).

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::ConnectInfo,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::IntoResponse,
    routing::any,
};

#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query as sent.
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The sender's address: the same port means the same connection.
    pub peer: SocketAddr,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// One scripted answer: status, extra headers, and how long to wait first.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply { status, headers: Vec::new(), delay: Duration::ZERO, body: String::new() }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn with_body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    /// Waits this long (after recording the request) before answering.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Sink {
    pub async fn start() -> Sink {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let (r, s) = (received.clone(), script.clone());
        let app = axum::Router::new().fallback(any(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                  method: Method,
                  uri: Uri,
                  headers: HeaderMap,
                  body: Bytes| {
                let (r, s) = (r.clone(), s.clone());
                async move {
                    r.lock().unwrap().push(Received { method, uri, headers, body, peer });
                    let reply = s.lock().unwrap().pop_front().unwrap_or_else(|| Reply::status(204));
                    if !reply.delay.is_zero() {
                        tokio::time::sleep(reply.delay).await;
                    }
                    let mut res = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
                    for (k, v) in reply.headers {
                        res.headers_mut().insert(k, v.parse().unwrap());
                    }
                    res
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap()
        });
        Sink { addr, received, script }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// `http://127.0.0.1:port`, for providers configured by base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}
