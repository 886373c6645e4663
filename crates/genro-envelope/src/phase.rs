//! [`Phase`]: where a request is in its life.

use std::fmt;

/// Where a request is in its life, as seen by the layers that track it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// The inner service has the request and has not produced a response yet.
    Handling,
    /// The response head has been produced and its body is still being sent.
    Streaming,
    /// The connection was upgraded (for example to a WebSocket) and the upgraded session is live.
    Upgraded,
    /// The response body has ended, failed or been dropped.
    Finished,
    /// The request failed and its error response is held for a debugger (genro-debug's
    /// hold-on-error); the watchdog does not report a held request as stuck.
    Held,
}

impl Phase {
    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Handling,
            1 => Self::Streaming,
            2 => Self::Upgraded,
            4 => Self::Held,
            _ => Self::Finished,
        }
    }

    /// A short lowercase name, for logs and reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Handling => "handling",
            Self::Streaming => "streaming",
            Self::Upgraded => "upgraded",
            Self::Finished => "finished",
            Self::Held => "held",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
