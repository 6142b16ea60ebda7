//! The server side of the WebSocket handshake (RFC 6455 section 4.2) over
//! HTTP/1.1, written here rather than taken from axum's `WebSocketUpgrade`
//! for memory: an idle live-inbox connection is one task, and axum's task
//! also keeps the upgrade's config, protocol and callback for the
//! connection's whole life, and its `WebSocket` wraps the stream with the
//! negotiated protocol. Those are a fifth of an idle connection's memory.

use axum::{
    body::Body,
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, Version, header, request::Parts},
    response::Response,
};
use std::pin::Pin;

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};

use crate::error::ApiError;

/// A server-side WebSocket after the handshake.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A valid WebSocket upgrade request, not yet answered.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let refuse = |detail: &str| ApiError::Invalid { field: None, detail: detail.to_owned() };
        if parts.version != Version::HTTP_11 {
            return Err(refuse("a WebSocket is opened with an HTTP/1.1 GET"));
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(refuse(
                "this endpoint is a WebSocket: `Connection: upgrade` and `Upgrade: websocket` expected",
            ));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
            return Err(refuse("`Sec-WebSocket-Version: 13` expected"));
        }
        let key =
            parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned().ok_or_else(|| refuse("no `Sec-WebSocket-Key`"))?;
        let on_upgrade =
            parts.extensions.remove::<OnUpgrade>().ok_or_else(|| refuse("this connection cannot be upgraded"))?;
        Ok(Upgrade { key, on_upgrade })
    }
}

impl Upgrade {
    /// Answers `101 Switching Protocols` and spawns `serve`, which gets the
    /// socket from [`Pending::socket`]. The connection's task is `serve`'s
    /// future alone: no wrapper around it keeps a second copy of the socket.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(Pending) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Upgrade { key, on_upgrade } = self;
        tokio::spawn(serve(Pending(on_upgrade)));
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = res.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let accept = derive_accept_key(key.as_bytes());
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("base64 is a header value"));
        res
    }
}

/// An answered upgrade whose connection is not handed over yet.
pub struct Pending(OnUpgrade);

impl Pending {
    /// One whose connection never comes (for tests).
    #[cfg(test)]
    pub fn never() -> Self {
        Pending(hyper::upgrade::on(axum::http::Request::new(())))
    }

    /// Waits for the connection once the `101` is sent; `None` when it
    /// failed (the client went away). Boxed: what it holds while waiting
    /// is freed once the socket is there, and does not widen the
    /// connection's task for the connection's whole life.
    pub fn socket(self, config: WebSocketConfig) -> Pin<Box<impl Future<Output = Option<Socket>> + Send>> {
        Box::pin(async move {
            let upgraded = match self.0.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "a WebSocket upgrade failed");
                    return None;
                }
            };
            Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_rfcs() {
        // RFC 6455 section 1.3.
        assert_eq!(derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn connection_tokens_are_a_list() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(has_token(&headers, header::CONNECTION, "upgrade"));
        assert!(!has_token(&headers, header::CONNECTION, "close"));
    }
}
