//! Panics in the log: one event for each, in the log's own format, with where it happened.
//!
//! A panic inside a request is caught by the [`ErrorLayer`](crate::ErrorLayer) polling it. The
//! hook then only leaves the panic's location and backtrace for that layer, whose one event
//! ("request failed", `kind=panic`) carries them with the request's ids and the error id. A
//! panic anywhere else (a spawned task, a background thread) is logged by the hook itself.
//! Neither goes to stderr a second time: tracing is the only writer.

use std::{
    backtrace::{Backtrace, BacktraceStatus},
    cell::{Cell, RefCell},
    panic::PanicHookInfo,
};

/// Where a caught panic happened, from the hook (which runs where it happened) to the layer
/// (which catches it a few frames up, on the same thread).
pub(crate) struct Caught {
    pub(crate) location: Option<String>,
    pub(crate) backtrace: Option<String>,
}

thread_local! {
    // How many error layers on this thread are polling inside `catch_unwind` right now.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    static LAST: RefCell<Option<Caught>> = const { RefCell::new(None) };
}

/// Marks this thread as inside an error layer's `catch_unwind` while it lives.
pub(crate) struct Catching(());

impl Catching {
    #[inline(always)]
    pub(crate) fn enter() -> Self {
        CATCHING.with(|c| c.set(c.get() + 1));
        Self(())
    }
}

impl Drop for Catching {
    #[inline(always)]
    fn drop(&mut self) {
        CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Hands the backtrace of the panic in progress on this thread to the [`ErrorLayer`] that will
/// catch it, so that its report (the log line, the debug console's `attach`, the traceback
/// when shown) carries where the panic happened. For a panic hook of your own;
/// [`install_panic_hook`] does this and more. A backtrace that was not captured
/// (`RUST_BACKTRACE` unset) clears what an earlier panic left.
///
/// [`ErrorLayer`]: crate::ErrorLayer
pub fn remember_panic_backtrace(backtrace: &Backtrace) {
    leave(Caught {
        location: None,
        backtrace: captured(backtrace),
    });
}

/// The backtrace's text, when it was captured.
fn captured(backtrace: &Backtrace) -> Option<String> {
    (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string())
}

/// Leaves `caught` for the error layer that catches the panic in progress on this thread.
fn leave(caught: Caught) {
    LAST.with(|last| *last.borrow_mut() = Some(caught));
}

/// What [`log_panic`] did with a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PanicLogged {
    /// An error layer on this thread catches it; the layer's event carries it.
    ByLayer,
    /// Logged as an event of its own.
    Logged,
    /// Not logged: no tracing subscriber was ever installed. A hook then calls the previous
    /// one, so that the panic is not lost.
    NoSubscriber,
}

/// What [`install_panic_hook`]'s hook does with one panic, for a hook of your own: inside an
/// [`ErrorLayer`](crate::ErrorLayer) it leaves the location and backtrace to the layer's one
/// event; elsewhere it logs one `ERROR` event (target `panic`) with the message, `location`,
/// `thread` and, when capture is on, `backtrace`.
pub fn log_panic(info: &PanicHookInfo<'_>) -> PanicLogged {
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    let backtrace = captured(&Backtrace::capture());
    if CATCHING.with(Cell::get) > 0 {
        leave(Caught {
            location,
            backtrace,
        });
        return PanicLogged::ByLayer;
    }
    if !tracing::dispatcher::has_been_set() {
        return PanicLogged::NoSubscriber;
    }
    let message = panic_message(info.payload());
    let thread = std::thread::current();
    let backtrace = backtrace
        .map(|text| crate::backtrace::short_backtrace(&text).map_or(text, |s| s.to_string()));
    tracing::error!(
        target: "panic",
        location = location.as_deref(),
        thread = thread.name().unwrap_or("unnamed"),
        backtrace = backtrace.as_deref(),
        "panicked: {message}"
    );
    PanicLogged::Logged
}

/// Installs a panic hook that sends every panic to the log through tracing, once, in the log's
/// format (see [`log_panic`]): a panic an [`ErrorLayer`](crate::ErrorLayer) catches is the
/// layer's "request failed" event, with the message, the location, the backtrace and the
/// request's ids; any other panic is an event of its own. The process's default output on
/// stderr is not written as well, unless no tracing subscriber was ever installed (then nothing
/// would see the panic). Backtrace capture follows `RUST_BACKTRACE` and `RUST_LIB_BACKTRACE`,
/// as [`Backtrace::capture`] does.
///
/// genro-server installs it with its logging; users of the layers alone call it once, after
/// installing their subscriber.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if log_panic(info) == PanicLogged::NoSubscriber {
            previous(info);
        }
    }));
}

/// What the hook left for the panic just caught on this thread.
pub(crate) fn take() -> Option<Caught> {
    LAST.with(|last| last.borrow_mut().take())
}

/// A panic's payload as text: the message of `panic!("…")` (a `&str` or a `String`), or a
/// placeholder for any other payload. What `catch_unwind` returns goes through this, in the
/// error layer and in genro-server's executors alike.
#[must_use]
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}
