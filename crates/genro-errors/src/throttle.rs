//! A bound on client-error log lines: a client sending 404s as fast as it can would otherwise
//! write a line per request (megabytes a second). Each kind of line (its status, error type and
//! route) gets `per_second` lines a second; the rest of that second are summed up in one line,
//! written when the second ends: "N more like this in the last second". Server errors never pass
//! through here, and `errors_total` counts every error, logged or not.

use std::{
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use crate::ErrorReport;

/// The most kinds of line counted apart in one second; beyond them (a client inventing routes
/// would not, since routes are templates, but methods and statuses add up) the rest share one.
const MAX_KINDS: usize = 64;

const WINDOW: Duration = Duration::from_secs(1);

/// What makes two client-error lines alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Kind {
    status: u16,
    error_type: &'static str,
    route: Option<Box<str>>,
}

impl Kind {
    /// Whether `report`'s line is of this kind (compared in place: nothing is allocated for a
    /// kind already seen).
    fn matches(&self, report: &ErrorReport) -> bool {
        self.status == report.status.as_u16()
            && self.error_type == report.error_type
            && self.route.as_deref() == report.envelope.route()
    }

    fn of(report: &ErrorReport) -> Self {
        Self {
            status: report.status.as_u16(),
            error_type: report.error_type,
            route: report.envelope.route().map(Box::from),
        }
    }

    /// The kind the lines past [`MAX_KINDS`] share.
    fn others() -> Self {
        Self {
            status: 0,
            error_type: "other",
            route: None,
        }
    }
}

/// Lines of one kind in the current second.
#[derive(Debug, Default)]
struct Seen {
    lines: u32,
    suppressed: u64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    /// A few kinds at a time (at most [`MAX_KINDS`]): searched in order.
    seen: Vec<(Kind, Seen)>,
    /// A task will write the summaries when the second ends.
    flush_scheduled: bool,
}

/// The shared bound; cloning shares it.
#[derive(Clone, Debug)]
pub(crate) struct Throttle {
    per_second: NonZeroU32,
    window: Arc<Mutex<Window>>,
}

/// What the caller does with a line: write it, or leave it to a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Write,
    Suppress,
}

impl Throttle {
    pub(crate) fn new(per_second: NonZeroU32) -> Self {
        Self {
            per_second,
            window: Arc::new(Mutex::new(Window {
                started: Instant::now(),
                seen: Vec::new(),
                flush_scheduled: false,
            })),
        }
    }

    pub(crate) fn per_second(&self) -> NonZeroU32 {
        self.per_second
    }

    /// Counts one client-error line logged at `level`: whether to write it. Writes the
    /// summaries of a second that has ended.
    pub(crate) fn admit(&self, report: &ErrorReport, level: tracing::Level) -> Verdict {
        let now = Instant::now();
        let (verdict, ended, flush_at) = {
            let mut window = self.lock();
            let ended = window.roll(now);
            let seen = window.seen_for(report);
            let verdict = if seen.lines < self.per_second.get() {
                seen.lines += 1;
                Verdict::Write
            } else {
                seen.suppressed += 1;
                Verdict::Suppress
            };
            let flush_at = (verdict == Verdict::Suppress && !window.flush_scheduled).then(|| {
                window.flush_scheduled = true;
                window.started + WINDOW
            });
            (verdict, ended, flush_at)
        };
        summarize(ended, level);
        if let Some(at) = flush_at {
            self.flush_at(at, level);
        }
        verdict
    }

    /// Writes the summaries when the second under way ends: on a task when there is a
    /// runtime, else at the next client error.
    fn flush_at(&self, at: Instant, level: tracing::Level) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let throttle = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            let ended = throttle.lock().roll(Instant::now());
            summarize(ended, level);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Window {
    /// The count of `report`'s kind, made on its first line of the second.
    fn seen_for(&mut self, report: &ErrorReport) -> &mut Seen {
        let found = self.seen.iter().position(|(kind, _)| kind.matches(report));
        let at = found.unwrap_or_else(|| {
            let kind = if self.seen.len() < MAX_KINDS {
                Kind::of(report)
            } else {
                Kind::others()
            };
            self.seen
                .iter()
                .position(|(seen, _)| *seen == kind)
                .unwrap_or_else(|| {
                    self.seen.push((kind, Seen::default()));
                    self.seen.len() - 1
                })
        });
        &mut self.seen[at].1
    }

    /// Starts a new second if the current one has ended; returns the suppressed counts of the
    /// one that ended.
    fn roll(&mut self, now: Instant) -> Vec<(Kind, u64)> {
        if now.duration_since(self.started) < WINDOW {
            return Vec::new();
        }
        self.started = now;
        self.flush_scheduled = false;
        self.seen
            .drain(..)
            .filter(|(_, seen)| seen.suppressed > 0)
            .map(|(kind, seen)| (kind, seen.suppressed))
            .collect()
    }
}

/// One line for each kind of line that had some left out.
fn summarize(ended: Vec<(Kind, u64)>, level: tracing::Level) {
    for (kind, suppressed) in ended {
        let route = kind.route.as_deref().unwrap_or("-");
        macro_rules! event {
            ($level:ident) => {
                // Of no request: not inside the span of the one whose line rolled the second.
                tracing::$level!(
                    parent: None,
                    status = kind.status,
                    error_type = kind.error_type,
                    route,
                    suppressed,
                    "request failed: {suppressed} more like this in the last second \
                     (errors_total counts each)"
                )
            };
        }
        match level {
            tracing::Level::ERROR | tracing::Level::WARN => event!(warn),
            tracing::Level::INFO => event!(info),
            tracing::Level::DEBUG => event!(debug),
            tracing::Level::TRACE => event!(trace),
        }
    }
}
