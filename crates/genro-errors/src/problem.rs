use std::fmt::Write as _;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};

/// What the client is told about an error: an RFC 9457 problem.
///
/// Handlers registered with [`ErrorLayer::handler`](crate::ErrorLayer::handler) return one; the
/// layer renders it as `application/problem+json`, an HTML page, plain text or a gRPC status,
/// whichever the client asked for, and adds the error id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub(crate) status: StatusCode,
    pub(crate) title: String,
    pub(crate) type_uri: String,
    pub(crate) detail: Option<String>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// A response of the handler's own, sent as it is (plus `x-error-id`).
    pub(crate) own: Option<Box<(HeaderMap, Bytes)>>,
}

impl Problem {
    /// A problem with this status; the title is the status's reason phrase.
    #[must_use]
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            type_uri: "about:blank".to_owned(),
            detail: None,
            headers: Vec::new(),
            own: None,
        }
    }

    /// A response of your own instead of a rendered problem: its status, headers and body are
    /// sent as they are, with `x-error-id` added. Content negotiation and gRPC mapping are then
    /// yours; logging, metrics and observers still happen.
    #[must_use]
    pub fn from_response(response: http::Response<Bytes>) -> Self {
        let (parts, body) = response.into_parts();
        let mut problem = Self::new(parts.status);
        problem.own = Some(Box::new((parts.headers, body)));
        problem
    }

    /// A short, human-readable summary of the kind of problem.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// A URI identifying the kind of problem (RFC 9457 `type`). Default `about:blank`.
    #[must_use]
    pub fn type_uri(mut self, uri: impl Into<String>) -> Self {
        self.type_uri = uri.into();
        self
    }

    /// An explanation of this occurrence, for the client. Shown for 4xx problems; for 5xx
    /// problems only when `show_traceback` is on, so server errors never leak internals.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// A header for the response, such as `Retry-After`.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// How to render: picked from the request's `Accept` and `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Html,
    Text,
    Grpc,
}

impl Format {
    /// The client's preference: the highest-q of problem+json/json, HTML and plain text; JSON
    /// when it does not say.
    pub(crate) fn negotiate(accept: Option<&HeaderValue>) -> Self {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Self::Json;
        };
        let mut best = (Self::Json, -1.0f32);
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let format = match media.as_str() {
                "application/problem+json" | "application/json" | "*/*" | "application/*" => {
                    Self::Json
                }
                "text/html" | "application/xhtml+xml" => Self::Html,
                "text/plain" | "text/*" => Self::Text,
                _ => continue,
            };
            if q > best.1 {
                best = (format, q);
            }
        }
        best.0
    }
}

/// The rendered pieces: body, content type and headers; or, for gRPC, the status headers.
pub(crate) struct Rendered {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

pub(crate) struct Extra<'a> {
    pub(crate) error_id: &'a str,
    pub(crate) trace_id: Option<&'a str>,
    pub(crate) detail: Option<&'a str>,
    pub(crate) traceback: Option<&'a str>,
}

pub(crate) const X_ERROR_ID: HeaderName = HeaderName::from_static("x-error-id");

pub(crate) fn render(problem: &Problem, format: Format, extra: &Extra<'_>) -> Rendered {
    if let Some(own) = &problem.own {
        let (headers, body) = &**own;
        let mut headers = headers.clone();
        if let Ok(id) = HeaderValue::from_str(extra.error_id) {
            headers.insert(X_ERROR_ID, id);
        }
        return Rendered {
            status: problem.status,
            headers,
            body: body.clone(),
        };
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &problem.headers {
        headers.append(name.clone(), value.clone());
    }
    if let Ok(id) = HeaderValue::from_str(extra.error_id) {
        headers.insert(X_ERROR_ID, id);
    }
    let (content_type, body) = match format {
        Format::Grpc => return grpc(problem, extra, headers),
        Format::Json => ("application/problem+json", json(problem, extra)),
        Format::Html => ("text/html; charset=utf-8", html(problem, extra)),
        Format::Text => ("text/plain; charset=utf-8", text(problem, extra)),
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Rendered {
        status: problem.status,
        headers,
        body: Bytes::from(body),
    }
}

fn json(problem: &Problem, extra: &Extra<'_>) -> String {
    let mut doc = serde_json::Map::new();
    // RFC 9457: an absent `type` means about:blank, so a generic problem shows only its title,
    // status and error id.
    if problem.type_uri != "about:blank" {
        doc.insert("type".into(), problem.type_uri.clone().into());
    }
    doc.insert("title".into(), problem.title.clone().into());
    doc.insert("status".into(), problem.status.as_u16().into());
    doc.insert("error_id".into(), extra.error_id.into());
    if let Some(trace_id) = extra.trace_id {
        doc.insert("trace_id".into(), trace_id.into());
    }
    if let Some(detail) = extra.detail {
        doc.insert("detail".into(), detail.into());
    }
    if let Some(traceback) = extra.traceback {
        doc.insert("traceback".into(), traceback.into());
    }
    serde_json::Value::Object(doc).to_string()
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(problem: &Problem, extra: &Extra<'_>) -> String {
    let title = escape_html(&problem.title);
    let mut page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\n\
         <body><h1>{status} {title}</h1>\n<p>Error id: <code>{id}</code></p>\n",
        status = problem.status.as_u16(),
        id = escape_html(extra.error_id),
    );
    if let Some(trace_id) = extra.trace_id {
        let _ = writeln!(
            page,
            "<p>Trace id: <code>{}</code></p>",
            escape_html(trace_id)
        );
    }
    if let Some(detail) = extra.detail {
        let _ = writeln!(page, "<p>{}</p>", escape_html(detail));
    }
    if let Some(traceback) = extra.traceback {
        let _ = writeln!(page, "<pre>{}</pre>", escape_html(traceback));
    }
    page.push_str("</body></html>\n");
    page
}

fn text(problem: &Problem, extra: &Extra<'_>) -> String {
    let mut out = format!(
        "{} {}\nerror id: {}\n",
        problem.status.as_u16(),
        problem.title,
        extra.error_id
    );
    if let Some(trace_id) = extra.trace_id {
        let _ = writeln!(out, "trace id: {trace_id}");
    }
    if let Some(detail) = extra.detail {
        let _ = writeln!(out, "{detail}");
    }
    if let Some(traceback) = extra.traceback {
        let _ = writeln!(out, "\n{traceback}");
    }
    out
}

/// The gRPC status code for an HTTP status (the inverse of the gRPC HTTP mapping where one
/// exists).
pub(crate) fn grpc_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 | 422 => 3,  // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 => 5,        // NOT_FOUND
        408 | 504 => 4,  // DEADLINE_EXCEEDED
        409 => 10,       // ABORTED
        412 => 9,        // FAILED_PRECONDITION
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        499 => 1,        // CANCELLED
        501 => 12,       // UNIMPLEMENTED
        503 => 14,       // UNAVAILABLE
        500..=599 => 13, // INTERNAL
        _ => 2,          // UNKNOWN
    }
}

/// The longest `grpc-message` the layer writes, in bytes after percent-encoding. gRPC clients
/// take it from a header, and their header limits are often 8 KiB for all headers together: a
/// long error detail is cut (with a visible `...`) so that it can never exceed them.
pub const MAX_GRPC_MESSAGE: usize = 1024;

/// A trailers-only gRPC response: HTTP 200, the status in the headers, no body.
fn grpc(problem: &Problem, extra: &Extra<'_>, mut headers: HeaderMap) -> Rendered {
    let mut message = format!("{} (error id {})", problem.title, extra.error_id);
    if let Some(detail) = extra.detail {
        let _ = write!(message, ": {detail}");
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        "grpc-status",
        HeaderValue::from(u16::from(grpc_code(problem.status))),
    );
    if let Ok(value) = HeaderValue::from_str(&percent_encode(&message, MAX_GRPC_MESSAGE)) {
        headers.insert("grpc-message", value);
    }
    #[cfg(feature = "tonic")]
    if let Some(details) = request_info(problem, extra) {
        headers.insert("grpc-status-details-bin", details);
    }
    Rendered {
        status: StatusCode::OK,
        headers,
        body: Bytes::new(),
    }
}

/// The `grpc-status-details-bin` of a gRPC error: a `google.rpc.Status` carrying a
/// `google.rpc.RequestInfo` whose `request_id` is the error id (and whose `serving_data` is the
/// trace id, when there is one), so that gRPC clients read the id from a typed field
/// (`tonic_types::StatusExt::get_details_request_info`).
#[cfg(feature = "tonic")]
fn request_info(problem: &Problem, extra: &Extra<'_>) -> Option<HeaderValue> {
    use tonic_types::{ErrorDetails, StatusExt};
    let status = tonic::Status::with_error_details(
        tonic::Code::from(i32::from(grpc_code(problem.status))),
        problem.title.clone(),
        ErrorDetails::with_request_info(extra.error_id, extra.trace_id.unwrap_or_default()),
    );
    let mut headers = HeaderMap::new();
    status.add_header(&mut headers).ok()?;
    headers.remove("grpc-status-details-bin")
}

/// gRPC's grpc-message encoding: printable ASCII except `%` as is, every other byte as `%XX`;
/// at most `max` bytes, cut on a character boundary and ending in `...` when cut.
fn percent_encode(text: &str, max: usize) -> String {
    const CUT: &str = "...";
    let encoded_len = |c: char| {
        if c.is_ascii() && (0x20..=0x7e).contains(&(c as u8)) && c != '%' {
            1
        } else {
            3 * c.len_utf8()
        }
    };
    let total: usize = text.chars().map(encoded_len).sum();
    let budget = if total <= max {
        max
    } else {
        max.saturating_sub(CUT.len())
    };
    let mut out = String::with_capacity(total.min(max));
    for c in text.chars() {
        if out.len() + encoded_len(c) > budget {
            out.push_str(CUT);
            break;
        }
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            if (0x20..=0x7e).contains(&b) && b != b'%' {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        let pick = |a: &str| Format::negotiate(Some(&HeaderValue::from_str(a).unwrap()));
        assert_eq!(Format::negotiate(None), Format::Json);
        assert_eq!(
            pick("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Format::Html
        );
        assert_eq!(pick("application/json"), Format::Json);
        assert_eq!(pick("text/plain"), Format::Text);
        assert_eq!(
            pick("text/html;q=0.2, application/problem+json"),
            Format::Json
        );
        assert_eq!(pick("image/png"), Format::Json);
    }

    #[test]
    fn a_long_grpc_message_is_cut_to_its_bound() {
        let p = Problem::new(StatusCode::BAD_REQUEST);
        let detail = "é".repeat(100_000);
        let r = render(
            &p,
            Format::Grpc,
            &Extra {
                error_id: "abc12345",
                trace_id: None,
                detail: Some(&detail),
                traceback: None,
            },
        );
        let message = r.headers["grpc-message"].to_str().unwrap();
        assert!(message.len() <= MAX_GRPC_MESSAGE, "{}", message.len());
        assert!(message.ends_with("..."));
        assert!(
            message.contains("abc12345"),
            "the error id survives the cut"
        );
        // Never cut inside an escape.
        let tail = message.trim_end_matches("...");
        assert!(tail.ends_with("%C3%A9"), "{}", &tail[tail.len() - 12..]);
    }

    #[test]
    fn html_is_escaped_and_grpc_message_is_percent_encoded() {
        let p = Problem::new(StatusCode::BAD_REQUEST).title("<script>alert(1)</script>");
        let r = render(
            &p,
            Format::Html,
            &Extra {
                error_id: "abc",
                trace_id: None,
                detail: Some("a & b"),
                traceback: None,
            },
        );
        let body = std::str::from_utf8(&r.body).unwrap();
        assert!(
            !body.contains("<script>")
                && body.contains("&lt;script&gt;")
                && body.contains("a &amp; b")
        );
        assert_eq!(percent_encode("100% done\n", 64), "100%25 done%0A");
        let r = render(
            &p,
            Format::Grpc,
            &Extra {
                error_id: "abc",
                trace_id: None,
                detail: None,
                traceback: None,
            },
        );
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["grpc-status"], "3");
        assert!(r.body.is_empty());
    }
}
