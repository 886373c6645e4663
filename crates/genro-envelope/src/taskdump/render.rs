//! A task's trace as text: one line per frame, innermost (what it awaits) first, cut to a size.

use std::{fmt::Write as _, path::Path};

/// One frame of a trace, resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) file: Option<&'a Path>,
    pub(crate) line: Option<u32>,
}

/// The marker that ends a trace cut to size; its room is kept free.
const CUT_ROOM: usize = 64;

/// Whether `frame` is in `file` (by its path), or, without one, has `name` in its name.
fn from(frame: &Frame<'_>, file: &str, name: &str) -> bool {
    match frame.file {
        Some(path) => path.to_string_lossy().contains(file),
        None => frame.name.is_some_and(|n| n.contains(name)),
    }
}

/// tokio's own tracing: `Trace::capture` and what it calls.
fn tokio_tracing(frame: &Frame<'_>) -> bool {
    from(
        frame,
        "/runtime/task/trace/",
        "tokio::runtime::task::trace::",
    )
}

/// `leaf` without the tracing's own frames at its outer end: tokio's first tracing frame and
/// everything out of it, and the trace point's closure just inside it.
fn request_frames<'l, 'a>(leaf: &'l [Frame<'a>]) -> &'l [Frame<'a>] {
    let mut end = leaf.iter().position(tokio_tracing).unwrap_or(leaf.len());
    while end > 0 && from(&leaf[end - 1], "taskdump/point.rs", "taskdump::point::") {
        end -= 1;
    }
    &leaf[..end]
}

/// Renders `leaves` (one per tokio future the request awaits: several under `join!`), each
/// innermost frame first, in at most `max_bytes`. Frames are cut from the outer end first: the
/// innermost ones answer "what is it waiting on". Returns the text and whether frames were cut.
pub(crate) fn render(leaves: &[Vec<Frame<'_>>], max_bytes: usize) -> (String, bool) {
    let leaves: Vec<&[Frame<'_>]> = leaves.iter().map(|leaf| request_frames(leaf)).collect();
    let budget = max_bytes.saturating_sub(CUT_ROOM);
    let total: usize = leaves.iter().map(|leaf| leaf.len()).sum();
    let mut text = String::new();
    let mut written = 0;
    let mut line = String::new();
    'leaves: for (i, leaf) in leaves.iter().enumerate() {
        if leaves.len() > 1 {
            line.clear();
            let _ = write!(line, "await {} of {}:", i + 1, leaves.len());
            if !push(&mut text, &line, budget) {
                break 'leaves;
            }
        }
        for frame in *leaf {
            line.clear();
            frame_line(&mut line, frame);
            if !push(&mut text, &line, budget) {
                break 'leaves;
            }
            written += 1;
        }
    }
    let cut = written < total;
    if cut {
        let _ = write!(
            text,
            "… {} outer frames cut (at most {max_bytes} bytes)",
            total - written
        );
    } else if text.ends_with('\n') {
        text.pop();
    }
    (text, cut)
}

fn push(text: &mut String, line: &str, budget: usize) -> bool {
    if text.len() + line.len() + 1 > budget {
        return false;
    }
    text.push_str(line);
    text.push('\n');
    true
}

/// A function's name as a trace shows it: without the symbol's hash and without type
/// arguments (`a::B<T>::f::h0123456789abcdef` is `a::B::f`). genro-errors renders a panic's
/// backtrace with it, so that both read alike.
#[must_use]
pub fn symbol_name(name: &str) -> std::borrow::Cow<'_, str> {
    without_generics(without_hash(name))
}

/// A source path as a trace shows it: a dependency's from its crate directory on
/// (`tokio-1.54.1/src/…`), the standard library's from `library/`, any other as it is.
#[must_use]
pub fn source_path(path: &str) -> &str {
    short_path(path)
}

fn frame_line(out: &mut String, frame: &Frame<'_>) {
    out.push_str("  ");
    match frame.name {
        Some(name) => out.push_str(&symbol_name(name)),
        None => out.push_str("<unknown>"),
    }
    if let Some(file) = frame.file {
        let _ = write!(out, " at {}", source_path(&file.to_string_lossy()));
        if let Some(line) = frame.line {
            let _ = write!(out, ":{line}");
        }
    }
}

/// `path::to::f::h0123456789abcdef` without its `::h…` hash.
fn without_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

/// `a::B<T, U>::f<V>` as `a::B::f`: type arguments make a line of a layered service's future run
/// to kilobytes and say little. A qualified path (`<T as Trait>::f`) keeps its brackets, without
/// the arguments inside them.
fn without_generics(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.contains('<') {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut skipping = 0usize;
    let mut previous = ' ';
    for c in name.chars() {
        if skipping > 0 {
            match c {
                '<' => skipping += 1,
                // `->` in a `fn(A) -> B` argument is no bracket.
                '>' if previous != '-' => skipping -= 1,
                _ => {}
            }
        } else if c == '<' && (previous.is_alphanumeric() || previous == '_' || previous == '}') {
            skipping = 1;
        } else if c == '<' && out.ends_with("::") {
            // A turbofish (`f::<T>`), as std's backtraces write type arguments.
            out.truncate(out.len() - 2);
            skipping = 1;
        } else {
            out.push(c);
        }
        previous = c;
    }
    std::borrow::Cow::Owned(out)
}

/// A dependency's source path from its crate directory on (`tokio-1.54.1/src/…`), and the
/// standard library's from `library/`: the rest is the same on every line.
fn short_path(path: &str) -> &str {
    if let Some(at) = path.find("/registry/src/") {
        let rest = &path[at + "/registry/src/".len()..];
        // Past the index directory (`index.crates.io-…/`).
        if let Some(slash) = rest.find('/') {
            return &rest[slash + 1..];
        }
    }
    if path.starts_with("/rustc/") {
        if let Some(at) = path.find("/library/") {
            return &path[at + 1..];
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &'static str, file: &'static str, line: u32) -> Frame<'static> {
        Frame {
            name: Some(name),
            file: Some(Path::new(file)),
            line: Some(line),
        }
    }

    #[test]
    fn innermost_first_with_hashes_and_long_paths_trimmed() {
        let leaf = vec![
            frame(
                "tokio::sync::notify::Notified::poll_notified::h0123456789abcdef",
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/notify.rs",
                996,
            ),
            frame("app::load_user::{{closure}}", "src/users.rs", 40),
            Frame { name: None, file: None, line: None },
        ];
        let (text, cut) = render(&[leaf], 4096);
        assert!(!cut);
        assert_eq!(
            text,
            "  tokio::sync::notify::Notified::poll_notified at tokio-1.54.1/src/sync/notify.rs:996\n  \
             app::load_user::{{closure}} at src/users.rs:40\n  <unknown>"
        );
    }

    #[test]
    fn several_leaves_are_numbered() {
        let a = vec![frame("a", "a.rs", 1)];
        let b = vec![frame("b", "b.rs", 2)];
        let (text, _) = render(&[a, b], 4096);
        assert_eq!(
            text,
            "await 1 of 2:\n  a at a.rs:1\nawait 2 of 2:\n  b at b.rs:2"
        );
    }

    #[test]
    fn outer_frames_are_cut_first_and_the_cut_is_said() {
        let leaf: Vec<_> = (0..100)
            .map(|_| {
                frame(
                    "some::rather::long::function::name::{{closure}}",
                    "src/lib.rs",
                    1,
                )
            })
            .collect();
        let (text, cut) = render(&[leaf], 1024);
        assert!(cut);
        assert!(text.len() <= 1024, "{} bytes", text.len());
        assert!(text.starts_with("  some::rather"));
        let kept = text.lines().count() - 1;
        assert!(text.ends_with(&format!(
            "… {} outer frames cut (at most 1024 bytes)",
            100 - kept
        )));
    }

    #[test]
    fn type_arguments_are_left_out_and_qualified_paths_kept() {
        assert_eq!(
            without_generics("hyper::proto::h1::Dispatcher<D,Bs,I,T>::poll_catch"),
            "hyper::proto::h1::Dispatcher::poll_catch"
        );
        assert_eq!(
            without_generics("<F as axum::handler::Handler<(M,T1,T2),S>>::call::{{closure}}"),
            "<F as axum::handler::Handler>::call::{{closure}}"
        );
        assert_eq!(
            without_generics("poll<Map<Fut, fn(Response<Body>) -> Result<Response<Body>, E>>>"),
            "poll"
        );
        assert_eq!(without_generics("{async_fn#0}"), "{async_fn#0}");
        assert_eq!(
            without_generics("std::panicking::begin_panic::<&str>::{closure#0}"),
            "std::panicking::begin_panic::{closure#0}"
        );
        assert_eq!(without_generics("{closure#1}<Either, Body>"), "{closure#1}");
    }

    #[test]
    fn the_tracing_s_own_frames_are_left_out() {
        let leaf = vec![
            frame("poll_elapsed", "tokio-1.54.1/src/time/sleep.rs", 384),
            frame("{async_fn#0}", "examples/server.rs", 125),
            frame(
                "{closure#0}",
                "/src/crates/genro-envelope/src/taskdump/point.rs",
                150,
            ),
            frame(
                "trace_with",
                "tokio-1.54.1/src/runtime/task/trace/mod.rs",
                256,
            ),
            frame("capture", "tokio-1.54.1/src/runtime/task/trace/mod.rs", 268),
            frame("poll", "library/core/src/future/poll_fn.rs", 151),
        ];
        let (text, _) = render(&[leaf], 4096);
        assert_eq!(
            text,
            "  poll_elapsed at tokio-1.54.1/src/time/sleep.rs:384\n  {async_fn#0} at examples/server.rs:125"
        );
    }

    #[test]
    fn only_a_real_hash_is_removed() {
        assert_eq!(without_hash("a::b::h0123456789abcdef"), "a::b");
        assert_eq!(without_hash("a::hello"), "a::hello");
        assert_eq!(
            short_path("/rustc/abc123/library/core/src/future.rs"),
            "library/core/src/future.rs"
        );
        assert_eq!(short_path("src/main.rs"), "src/main.rs");
    }
}
