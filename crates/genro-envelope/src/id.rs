//! External request id validation.

/// The longest external id that is accepted, in bytes.
pub const MAX_EXTERNAL_ID_LEN: usize = 128;

/// Whether `value` is an acceptable external request id.
///
/// The accepted language is `^[A-Za-z0-9._:-]{1,128}$`: short, ASCII, and free of every byte that
/// could split a header, a log line or a shell word. Anything else is refused whole; it is never
/// trimmed or repaired, because a repaired id no longer matches the one the caller logged.
///
/// ```
/// use genro_envelope::is_valid_external_id;
///
/// assert!(is_valid_external_id(b"req-42.a:b_c"));
/// assert!(!is_valid_external_id(b"evil\r\nset-cookie: x"));
/// assert!(!is_valid_external_id(b""));
/// ```
#[must_use]
pub fn is_valid_external_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_EXTERNAL_ID_LEN
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Why an external id was refused. Carries no part of the value, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Empty,
    TooLong(usize),
    BadByte,
}

impl Refusal {
    pub(crate) fn of(value: &[u8]) -> Option<Self> {
        if value.is_empty() {
            Some(Self::Empty)
        } else if value.len() > MAX_EXTERNAL_ID_LEN {
            Some(Self::TooLong(value.len()))
        } else if is_valid_external_id(value) {
            None
        } else {
            Some(Self::BadByte)
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong(_) => "longer than 128 bytes",
            Self::BadByte => "byte outside [A-Za-z0-9._:-]",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        assert!(is_valid_external_id(&[b'a'; 128]));
        assert!(!is_valid_external_id(&[b'a'; 129]));
        assert!(!is_valid_external_id(b"a b"));
        assert!(!is_valid_external_id(b"a\0b"));
        assert!(!is_valid_external_id("caf\u{e9}".as_bytes()));
        assert_eq!(Refusal::of(&[b'x'; 10_240]), Some(Refusal::TooLong(10_240)));
        assert_eq!(Refusal::of(b""), Some(Refusal::Empty));
        assert_eq!(Refusal::of(b"ok"), None);
    }

    proptest! {
        #[test]
        fn agrees_with_the_documented_pattern(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let expected = (1..=128).contains(&bytes.len())
                && bytes.iter().all(|b| b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-".contains(b));
            prop_assert_eq!(is_valid_external_id(&bytes), expected);
            prop_assert_eq!(Refusal::of(&bytes).is_none(), expected);
        }
    }
}
