//! Logging from `[logging]`: tracing-subscriber with a level (Python or Rust names, or a tracing
//! filter), a format (a Python-style template, JSON, compact, pretty or full), and a file
//! (appended to by a background writer) or stderr.

use std::{fmt, fs::OpenOptions, io, path::Path};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    filter::EnvFilter,
    fmt::{
        format::Writer,
        time::{FormatTime, SystemTime},
        FmtContext, FormatEvent, FormatFields, FormattedFields,
    },
    layer::SubscriberExt,
    registry::LookupSpan,
    reload,
    util::SubscriberInitExt,
    Layer,
};

use crate::config::{LogFormat, LoggingSection};

/// A `level` value as a tracing filter directive.
pub(crate) fn parse_level(text: &str) -> Result<String, String> {
    let directive = match text.trim().to_ascii_uppercase().as_str() {
        "CRITICAL" | "FATAL" | "ERROR" => "error".to_owned(),
        "WARNING" | "WARN" => "warn".to_owned(),
        "INFO" => "info".to_owned(),
        "DEBUG" => "debug".to_owned(),
        "TRACE" | "NOTSET" => "trace".to_owned(),
        _ => text.trim().to_owned(),
    };
    EnvFilter::builder()
        .parse(&directive)
        .map(|_| directive)
        .map_err(|_| {
            "a level (DEBUG, INFO, WARNING, ERROR, CRITICAL) or a tracing filter such as \
             info,hyper=warn"
                .to_owned()
        })
}

/// The placeholders a template may use.
const PLACEHOLDERS: &[&str] = &[
    "asctime",
    "created",
    "name",
    "levelname",
    "levelno",
    "message",
    "module",
    "filename",
    "lineno",
    "process",
    "thread",
    "threadName",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(&'static str),
}

fn template_parts(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find("%(") {
        if at > 0 {
            parts.push(Part::Text(rest[..at].to_owned()));
        }
        let after = &rest[at + 2..];
        let Some(close) = after.find(')') else {
            return Err(format!(
                "a log format: `%(` at {:?} is not closed",
                &rest[at..]
            ));
        };
        let name = &after[..close];
        let Some(known) = PLACEHOLDERS.iter().find(|p| **p == name) else {
            return Err(format!(
                "a log format: unknown placeholder %({name}); use {}",
                PLACEHOLDERS.join(", ")
            ));
        };
        // The conversion letter (`s`, `d`, `f`) and any width are accepted and ignored.
        let tail = &after[close + 1..];
        let spec = tail
            .find(|c: char| c.is_ascii_alphabetic())
            .filter(|i| {
                tail[..*i]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
            })
            .ok_or_else(|| format!("a log format: %({name}) needs a conversion such as s or d"))?;
        parts.push(Part::Field(known));
        rest = &tail[spec + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.replace("%%", "%")));
    }
    Ok(parts)
}

/// A `format` value.
pub(crate) fn parse_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "json" => Ok(LogFormat::Json),
        "compact" => Ok(LogFormat::Compact),
        "pretty" => Ok(LogFormat::Pretty),
        "full" => Ok(LogFormat::Full),
        _ if text.contains("%(") => {
            template_parts(text).map(|_| LogFormat::Template(text.to_owned()))
        }
        _ => Err(
            "a log format: json, compact, pretty, full, or a template such as \
             %(asctime)s - %(levelname)s - %(message)s"
                .into(),
        ),
    }
}

/// Formats events with a Python-style template. `%(message)s` is the message, then the event's
/// fields, then the fields of the spans it happened in (so a request's ids appear on every line
/// written while handling it).
struct Template {
    parts: Vec<Part>,
}

fn python_level(level: Level) -> (&'static str, u8) {
    match level {
        Level::ERROR => ("ERROR", 40),
        Level::WARN => ("WARNING", 30),
        Level::INFO => ("INFO", 20),
        Level::DEBUG => ("DEBUG", 10),
        Level::TRACE => ("TRACE", 5),
    }
}

impl<S, N> FormatEvent<S, N> for Template
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        for part in &self.parts {
            match part {
                Part::Text(text) => writer.write_str(text)?,
                Part::Field("asctime") => SystemTime.format_time(&mut writer)?,
                Part::Field("created") => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    write!(writer, "{:.3}", now.as_secs_f64())?;
                }
                Part::Field("name") => writer.write_str(meta.target())?,
                Part::Field("levelname") => writer.write_str(python_level(*meta.level()).0)?,
                Part::Field("levelno") => write!(writer, "{}", python_level(*meta.level()).1)?,
                Part::Field("module") => writer.write_str(meta.module_path().unwrap_or("-"))?,
                Part::Field("filename") => writer.write_str(meta.file().unwrap_or("-"))?,
                Part::Field("lineno") => write!(writer, "{}", meta.line().unwrap_or(0))?,
                Part::Field("process") => write!(writer, "{}", std::process::id())?,
                Part::Field("thread") => write!(writer, "{:?}", std::thread::current().id())?,
                Part::Field("threadName") => {
                    writer.write_str(std::thread::current().name().unwrap_or("-"))?;
                }
                Part::Field(_) => {
                    ctx.format_fields(writer.by_ref(), event)?;
                    if let Some(scope) = ctx.event_scope() {
                        for span in scope.from_root() {
                            if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                                if !fields.is_empty() {
                                    write!(writer, " {fields}")?;
                                }
                            }
                        }
                    }
                }
            }
        }
        writeln!(writer)
    }
}

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
        LogFormat::Template(text) => Box::new(base.event_format(Template {
            parts: template_parts(text).unwrap_or_else(|_| vec![Part::Field("message")]),
        })),
    }
}

/// Installs the global subscriber `section` describes. When the process already has one (the
/// application set up its own logging), that one is kept and nothing is installed.
pub(crate) fn install(section: &LoggingSection) -> Result<Logging, LoggingError> {
    let directive = parse_level(&section.level).unwrap_or_else(|_| "info".into());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(directive));
    let (fmt_layer, guard) = if let Some(path) = &section.file {
        let file = open_append(path)?;
        let (writer, guard) = tracing_appender::non_blocking(file);
        (layer(&section.format, writer, false), Some(guard))
    } else {
        let ansi = io::IsTerminal::is_terminal(&io::stderr());
        (layer(&section.format, io::stderr, ansi), None)
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .try_init()
        .is_ok();
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
    /// Sets the level filter (a `[logging] level` value).
    pub(crate) fn set_level(&self, level: &str) -> Result<(), String> {
        let directive = parse_level(level)?;
        match &self.level {
            Some(handle) => handle
                .reload(EnvFilter::new(directive))
                .map_err(|e| e.to_string()),
            None => Err("the application's own subscriber is in use".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_template_parses_and_bad_ones_say_why() {
        let parts = template_parts("%(asctime)s - %(name)s - %(levelname)s - %(message)s").unwrap();
        assert_eq!(parts.len(), 7);
        assert!(template_parts("%(nope)s")
            .unwrap_err()
            .contains("unknown placeholder %(nope)"));
        assert!(template_parts("%(message").is_err());
        assert!(parse_format("plain words").is_err());
        assert_eq!(parse_format("JSON").unwrap(), LogFormat::Json);
    }

    #[test]
    fn python_and_rust_level_names() {
        assert_eq!(parse_level("WARNING").unwrap(), "warn");
        assert_eq!(parse_level("CRITICAL").unwrap(), "error");
        assert_eq!(parse_level("debug").unwrap(), "debug");
        assert_eq!(parse_level("info,hyper=warn").unwrap(), "info,hyper=warn");
        assert!(parse_level("hyper=loudest").is_err());
    }

    #[test]
    fn a_template_line_carries_span_fields() {
        let logs = genro_test_support::LogBuffer::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(logs.clone())
                .with_ansi(false)
                .event_format(Template {
                    parts: template_parts("%(levelname)s %(name)s: %(message)s").unwrap(),
                }),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "0190-abc");
            let _e = span.enter();
            tracing::warn!(target: "app", user = 7, "slow");
        });
        let out = logs.contents();
        assert!(out.starts_with("WARNING app: slow user=7"), "{out}");
        assert!(out.contains("request_id=\"0190-abc\""), "{out}");
    }
}
