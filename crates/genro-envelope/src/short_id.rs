//! [`ShortId`]: the eight hex characters that name a request to people.

use std::fmt;

use uuid::Uuid;

/// Eight lowercase hex characters identifying a request to people: see
/// [`RequestEnvelope::short_id`](crate::RequestEnvelope::short_id). Dereferences to `str`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortId([u8; 8]);

impl ShortId {
    /// The last eight hex digits of `id`: its random tail.
    pub(crate) fn of(id: &Uuid) -> Self {
        Self(short_hex(id))
    }
}

impl ShortId {
    /// The id as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Always ASCII hex: built by `short_hex`.
        std::str::from_utf8(&self.0).unwrap_or("00000000")
    }
}

impl std::ops::Deref for ShortId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for ShortId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

fn short_hex(id: &Uuid) -> [u8; 8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = id.as_bytes();
    let mut out = [0u8; 8];
    for (i, b) in bytes[12..].iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    out
}
