//! A backtrace as a debugger reads it: the frames between the panic (or the capture) and the
//! error layer, the application's own marked, each line as a task's trace shows it (no type
//! arguments, no symbol hashes, no registry prefixes).
//!
//! A captured backtrace of a panic in a handler runs to more than a hundred frames: first the
//! panic machinery and the hook, then the handler and what called it, then the error layer's
//! `catch_unwind` and everything out of it (the layers, the connection, the runtime). The
//! handler's frame sits near the top, between the first group and the third.

use std::fmt;

use genro_envelope::taskdump::{source_path, symbol_name};

/// One frame of a backtrace's text: its function and where it is.
struct Frame<'a> {
    name: &'a str,
    at: Option<&'a str>,
}

/// A backtrace cut to the frames that say where an error came from: see [`short_backtrace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortBacktrace {
    lines: Vec<String>,
    total: usize,
}

impl ShortBacktrace {
    /// The frames kept.
    #[must_use]
    pub fn shown(&self) -> usize {
        self.lines.len()
    }

    /// The frames of the whole backtrace.
    #[must_use]
    pub fn total(&self) -> usize {
        self.total
    }
}

impl fmt::Display for ShortBacktrace {
    /// A first line that says what is shown, then one line per frame, `*` before the
    /// application's own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} frames, from the panic to the error layer (* the application's):",
            self.lines.len(),
            self.total
        )?;
        for line in &self.lines {
            write!(f, "\n{line}")?;
        }
        Ok(())
    }
}

/// `text` (a [`std::backtrace::Backtrace`] as it prints) cut to the frames between the panic
/// machinery (or the capture) and the error layer's `catch_unwind`, each rendered as a task's
/// trace renders its frames, the application's marked with `*`. `None` when `text` has no
/// frame this can read: show it whole.
#[must_use]
pub fn short_backtrace(text: &str) -> Option<ShortBacktrace> {
    let frames = parse(text);
    if frames.is_empty() {
        return None;
    }
    let end = frames
        .iter()
        .position(|f| is_catch(&symbol_name(f.name)))
        .unwrap_or(frames.len());
    let start = frames[..end]
        .iter()
        .rposition(|f| is_machinery(&symbol_name(f.name)))
        .map_or(0, |last| last + 1);
    let kept = if start < end {
        &frames[start..end]
    } else {
        &frames[..]
    };
    let lines = kept.iter().map(line).collect();
    Some(ShortBacktrace {
        lines,
        total: frames.len(),
    })
}

/// The frames of std's backtrace text: `  N: name` lines, each maybe followed by `at path`.
fn parse(text: &str) -> Vec<Frame<'_>> {
    let mut frames: Vec<Frame<'_>> = Vec::new();
    for raw in text.lines() {
        let trimmed = raw.trim_start();
        if let Some(at) = trimmed.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                last.at.get_or_insert(at);
            }
            continue;
        }
        let Some((number, name)) = trimmed.split_once(": ") else {
            continue;
        };
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
            frames.push(Frame { name, at: None });
        }
    }
    frames
}

/// Where the panic is caught: the error layer's `catch_unwind` (or the error layer itself).
fn is_catch(name: &str) -> bool {
    name.contains("catch_unwind")
        || name.contains("panicking::try")
        || name == "__rust_try"
        || (name.trim_start_matches('<').starts_with("genro_errors::") && !is_machinery(name))
}

/// The panic machinery, the panic hook's call, or the capture of a backtrace.
fn is_machinery(name: &str) -> bool {
    const PREFIXES: [&str; 12] = [
        "std::backtrace",
        "std::panicking::",
        "core::panicking::",
        "core::panic::",
        "std::panic::",
        "rust_begin_unwind",
        "__rustc::",
        "std::sys::backtrace::",
        "std::sys_common::backtrace",
        "genro_errors::panic::",
        "genro_errors::error::",
        "<alloc::boxed::Box as core::ops::function::Fn",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) && !name.contains("catch_unwind")
}

/// Whether a frame is the application's: its source is neither the standard library's, nor a
/// dependency's, nor genro's.
fn is_application(frame: &Frame<'_>) -> bool {
    let Some(at) = frame.at else { return false };
    let name = frame.name.trim_start_matches('<');
    !(at.starts_with("/rustc/")
        || at.contains("/registry/src/")
        || at.contains("/.cargo/git/")
        || at.contains("/rustlib/")
        || name.starts_with("genro_"))
}

/// One frame as a task's trace shows it, marked when it is the application's.
fn line(frame: &Frame<'_>) -> String {
    let mark = if is_application(frame) { '*' } else { ' ' };
    let name = symbol_name(frame.name);
    match frame.at {
        Some(at) => {
            // `path:line:column` without the column.
            let at = match at.rsplit_once(':') {
                Some((head, column)) if column.bytes().all(|b| b.is_ascii_digit()) => head,
                _ => at,
            };
            format!("{mark} {name} at {}", source_path(at))
        }
        None => format!("{mark} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic in a handler, caught by the error layer, as std prints the backtrace (cut: the
    /// runtime's frames go on past the last one here).
    const CAUGHT: &str = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/5980/library/std/src/backtrace.rs:312:9
   1: console::common::capture_backtraces::{{closure}}::{{closure}}
             at ./tests/common/mod.rs:158:55
   2: <alloc::boxed::Box<dyn for<'a, 'b> core::ops::function::Fn<(&'a std::panic::PanicHookInfo<'b>,), Output = ()> + core::marker::Sync + core::marker::Send> as core::ops::function::Fn<(&std::panic::PanicHookInfo,)>>::call
             at /rustc/5980/library/alloc/src/boxed.rs:2254:9
   3: std::panicking::panic_with_hook
             at /rustc/5980/library/std/src/panicking.rs:833:13
   4: std::panicking::begin_panic::<&str>::{closure#0}
             at /rustc/5980/library/std/src/panicking.rs:762:9
   5: std::sys::backtrace::__rust_end_short_backtrace::<std::panicking::begin_panic<&str>::{closure#0}, !>
             at /rustc/5980/library/std/src/sys/backtrace.rs:182:18
   6: std::panicking::begin_panic::<&str>
             at /rustc/5980/library/std/src/panicking.rs:761:5
   7: shop::orders::load::<u64>::{{closure}}
             at ./src/orders.rs:40:9
   8: <axum::handler::HandlerService<H,T,S> as tower_service::Service<http::request::Request<B>>>::call::{{closure}}
             at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/axum-0.8.4/src/handler/service.rs:180:28
   9: <genro_envelope::cancel::CancelFuture<F> as core::future::future::Future>::poll::h0123456789abcdef
             at /work/crates/genro-envelope/src/cancel.rs:90:5
  10: std::panicking::catch_unwind::do_call
             at /rustc/5980/library/std/src/panicking.rs:581:40
  11: __rust_try
  12: std::panicking::catch_unwind
             at /rustc/5980/library/std/src/panicking.rs:544:19
  13: <genro_errors::future::ResponseFuture<F,B> as core::future::future::Future>::poll
             at /work/crates/genro-errors/src/future.rs:140:21
  14: tokio::runtime::task::harness::poll_future
             at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/task/harness.rs:473:18";

    #[test]
    fn the_frames_between_the_panic_and_the_error_layer_the_applications_marked() {
        let short = short_backtrace(CAUGHT).expect("frames");
        assert_eq!((short.shown(), short.total()), (3, 15));
        assert_eq!(
            short.to_string(),
            "3 of 15 frames, from the panic to the error layer (* the application's):\n\
             * shop::orders::load::{{closure}} at ./src/orders.rs:40\n  \
             <axum::handler::HandlerService as tower_service::Service>::call::{{closure}} at axum-0.8.4/src/handler/service.rs:180\n  \
             <genro_envelope::cancel::CancelFuture as core::future::future::Future>::poll at /work/crates/genro-envelope/src/cancel.rs:90"
        );
    }

    #[test]
    fn a_backtrace_captured_outside_any_layer_keeps_every_frame_past_the_capture() {
        let text = "   0: std::backtrace::Backtrace::capture\n             at /rustc/1/library/std/src/backtrace.rs:1:1\n   1: app::main\n             at src/main.rs:3:5";
        let short = short_backtrace(text).unwrap();
        assert_eq!(short.shown(), 1);
        assert!(
            short
                .to_string()
                .ends_with("\n* app::main at src/main.rs:3"),
            "{short}"
        );
        assert_eq!(short_backtrace("disabled backtrace"), None);
    }
}
