//! One HTTP attempt and what it came to, shared by every HTTP-based channel
//! so that "is a 503 worth retrying?" has one answer (the status table is in
//! `status`, the transport errors here).

use std::{error::Error as StdError, time::Duration};

use chrono::Utc;
use herald_core::Outcome;
use reqwest::{
    RequestBuilder, Response,
    header::{LOCATION, RETRY_AFTER},
};

pub use self::status::{classify, parse_retry_after};
use crate::outbound::Refused;

mod status;

/// The longest URL a config may hold.
pub const MAX_URL_LEN: usize = 2048;

/// An absolute http or https URL with a host, surrounding spaces ignored.
/// The error never repeats the URL: URLs in configs often carry a token.
pub fn parse_url(field: &str, value: &str) -> Result<url::Url, crate::ConfigError> {
    let bad = |message: &str| crate::ConfigError::new(field, message);
    if value.len() > MAX_URL_LEN {
        return Err(bad(&format!("must be at most {MAX_URL_LEN} characters")));
    }
    let url = url::Url::parse(value.trim()).map_err(|e| bad(&format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if url.host().is_none() {
        return Err(bad("must have a host"));
    }
    Ok(url)
}

/// [`parse_url`] for a URL Herald sends to as it is (a webhook): no
/// `#fragment`, which would never be sent.
pub fn parse_target_url(field: &str, value: &str) -> Result<url::Url, crate::ConfigError> {
    let url = parse_url(field, value)?;
    if url.fragment().is_some() {
        return Err(crate::ConfigError::new(field, "must not have a #fragment (it is never sent)"));
    }
    Ok(url)
}

/// At most this much of a response body is read; past it the connection is
/// dropped rather than drained (a small body is read to the end so the
/// connection can go back to the pool).
pub const MAX_BODY_READ: usize = 64 * 1024;

/// At most this many bytes of the response body are kept as the attempt's detail.
pub const MAX_EXCERPT: usize = 1024;

/// Sends `request` once, bounded by `timeout` (connect, headers and body),
/// and classifies the result.
pub async fn send_and_classify(request: RequestBuilder, timeout: Duration) -> Outcome {
    let response = match request.timeout(timeout).send().await {
        Ok(response) => response,
        Err(err) => return classify_error(err, timeout),
    };
    let status = response.status().as_u16();
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let retry_after = header(RETRY_AFTER);
    let location = header(LOCATION);
    // A redirect's target and body usually repeat the request URL, which
    // carries the secret for chat webhooks and bot APIs: only the target's
    // origin is kept, and the body not at all.
    let excerpt = if (300..=399).contains(&status) { None } else { read_excerpt(response).await };
    let mut outcome = classify(status, retry_after.as_deref(), excerpt, Utc::now());
    if let (Outcome::Failed { error, .. }, 300..=399, Some(location)) = (&mut outcome, status, location) {
        error.push_str(&format!(" (Location: {})", location_origin(&location)));
    }
    outcome
}

/// Where a redirect points, without its path or query: `https://host:port/…`,
/// or "a path on the same server" for a relative target.
fn location_origin(location: &str) -> String {
    if url::Url::parse(location).is_ok_and(|u| u.has_host()) {
        crate::endpoint_origin(location)
    } else {
        "a path on the same server".to_owned()
    }
}

fn classify_error(err: reqwest::Error, timeout: Duration) -> Outcome {
    // The URL may carry a secret (chat webhook URLs do); errors are stored
    // and shown, so it goes.
    let err = err.without_url();
    if let Some(refused) = find_source::<Refused>(&err) {
        // The address policy will refuse again on every retry.
        return Outcome::Failed { status_code: None, error: refused.to_string(), detail: None };
    }
    if err.is_builder() {
        return Outcome::Failed { status_code: None, error: error_chain(&err), detail: None };
    }
    // A connect timeout is reported like any other connection failure; the
    // whole-attempt timeout gets the clearer wording.
    let error = if err.is_timeout() && !err.is_connect() {
        format!("timed out after {}", human_duration(timeout))
    } else {
        error_chain(&err)
    };
    Outcome::Retry { status_code: None, after: None, error, detail: None }
}

/// The first error of type `T` in `err`'s source chain.
fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// `err` and its sources joined with ": ", so that the root cause ("Connection
/// refused") is in the text; a source already spelled out is not repeated.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let part = e.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = e.source();
    }
    text
}

/// "15s", or "1500ms" when not a whole number of seconds.
fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// Reads up to [`MAX_BODY_READ`] bytes of the body and keeps the first
/// [`MAX_EXCERPT`] as text; a body error ends the read with what was kept.
async fn read_excerpt(mut response: Response) -> Option<String> {
    let mut kept = Vec::new();
    let mut read = 0;
    while read < MAX_BODY_READ {
        let Ok(Some(chunk)) = response.chunk().await else {
            break;
        };
        read += chunk.len();
        let room = MAX_EXCERPT - kept.len();
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    excerpt_text(&kept)
}

/// Lossy UTF-8, without the half of a character the cut may have left at the end.
fn excerpt_text(bytes: &[u8]) -> Option<String> {
    let bytes = match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    };
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use std::{
        net::SocketAddr,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use axum::{
        Router,
        http::{HeaderMap, StatusCode},
        routing::get,
    };

    use super::*;
    use crate::outbound::{AddressPolicy, build_http_client};

    #[test]
    fn excerpt_is_bounded_and_cut_on_a_character() {
        assert_eq!(excerpt_text(b""), None);
        assert_eq!(excerpt_text("é".as_bytes()).as_deref(), Some("é"));
        // The first byte of "é" alone: dropped, not turned into U+FFFD.
        assert_eq!(excerpt_text(&"aé".as_bytes()[..2]).as_deref(), Some("a"));
        assert_eq!(excerpt_text(b"a\xffb").as_deref(), Some("a\u{fffd}b"));
        assert_eq!(human_duration(Duration::from_secs(15)), "15s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
    }

    async fn serve(router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    fn client() -> reqwest::Client {
        build_http_client(AddressPolicy { allow_private: true })
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn connection_refused_is_retried_with_the_cause() {
        // Bind then free a port so nothing listens on it.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let outcome = send_and_classify(client().post(format!("http://{addr}/hook")), TIMEOUT).await;
        let Outcome::Retry { status_code: None, error, .. } = &outcome else { panic!("{outcome:?}") };
        assert!(error.to_lowercase().contains("connection refused"), "{error}");
        assert!(!error.contains("/hook"), "the URL stays out of the error: {error}");
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_and_is_retried() {
        let addr = serve(Router::new().route(
            "/",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        ))
        .await;
        let outcome = send_and_classify(client().get(format!("http://{addr}/")), Duration::from_millis(300)).await;
        assert_eq!(
            outcome,
            Outcome::Retry { status_code: None, after: None, error: "timed out after 300ms".into(), detail: None }
        );
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let followed = Arc::new(AtomicUsize::new(0));
        let counter = followed.clone();
        let addr = serve(
            Router::new()
                .route("/", get(|| async { (StatusCode::FOUND, [("location", "/elsewhere")], "moved") }))
                .route(
                    "/elsewhere",
                    get(move || async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        "here"
                    }),
                ),
        )
        .await;
        let outcome = send_and_classify(client().get(format!("http://{addr}/")), TIMEOUT).await;
        assert_eq!(
            outcome,
            Outcome::Failed {
                status_code: Some(302),
                error: "redirect (HTTP 302 Found) not followed (Location: a path on the same server)".into(),
                detail: None,
            }
        );
        assert_eq!(followed.load(Ordering::SeqCst), 0);
        // A target repeating a secret path is shown as its origin only.
        assert_eq!(location_origin("https://Discord.com:8443/api/webhooks/1/s3cr3t?x=1"), "https://discord.com:8443/…");
    }

    #[tokio::test]
    async fn status_retry_after_and_body_excerpt_come_through() {
        let addr = serve(
            Router::new()
                .route("/busy", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "7")], "busy") }))
                .route("/big", get(|| async { "x".repeat(200 * 1024) }))
                .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
                .route("/ua", get(|headers: HeaderMap| async move { format!("{:?}", headers.get("user-agent")) })),
        )
        .await;
        let outcome = send_and_classify(client().get(format!("http://{addr}/busy")), TIMEOUT).await;
        assert_eq!(
            outcome,
            Outcome::Retry {
                status_code: Some(503),
                after: Some(Duration::from_secs(7)),
                error: "HTTP 503 Service Unavailable".into(),
                detail: Some("busy".into()),
            }
        );
        let outcome = send_and_classify(client().get(format!("http://{addr}/big")), TIMEOUT).await;
        assert_eq!(outcome.label(), "sent");
        assert_eq!(outcome.detail().map(str::len), Some(MAX_EXCERPT));
        let outcome = send_and_classify(client().get(format!("http://{addr}/empty")), TIMEOUT).await;
        assert_eq!(outcome, Outcome::Delivered { status_code: Some(204), detail: None });
        let outcome = send_and_classify(client().get(format!("http://{addr}/ua")), TIMEOUT).await;
        let expected = format!("Some({:?})", concat!("Herald/", env!("CARGO_PKG_VERSION")));
        assert_eq!(outcome.detail(), Some(expected.as_str()));
    }

    #[tokio::test]
    async fn a_name_refused_by_the_policy_fails_for_good() {
        let addr = serve(Router::new().route("/", get(|| async { "reached" }))).await;
        let strict = build_http_client(AddressPolicy { allow_private: false });
        let outcome = send_and_classify(strict.get(format!("http://localhost:{}/", addr.port())), TIMEOUT).await;
        let Outcome::Failed { status_code: None, error, .. } = &outcome else { panic!("{outcome:?}") };
        assert!(error.starts_with("localhost resolves only to refused addresses: "), "{error}");
    }
}
