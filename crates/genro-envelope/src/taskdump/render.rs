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

/// The frames of genro's layers (the envelope's future, or a stack that fuses it) have names in
/// this crate: a leaf that passes through one is the request's; the others are the server's own
/// awaits on the same task (the connection's socket, its timers).
const REQUEST_MARK: &str = "genro_envelope::";

fn in_request(frame: &Frame<'_>) -> bool {
    frame.name.is_some_and(|name| name.contains(REQUEST_MARK))
}

/// Renders `leaves` (one per tokio future the task awaits: several under `join!`, or when the
/// task is a connection that also watches its socket), each innermost frame first, in at most
/// `max_bytes`.
///
/// When some leaves pass through genro's layers, those come first and stop at the outermost
/// layer: what lies outside it is the server's machinery, the same for every request. The other
/// leaves get one line each. Frames are cut from the outer end first: the innermost ones answer
/// "what is it waiting on". Returns the text and whether frames were cut.
pub(crate) fn render(leaves: &[Vec<Frame<'_>>], max_bytes: usize) -> (String, bool) {
    let budget = max_bytes.saturating_sub(CUT_ROOM);
    let request: Vec<&[Frame<'_>]> = leaves
        .iter()
        .filter_map(|leaf| {
            let outermost = leaf.iter().rposition(in_request)?;
            Some(&leaf[..=outermost])
        })
        .collect();
    let (shown, others): (Vec<&[Frame<'_>]>, Vec<&[Frame<'_>]>) = if request.is_empty() {
        (leaves.iter().map(Vec::as_slice).collect(), Vec::new())
    } else {
        let others = leaves
            .iter()
            .filter(|leaf| !leaf.iter().any(in_request))
            .map(Vec::as_slice)
            .collect();
        (request, others)
    };
    let total: usize = shown.iter().map(|leaf| leaf.len()).sum();
    let mut text = String::new();
    let mut written = 0;
    let mut line = String::new();
    'leaves: for (i, leaf) in shown.iter().enumerate() {
        if shown.len() > 1 {
            line.clear();
            let _ = write!(line, "await {} of {}:", i + 1, shown.len());
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
    if !cut {
        for leaf in &others {
            let Some(innermost) = leaf.first() else {
                continue;
            };
            line.clear();
            line.push_str("also awaited by the task, outside the request: ");
            frame_text(&mut line, innermost);
            if !push(&mut text, &line, budget) {
                break;
            }
        }
    }
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

fn frame_line(out: &mut String, frame: &Frame<'_>) {
    out.push_str("  ");
    frame_text(out, frame);
}

fn frame_text(out: &mut String, frame: &Frame<'_>) {
    out.push_str(frame.name.map_or("<unknown>", without_hash));
    if let Some(file) = frame.file {
        let _ = write!(out, " at {}", short_path(&file.to_string_lossy()));
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
    fn the_request_comes_first_and_stops_at_genro_s_layers() {
        let socket = vec![
            frame("tokio::io::Registration::poll_ready", "io.rs", 1),
            frame("hyper::proto::h1::Dispatcher::poll", "dispatch.rs", 2),
        ];
        let request = vec![
            frame("tokio::sync::Notified::poll", "notify.rs", 3),
            frame("app::handler::{{closure}}", "src/main.rs", 4),
            frame(
                "<genro_envelope::watch::WatchedFuture<F> as Future>::poll",
                "watch.rs",
                5,
            ),
            frame("hyper::proto::h1::Dispatcher::poll", "dispatch.rs", 6),
        ];
        let (text, cut) = render(&[socket, request], 4096);
        assert!(!cut);
        assert_eq!(
            text,
            "  tokio::sync::Notified::poll at notify.rs:3\n  \
             app::handler::{{closure}} at src/main.rs:4\n  \
             <genro_envelope::watch::WatchedFuture<F> as Future>::poll at watch.rs:5\n\
             also awaited by the task, outside the request: tokio::io::Registration::poll_ready at io.rs:1"
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
