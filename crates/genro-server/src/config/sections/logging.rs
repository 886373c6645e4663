//! `[logging]`: its struct, its defaults (`Default`), and `read`.

use std::path::PathBuf;

use crate::config::{
    resolver::Resolver,
    value::{self, BOOLEAN, PATH},
};
use crate::logging::format::{LogFormat, LogLevel};

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoggingSection {
    /// The level or filter (`level`).
    pub level: LogLevel,
    /// Line format (`format`).
    pub format: LogFormat,
    /// Append to this file instead of writing to stderr (`file`).
    pub file: Option<PathBuf>,
    /// A request without a valid W3C `traceparent` starts a trace of its own, so every request
    /// has a `trace_id` in its log lines and error bodies (`start_traces`). A valid
    /// `traceparent` is always continued.
    pub start_traces: bool,
}

impl Default for LoggingSection {
    /// Production: INFO, JSON lines, stderr.
    fn default() -> Self {
        Self {
            level: "INFO".parse().expect("a level"),
            format: LogFormat::Json,
            file: None,
            start_traces: true,
        }
    }
}

impl LoggingSection {
    /// Development (`[server] debug = true`): DEBUG, pretty lines, stderr.
    #[must_use]
    pub fn development() -> Self {
        Self {
            level: "DEBUG".parse().expect("a level"),
            format: LogFormat::Pretty,
            ..Self::default()
        }
    }

    pub(crate) fn read(r: &mut Resolver<'_>, debug: bool) -> Self {
        let d = if debug {
            Self::development()
        } else {
            Self::default()
        };
        let s = "logging";
        Self {
            level: r.get(s, "level", d.level, &value::parsed::<LogLevel>()),
            format: r.get(s, "format", d.format, &value::parsed::<LogFormat>()),
            file: r.get(s, "file", d.file, &PATH),
            start_traces: r.get(s, "start_traces", d.start_traces, &BOOLEAN),
        }
    }
}
