//! An HTTP client's side of a test: a GET over a real socket with hyper's client, and one
//! request through a tower service in process.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Service, ServiceExt};

/// What [`call`] was answered: status, headers and the body as text.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, read to its end (invalid UTF-8 replaced).
    pub body: String,
}

/// An HTTP/1 client of plain `http://` URLs, with empty request bodies.
#[must_use]
pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GETs `url` with a new [`client`], and reads the whole answer: status, headers, and the
/// body as text (invalid UTF-8 replaced).
///
/// # Panics
///
/// When `url` is not a URL, or the request or the body fails.
pub async fn get(url: &str) -> (StatusCode, HeaderMap, String) {
    let res = client()
        .get(url.parse().expect("a URL"))
        .await
        .expect("an answer");
    read(res).await
}

/// A response read whole: status, headers, and the body as text (invalid UTF-8 replaced).
async fn read<B>(res: http::Response<B>) -> (StatusCode, HeaderMap, String)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("the body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// [`get`] in a task of its own, for requests that must be in flight while the test goes on.
pub fn spawn_get(
    url: impl Into<String>,
) -> tokio::task::JoinHandle<(StatusCode, HeaderMap, String)> {
    let url = url.into();
    tokio::spawn(async move { get(&url).await })
}

/// One request with an empty body through `service`, in process (tower's `oneshot`), and its
/// whole answer.
///
/// # Panics
///
/// When the service or the response body fails.
pub async fn call<S, B, R>(service: S, method: &str, path: &str) -> Reply
where
    S: Service<Request<B>, Response = http::Response<R>>,
    S::Error: std::fmt::Debug,
    B: Default,
    R: http_body::Body,
    R::Error: std::fmt::Debug,
{
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(B::default())
        .expect("a request");
    let res = service.oneshot(request).await.expect("the service answers");
    let (status, headers, body) = read(res).await;
    Reply {
        status,
        headers,
        body,
    }
}
