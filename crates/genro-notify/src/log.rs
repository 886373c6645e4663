//! The request fields of genro's log lines, written once.

/// Emits a tracing event at `$level` carrying the request fields every genro report logs
/// (`request_id`, `error_id`, `external_id`, `method`, `path` cut to
/// [`MAX_REPORTED_PATH`](crate::MAX_REPORTED_PATH), `route`), followed by the caller's own fields
/// and message, written as for `tracing::event!`.
///
/// The stuck-request lines of the watchdog and the error lines of the error layer both use it,
/// so the same request reads the same way in both.
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
        $crate::__private::tracing::$level!(
            request_id = %envelope.internal_id().hyphenated(),
            error_id = %envelope.short_id(),
            external_id = envelope.external_id(),
            method = %envelope.method(),
            path = %$crate::__private::truncated(envelope.path(), $crate::MAX_REPORTED_PATH),
            route = envelope.route(),
            $($rest)+
        )
    }};
}
