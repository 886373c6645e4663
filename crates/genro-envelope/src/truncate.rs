//! Text cut to a bound, visibly: what every genro crate applies to a value that reaches a log, a
//! report or the console.

use std::borrow::Cow;

/// `text` cut to at most `max` bytes on a character boundary, ending in a marker that says how
/// many bytes were cut (`…[1234 bytes cut]`), so a reader knows the value is incomplete.
/// Text within the limit is returned as it is.
///
/// ```
/// use genro_envelope::plumbing::truncated;
///
/// assert_eq!(truncated("short", 64), "short");
/// let long = "x".repeat(1000);
/// let cut = truncated(&long, 64);
/// assert!(cut.len() <= 64 && cut.ends_with("bytes cut]"));
/// ```
#[must_use]
pub fn truncated(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    // The marker's length depends on the number it holds; the longest possible is reserved.
    let reserve = "…[ bytes cut]".len() + decimal_len(text.len());
    let mut end = max.saturating_sub(reserve);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(max);
    out.push_str(&text[..end]);
    out.push('…');
    out.push('[');
    out.push_str(&(text.len() - end).to_string());
    out.push_str(" bytes cut]");
    if out.len() > max {
        // Only when `max` is too small to hold even the marker.
        let mut end = max;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    Cow::Owned(out)
}

fn decimal_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::truncated;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn truncated_never_exceeds_the_limit_and_keeps_a_prefix(
            text in "\\PC{0,300}", max in 0usize..200
        ) {
            let out = truncated(&text, max);
            prop_assert!(out.len() <= max, "{} > {}", out.len(), max);
            if text.len() <= max {
                prop_assert_eq!(&*out, &*text);
            } else if max >= 24 {
                prop_assert!(out.ends_with(" bytes cut]"));
                let head = out.split('…').next().unwrap();
                prop_assert!(text.starts_with(head));
            }
        }
    }
}
