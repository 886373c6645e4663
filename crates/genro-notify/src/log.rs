//! The request fields of genro's log lines, written once.

/// Emits a tracing event at `$level` carrying the request fields every genro report logs
/// (`request_id`, `error_id`, `external_id`, `method`, `path` cut to
/// [`MAX_REPORTED_PATH`](crate::MAX_REPORTED_PATH), `route`), followed by the caller's own fields
/// and message, written as for `tracing::event!`.
///
/// The stuck-request lines of the watchdog and the error lines of the error layer both use it,
/// so the same request reads the same way in both. A field the current span already declares
/// (the server's request span has `method`, `path`, `request_id`, `external_id` and
/// `trace_id`) is left to the span, so that each field appears once per line.
///
/// ```
/// use genro_envelope::RequestEnvelope;
///
/// let envelope = RequestEnvelope::new(http::Method::GET, http::Uri::from_static("/orders/7"));
/// genro_notify::request_event!(warn, &envelope, age_s = 61.5, "request is slow");
/// ```
#[macro_export]
macro_rules! request_event {
    ($level:ident, $envelope:expr, $($rest:tt)+) => {{
        let envelope: &$crate::__private::RequestEnvelope = $envelope;
        let span = $crate::__private::SpanFields::current();
        $crate::__private::tracing::$level!(
            request_id = (!span.request_id)
                .then(|| $crate::__private::tracing::field::display(envelope.internal_id().hyphenated())),
            error_id = %envelope.short_id(),
            external_id = envelope.external_id().filter(|_| !span.external_id),
            trace_id = envelope
                .trace_context()
                .filter(|_| !span.trace_id)
                .map(|t| $crate::__private::tracing::field::display(t.trace_id())),
            method = (!span.method).then(|| $crate::__private::tracing::field::display(envelope.method())),
            path = (!span.path).then(|| {
                $crate::__private::tracing::field::display(
                    $crate::__private::truncated(envelope.path(), $crate::MAX_REPORTED_PATH),
                )
            }),
            route = envelope.route(),
            $($rest)+
        )
    }};
}

/// Which request fields the current span declares, so that [`request_event!`] leaves them to
/// it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
#[allow(clippy::struct_excessive_bools)]
pub struct SpanFields {
    pub request_id: bool,
    pub external_id: bool,
    pub trace_id: bool,
    pub method: bool,
    pub path: bool,
}

impl SpanFields {
    /// The current span's.
    #[must_use]
    pub fn current() -> Self {
        let span = tracing::Span::current();
        let has = |name: &str| span.field(name).is_some();
        Self {
            request_id: has("request_id"),
            external_id: has("external_id"),
            trace_id: has("trace_id"),
            method: has("method"),
            path: has("path"),
        }
    }
}
