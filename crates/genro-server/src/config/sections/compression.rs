//! `[compression]`: its struct, its defaults (`Default`), and `read`.

use crate::config::{
    resolver::Resolver,
    value::{Encoding, BOOLEAN, ENCODINGS, SMALL_SIZE},
};

/// `[compression]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompressionSection {
    /// Compress responses (`enabled`).
    pub enabled: bool,
    /// Smallest response worth compressing, in bytes, at most 65535 (`min_size`).
    pub min_size: u16,
    /// Encodings offered (`algorithms`).
    pub algorithms: Vec<Encoding>,
}

impl Default for CompressionSection {
    fn default() -> Self {
        Self {
            enabled: false,
            min_size: 1024,
            algorithms: vec![Encoding::Gzip, Encoding::Br],
        }
    }
}

impl CompressionSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "compression";
        Self {
            enabled: r.get(s, "enabled", d.enabled, &BOOLEAN),
            min_size: r.get(s, "min_size", d.min_size, &SMALL_SIZE),
            algorithms: r.get(s, "algorithms", d.algorithms, &ENCODINGS),
        }
    }

    /// Whether `encoding` is offered.
    #[must_use]
    pub fn offers(&self, encoding: Encoding) -> bool {
        self.algorithms.contains(&encoding)
    }
}
