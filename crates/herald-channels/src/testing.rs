//! Test helpers for channel modules: a context, a sample message, and a local
//! HTTP server that plays a provider (records every request, answers from a
//! script).

#![allow(dead_code)] // each channel's tests use some of these helpers

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::IntoResponse,
    routing::any,
};
use serde_json::Value;

use crate::{AddressPolicy, Content, Context, Message, Report, Severity, outbound::build_http_client};

/// A channel context; `allow_private` lets targets reach 127.0.0.1.
pub fn ctx(allow_private: bool) -> Context {
    let policy = AddressPolicy { allow_private };
    Context { http: build_http_client(policy), policy }
}

/// Owns what a [`Message`] borrows.
pub struct Sample {
    pub data: Value,
    pub content: Content,
    pub report: Report,
    pub event_type: String,
}

impl Sample {
    /// An event of `event_type` with `data`, rendered by default with a link.
    pub fn new(event_type: &str, severity: Severity, data: Value) -> Sample {
        let content =
            Content::from_event(event_type, severity, &data, Some("https://herald.example.com/v1/events/evt_1"));
        Sample { data, content, report: Report::default(), event_type: event_type.to_owned() }
    }

    pub fn message(&self) -> Message<'_> {
        Message::new(
            ("dlv_0190c6b6f3a87c2a9e1f0b1c2d3e4f50", "evt_0190c6b6f3a87c2a9e1f0b1c2d3e4f51"),
            &self.event_type,
            "2026-01-02T03:04:05Z",
            &self.data,
            &self.content,
            &self.report,
        )
    }
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query, as sent.
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Answer {
        Answer { status, body: body.to_owned(), headers: Vec::new() }
    }

    pub fn json(status: u16, body: &Value) -> Answer {
        Answer::new(status, &body.to_string()).header("content-type", "application/json")
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A local HTTP server playing a provider: answers from a script, then
/// with `default`.
#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl StandIn {
    pub async fn start(default: Answer) -> StandIn {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let (log, queue) = (seen.clone(), script.clone());
        let app =
            axum::Router::new().fallback(any(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (log, queue, default) = (log.clone(), queue.clone(), default.clone());
                async move {
                    log.lock().unwrap().push(Seen { method, uri, headers, body });
                    let answer = queue.lock().unwrap().pop_front().unwrap_or(default);
                    let mut response = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
                    for (name, value) in answer.headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn { addr, seen, script }
    }

    /// `http://127.0.0.1:port` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The only request seen so far.
    pub fn one(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "expected one request: {seen:?}");
        seen.into_iter().next().unwrap()
    }
}
