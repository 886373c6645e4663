//! `[errors]`: its struct, its defaults (`Default`), and `read`.

use std::num::NonZeroU32;

use crate::config::{
    resolver::Resolver,
    value::{self, BOOLEAN, CLIENT_LEVEL, LINE_RATE, OPTIONAL_TEXT},
};

/// `[errors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorsSection {
    /// Error bodies include detail and traceback (`show_traceback`).
    pub show_traceback: bool,
    /// Send critical errors and critically stuck requests to the webhook (`notify_critical`).
    pub notify_critical: bool,
    /// The webhook (`notify_webhook`).
    pub notify_webhook: Option<String>,
    /// The framework's own error answers (the router's 404 and 405, extractor rejections, a
    /// bodiless 4xx or 5xx) get the error format and an error id (`framework_errors`); see
    /// [`ErrorLayer::framework_errors`](genro_errors::ErrorLayer::framework_errors).
    pub framework_errors: bool,
    /// The level 4xx errors are logged at, `None` for none (`client_error_level`: `warning`,
    /// `info`, `debug`, `trace` or `off`).
    pub client_error_level: Option<tracing::Level>,
    /// At most this many 4xx log lines a second for each status, error type and route, the
    /// rest summed up in one line (`client_error_lines_per_second`: a number, or `unlimited`);
    /// see [`ErrorLayer::client_error_lines_per_second`](genro_errors::ErrorLayer::client_error_lines_per_second).
    pub client_error_lines_per_second: Option<NonZeroU32>,
}

impl Default for ErrorsSection {
    /// Production: no tracebacks, no notifications, the framework's errors in the error format,
    /// client errors at WARNING.
    fn default() -> Self {
        Self {
            show_traceback: false,
            notify_critical: false,
            notify_webhook: None,
            framework_errors: true,
            client_error_level: Some(tracing::Level::WARN),
            client_error_lines_per_second: NonZeroU32::new(10),
        }
    }
}

impl ErrorsSection {
    /// Development (`[server] debug = true`): tracebacks in error bodies.
    #[must_use]
    pub fn development() -> Self {
        Self {
            show_traceback: true,
            ..Self::default()
        }
    }

    pub(crate) fn read(r: &mut Resolver<'_>, debug: bool) -> Self {
        let d = if debug {
            Self::development()
        } else {
            Self::default()
        };
        let s = "errors";
        let show_traceback = r.get(s, "show_traceback", d.show_traceback, &BOOLEAN);
        let notify_critical = r.get(s, "notify_critical", d.notify_critical, &BOOLEAN);
        // Judged only where it is used: a placeholder URL is fine while notifications are off.
        let (webhook, source) = r.read(s, "notify_webhook", d.notify_webhook, &OPTIONAL_TEXT);
        if notify_critical {
            match &webhook {
                None => r.problem(
                    s,
                    "notify_webhook",
                    source,
                    "is required when errors.notify_critical is true",
                ),
                Some(url) => {
                    if let Err(why) = value::webhook_url(url) {
                        r.problem(s, "notify_webhook", source, format!("{url:?} is not {why}"));
                    }
                }
            }
        }
        Self {
            show_traceback,
            notify_critical,
            notify_webhook: webhook,
            framework_errors: r.get(s, "framework_errors", d.framework_errors, &BOOLEAN),
            client_error_level: r.get(s, "client_error_level", d.client_error_level, &CLIENT_LEVEL),
            client_error_lines_per_second: r.get(
                s,
                "client_error_lines_per_second",
                d.client_error_lines_per_second,
                &LINE_RATE,
            ),
        }
    }
}
