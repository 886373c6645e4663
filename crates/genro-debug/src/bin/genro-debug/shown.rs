//! What a client or a handler wrote, made safe for the operator's terminal.
//!
//! A path, a header, an annotation or an error message reaches the console as text the server
//! did not write. HTTP/1 refuses ESC in a path or a header value, but UTF-8 C1 controls pass
//! (U+009B is CSI, U+009D is OSC: `\u{9b}2J` clears a VT220-style screen, `\u{9d}0;…\u{9c}` retitles
//! the window), and a handler's error message may hold anything. Every such field is printed
//! through [`line`] or [`lines`], which show C0 controls, DEL, C1 controls and the bidirectional
//! formatting characters (which reorder what is shown around them) as visible `\u{…}` escapes.

use std::{borrow::Cow, fmt::Write};

/// `text` for one line of the terminal: every control character escaped, newlines included.
pub(crate) fn line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` over several lines (a backtrace, a task's trace): newlines are kept, every other
/// control character is escaped.
pub(crate) fn lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| !(keep_newlines && c == '\n') && hidden(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether a terminal would act on `c` (or reorder the text around it) instead of showing it.
fn hidden(c: char) -> bool {
    // C0, DEL and C1 are exactly `char::is_control`. Then the bidirectional formatting
    // characters: ALM, LRM and RLM, the embeddings and overrides (LRE to RLO), the isolates
    // (LRI to PDI).
    c.is_control()
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::{line, lines};

    #[test]
    fn control_and_bidirectional_characters_are_shown_as_escapes() {
        assert_eq!(line("/orders/42 café"), "/orders/42 café");
        assert!(matches!(line("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(line("/error/c1\u{9b}2J"), "/error/c1\\u{9b}2J");
        assert_eq!(line("\u{9d}0;TITLE\u{9c}"), "\\u{9d}0;TITLE\\u{9c}");
        assert_eq!(line("a\u{1b}[2Jb\u{7f}"), "a\\u{1b}[2Jb\\u{7f}");
        assert_eq!(line("next\u{85}line\r\n"), "next\\u{85}line\\u{d}\\u{a}");
        assert_eq!(line("\tx"), "\\u{9}x");
        assert_eq!(line("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(
            line("\u{2066}a\u{2069}\u{200f}"),
            "\\u{2066}a\\u{2069}\\u{200f}"
        );
        assert_eq!(lines("at main\n  at f\u{9b}"), "at main\n  at f\\u{9b}");
        assert_eq!(lines("a\rb"), "a\\u{d}b");
        // Every C0, DEL and C1 character is escaped.
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(line(&c.to_string()).starts_with("\\u{"), "{c:?}");
        }
    }
}
