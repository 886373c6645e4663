//! The backtrace of a panic, from the panic hook (which runs where the panic happened) to the
//! error layer (which catches it a few frames up, on the same thread).

use std::{
    backtrace::{Backtrace, BacktraceStatus},
    cell::RefCell,
};

thread_local! {
    static LAST: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// Hands the backtrace of the panic in progress on this thread to the [`ErrorLayer`] that will
/// catch it, so that its report (the log line, the debug console's `attach`, the traceback
/// when shown) carries where the panic happened. Call it from a panic hook; a backtrace that was
/// not captured (`RUST_BACKTRACE` unset) clears what an earlier panic left.
///
/// genro-server's panic hook calls it. [`install_panic_hook`] installs one that does only this.
///
/// [`ErrorLayer`]: crate::ErrorLayer
pub fn remember_panic_backtrace(backtrace: Backtrace) {
    let kept = (backtrace.status() == BacktraceStatus::Captured).then_some(backtrace);
    LAST.with(|last| *last.borrow_mut() = kept);
}

/// Installs a panic hook that captures each panic's backtrace for the error layer (see
/// [`remember_panic_backtrace`]) and then runs the hook that was installed before. Capture
/// follows `RUST_BACKTRACE` and `RUST_LIB_BACKTRACE`, as [`Backtrace::capture`] does.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        remember_panic_backtrace(Backtrace::capture());
        previous(info);
    }));
}

/// The backtrace the hook left for the panic just caught on this thread.
pub(crate) fn take() -> Option<String> {
    LAST.with(|last| last.borrow_mut().take())
        .map(|b| b.to_string())
}
