//! Errors the framework answers by itself, without an error value to hand to the layer: the
//! router's 404 and 405, the extractors' rejections, a bare status a handler returned. With
//! [`ErrorLayer::framework_errors`](crate::ErrorLayer::framework_errors) on they take the same
//! path as every other error.
//!
//! The rule that keeps an application's own answers untouched: only two shapes are rewritten.
//! - **Bodiless**: a 4xx or 5xx response whose body is known to be empty (`size_hint` exactly
//!   0). It has nothing of the application's to lose; its headers (`allow` of a 405,
//!   `retry-after` of a 503, `www-authenticate` of a 401) are kept.
//! - **A known rejection**: a 4xx or 5xx `text/plain; charset=utf-8` response of at most
//!   [`MAX_REJECTION`] bytes whose text starts as one of axum's or tower-http's rejection
//!   messages does ([`REJECTIONS`]). Its text becomes the problem's `detail`.
//!
//! Anything else, a JSON 404 of the application's say, passes byte for byte.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use genro_envelope::plumbing::Synthesized;
use http::{header, response::Parts, HeaderValue, Response, StatusCode};
use http_body::Body;

use crate::{error::BoxError, handle::Failure};

/// The longest text response read to see whether it is a rejection. axum's rejection texts are
/// a sentence and the deserializer's reason.
pub const MAX_REJECTION: u64 = 1024;

/// How the rejections of axum's extractors and tower-http's body limit begin (axum 0.8,
/// tower-http 0.6). A `text/plain` error response that begins otherwise is the application's.
pub const REJECTIONS: &[&str] = &[
    // Query, Form, Json, Bytes, String, Path, Multipart, Extension, MatchedPath, WebSocket.
    "Failed to deserialize query string",
    "Failed to deserialize form",
    "Failed to parse the request body as JSON",
    "Failed to deserialize the JSON body into the target type",
    "Failed to buffer the request body",
    "Expected request with `Content-Type: application/json`",
    "Form requests must have `Content-Type: application/x-www-form-urlencoded`",
    "Request body didn't contain valid UTF-8",
    "Invalid `boundary` for `multipart/form-data` request",
    "Invalid URL: ",
    "Wrong number of path arguments",
    "Cannot parse `",
    "Invalid UTF-8 in `",
    "Unsupported type `",
    "No paths parameters found for matched route",
    "Missing request extension",
    "No matched path found",
    "Connection header did not include 'upgrade'",
    "`Upgrade` header did not include 'websocket'",
    "`Sec-WebSocket-Version` header did not include '13'",
    "`Sec-WebSocket-Key` header missing",
    "Request method must be `GET`",
    "Request method must be `CONNECT`",
    "WebSocket request couldn't be upgraded",
    // tower-http's RequestBodyLimit, and http-body-util's error through an extractor.
    "length limit exceeded",
];

pub(crate) enum Shape {
    Bodiless,
    Text,
}

/// Whether an error response (status 400 or more) may be a framework error, and which shape.
pub(crate) fn shape<B: Body>(response: &Response<B>) -> Option<Shape> {
    if response.extensions().get::<Synthesized>().is_some() {
        return None;
    }
    match response.body().size_hint().exact()? {
        0 => Some(Shape::Bodiless),
        n if n <= MAX_REJECTION
            && response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t == "text/plain; charset=utf-8") =>
        {
            Some(Shape::Text)
        }
        _ => None,
    }
}

/// The `type` label of a framework error: one per status a framework answers, so the series
/// stay bounded.
fn label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "body_limit",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        503 => "unavailable",
        504 => "timeout",
        _ if status.is_client_error() => "client_error",
        _ => crate::report::OTHER,
    }
}

/// The headers of a framework answer worth keeping on the rendered one: all but those that
/// described its body.
fn kept(parts: &Parts) -> Vec<(http::HeaderName, HeaderValue)> {
    parts
        .headers
        .iter()
        .filter(|(name, _)| {
            *name != header::CONTENT_TYPE
                && *name != header::CONTENT_LENGTH
                && *name != header::TRANSFER_ENCODING
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

pub(crate) fn bodiless<B>(response: Response<B>) -> Failure {
    let (parts, _) = response.into_parts();
    Failure::Status {
        status: parts.status,
        error_type: label(parts.status),
        headers: kept(&parts),
        detail: None,
    }
}

/// The failure of a rejection whose text was read, or `None` when the text is the
/// application's own.
pub(crate) fn rejection(parts: &Parts, text: &[u8]) -> Option<Failure> {
    let detail = std::str::from_utf8(text)
        .ok()
        .filter(|t| REJECTIONS.iter().any(|r| t.starts_with(r)))?;
    Some(Failure::Status {
        status: parts.status,
        error_type: label(parts.status),
        headers: kept(parts),
        detail: Some(detail.trim_end().to_owned()),
    })
}

/// Reads what is left of `body` into `read` (a small one: see [`shape`]). Not http-body-util's
/// `collect`: its future needs `B: Body` on the layer's public future type, and the read is
/// this one loop.
pub(crate) fn read<B: Body<Data = Bytes>>(
    mut body: Pin<&mut B>,
    read: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<Result<(), BoxError>> {
    loop {
        match std::task::ready!(body.as_mut().poll_frame(cx)) {
            None => return Poll::Ready(Ok(())),
            Some(Err(_)) => {
                return Poll::Ready(Err(
                    "the body of an error response failed while it was read".into(),
                ))
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
        }
    }
}
