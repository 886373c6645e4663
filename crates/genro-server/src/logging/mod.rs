//! Logging from `[logging]`: tracing-subscriber with a level (Python or Rust names, or a tracing
//! filter), a format (a Python-style template, JSON, compact, pretty or full), and a file
//! (appended to by a background writer) or stderr. The level and the format arrive parsed
//! ([`format`]); nothing here reads configuration text.

pub(crate) mod format;

use std::{fmt, fs::OpenOptions, io, path::Path};

use tracing_subscriber::{
    filter::EnvFilter, layer::SubscriberExt, reload, util::SubscriberInitExt, Layer,
};

use self::format::{LogFormat, LogLevel};

/// What keeps logging working while the server runs: the file writer's flush guard and the
/// handle that changes the level live.
pub(crate) struct Logging {
    _guard: Option<tracing_appender::non_blocking::WorkerGuard>,
    /// Changes the level while the server runs (hot reload); `None` when the application's own
    /// subscriber was kept.
    pub(crate) level: Option<reload::Handle<EnvFilter, tracing_subscriber::Registry>>,
}

impl fmt::Debug for Logging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logging").finish_non_exhaustive()
    }
}

/// Why logging could not be set up.
#[derive(Debug)]
pub(crate) enum LoggingError {
    File(String, io::Error),
}

impl fmt::Display for LoggingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path, e) => write!(f, "logging.file: cannot open {path:?} to append: {e}"),
        }
    }
}

impl std::error::Error for LoggingError {}

type Filtered = tracing_subscriber::layer::Layered<
    reload::Layer<EnvFilter, tracing_subscriber::Registry>,
    tracing_subscriber::Registry,
>;
type Boxed = Box<dyn Layer<Filtered> + Send + Sync>;

fn layer<W>(format: &LogFormat, writer: W, ansi: bool) -> Boxed
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => Box::new(base.json().with_current_span(true).with_span_list(false)),
        LogFormat::Compact => Box::new(base.compact()),
        LogFormat::Pretty => Box::new(base.pretty()),
        LogFormat::Full => Box::new(base),
        LogFormat::Template(template) => Box::new(base.event_format(template.clone())),
    }
}

/// Installs the global subscriber: `level`, lines in `format`, to `file` (appended to) or
/// stderr. When the process already has a subscriber (the application set up its own logging),
/// that one is kept and nothing is installed.
pub(crate) fn install(
    level: &LogLevel,
    format: &LogFormat,
    file: Option<&Path>,
) -> Result<Logging, LoggingError> {
    let (filter, handle) = reload::Layer::new(level.filter());
    let (fmt_layer, guard) = if let Some(path) = file {
        let file = open_append(path)?;
        let (writer, guard) = tracing_appender::non_blocking(file);
        (layer(format, writer, false), Some(guard))
    } else {
        let ansi = io::IsTerminal::is_terminal(&io::stderr());
        (layer(format, io::stderr, ansi), None)
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .try_init()
        .is_ok();
    if installed {
        // Panics go to the log, once each, in its format and with the request's ids, instead of
        // as raw lines on stderr that a log file never sees.
        genro_errors::install_panic_hook();
    }
    Ok(Logging {
        _guard: guard,
        level: installed.then_some(handle),
    })
}

fn open_append(path: &Path) -> Result<std::fs::File, LoggingError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LoggingError::File(path.display().to_string(), e))
}

impl Logging {
    /// What the debug console's `log-level` calls: parses a `[logging] level` value and sets
    /// it. `None` when the application's own subscriber is in use.
    pub(crate) fn level_setter(&self) -> Option<impl Fn(&str) -> Result<(), String> + Send + Sync> {
        let handle = self.level.clone()?;
        Some(move |text: &str| {
            let level: LogLevel = text.parse().map_err(|e| format!("{text:?} is not {e}"))?;
            handle.reload(level.filter()).map_err(|e| e.to_string())
        })
    }

    /// Sets the level filter (a `[logging] level` value).
    pub(crate) fn set_level(&self, level: &LogLevel) -> Result<(), String> {
        match &self.level {
            Some(handle) => handle.reload(level.filter()).map_err(|e| e.to_string()),
            None => Err("the application's own subscriber is in use".into()),
        }
    }
}
