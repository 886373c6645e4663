//! What `[logging] level` and `[logging] format` hold, parsed once when the configuration is
//! read: a [`LogLevel`] (tracing filter directives) and a [`LogFormat`] (a parsed Python-style
//! template, or one of tracing-subscriber's formats).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    filter::{Directive, EnvFilter},
    fmt::{
        format::Writer,
        time::{FormatTime, SystemTime},
        FmtContext, FormatEvent, FormatFields, FormattedFields,
    },
    registry::LookupSpan,
};

/// `[logging] level`: a level (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, or
/// `trace`/`debug`/`info`/`warn`/`error`), or a tracing filter such as `info,hyper=warn`. It
/// compares equal to the text as written.
#[derive(Clone, PartialEq, Eq)]
pub struct LogLevel {
    text: String,
    directives: Vec<Directive>,
}

impl LogLevel {
    /// The level as written in the configuration.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The tracing filter this level sets.
    pub(crate) fn filter(&self) -> EnvFilter {
        self.directives
            .iter()
            .cloned()
            .fold(EnvFilter::default(), EnvFilter::add_directive)
    }
}

/// The level names `[logging] level` accepts, Python's and tracing's, each with the tracing
/// level it sets.
const LEVELS: &[(&str, &str)] = &[
    ("CRITICAL", "error"),
    ("FATAL", "error"),
    ("ERROR", "error"),
    ("WARNING", "warn"),
    ("WARN", "warn"),
    ("INFO", "info"),
    ("DEBUG", "debug"),
    ("TRACE", "trace"),
    ("NOTSET", "trace"),
    ("OFF", "off"),
];

/// What `[logging] level` takes, for messages.
const EXPECTED: &str = "use DEBUG, INFO, WARNING, ERROR, CRITICAL, or a filter of `level` and \
                        `target=level` directives such as info,hyper=warn";

/// The tracing level a level name sets, or why it is not one (with the nearest name).
fn level(name: &str) -> Result<&'static str, String> {
    let upper = name.to_ascii_uppercase();
    if let Some((_, level)) = LEVELS.iter().find(|(n, _)| *n == upper) {
        return Ok(level);
    }
    Err(
        crate::suggest::closest(&upper, LEVELS.iter().map(|(n, _)| *n))
            .map(|near| format!(" (did you mean {near}?)"))
            .unwrap_or_default(),
    )
}

/// One directive of a filter: a bare level (`warn`), or `target=level` (`hyper=warn`,
/// `my_app[span]=debug`). A bare word that is not a level is refused rather than taken as a
/// target: tracing would read `WARNNG` as "everything from the target WARNNG", which turns the
/// rest of logging off without a word. The error names the word that is not a level.
fn directive(text: &str) -> Result<Directive, (String, String)> {
    let (name, written) = match text.rsplit_once('=') {
        None => (text, level(text).map(str::to_owned)),
        Some((target, name)) => {
            let name = name.trim();
            (
                name,
                level(name).map(|level| format!("{}={level}", target.trim())),
            )
        }
    };
    let written = written.map_err(|hint| (name.to_owned(), hint))?;
    written
        .parse::<Directive>()
        .map_err(|e| (text.to_owned(), format!(" ({e})")))
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let directives = text
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(directive)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|(bad, why)| {
                if bad == text.trim() {
                    format!("a log level{why}; {EXPECTED}")
                } else {
                    format!("a log level: `{bad}` in it is not one{why}; {EXPECTED}")
                }
            })?;
        if directives.is_empty() {
            return Err(format!("a log level; {EXPECTED}"));
        }
        Ok(Self {
            text: text.to_owned(),
            directives,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl PartialEq<str> for LogLevel {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for LogLevel {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

/// How log lines are written (`[logging] format`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// A Python-style template: `%(asctime)s - %(levelname)s - %(message)s`.
    Template(LogTemplate),
    /// One JSON object per line.
    Json,
    /// tracing-subscriber's compact lines.
    Compact,
    /// tracing-subscriber's multi-line pretty output.
    Pretty,
    /// tracing-subscriber's default lines.
    Full,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "compact" => Ok(Self::Compact),
            "pretty" => Ok(Self::Pretty),
            "full" => Ok(Self::Full),
            _ if text.contains("%(") => text.parse().map(Self::Template),
            _ => Err(
                "a log format: json, compact, pretty, full, or a template such as \
                 %(asctime)s - %(levelname)s - %(message)s"
                    .into(),
            ),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Template(template) => f.write_str(&template.text),
            Self::Json => f.write_str("json"),
            Self::Compact => f.write_str("compact"),
            Self::Pretty => f.write_str("pretty"),
            Self::Full => f.write_str("full"),
        }
    }
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

/// A Python-style log template, parsed: `%(asctime)s - %(levelname)s - %(message)s`.
/// `%(message)s` is the message, then the event's fields, then the fields of the spans it
/// happened in (so a request's ids appear on every line written while handling it).
#[derive(Clone, PartialEq, Eq)]
pub struct LogTemplate {
    text: String,
    parts: Vec<Part>,
}

impl LogTemplate {
    /// The template as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for LogTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl std::str::FromStr for LogTemplate {
    type Err = String;

    fn from_str(template: &str) -> Result<Self, String> {
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
                .ok_or_else(|| {
                    format!("a log format: %({name}) needs a conversion such as s or d")
                })?;
            parts.push(Part::Field(known));
            rest = &tail[spec + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.replace("%%", "%")));
        }
        Ok(Self {
            text: template.to_owned(),
            parts,
        })
    }
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

impl<S, N> FormatEvent<S, N> for LogTemplate
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

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn the_seed_template_parses_and_bad_ones_say_why() {
        let template: LogTemplate = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
            .parse()
            .unwrap();
        assert_eq!(template.parts.len(), 7);
        assert!("%(nope)s"
            .parse::<LogTemplate>()
            .unwrap_err()
            .contains("unknown placeholder %(nope)"));
        assert!("%(message".parse::<LogTemplate>().is_err());
        assert!("plain words".parse::<LogFormat>().is_err());
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
    }

    #[test]
    fn python_and_rust_level_names() {
        let directives = |text: &str| {
            text.parse::<LogLevel>()
                .unwrap()
                .directives
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(directives("WARNING"), ["warn"]);
        assert_eq!(directives("CRITICAL"), ["error"]);
        assert_eq!(directives("debug"), ["debug"]);
        assert_eq!(directives("info,hyper=warn"), ["info", "hyper=warn"]);
        assert_eq!(directives("info, hyper=WARNING"), ["info", "hyper=warn"]);
        assert_eq!(directives("my_app[req]=Debug"), ["my_app[req]=debug"]);
        assert!("hyper=loudest".parse::<LogLevel>().is_err());
        assert!("".parse::<LogLevel>().is_err());
    }

    #[test]
    fn a_misspelt_level_is_refused_with_the_nearest_name_never_taken_as_a_target() {
        // tracing alone reads a bare word as a target, which turns every other log line off.
        let why = "WARNNG".parse::<LogLevel>().unwrap_err();
        assert!(
            why.starts_with("a log level (did you mean WARNING?); use DEBUG"),
            "{why}"
        );
        let why = "info,hyper=wran".parse::<LogLevel>().unwrap_err();
        assert!(
            why.contains("`wran` in it is not one (did you mean WARN?)"),
            "{why}"
        );
        assert!("hyper".parse::<LogLevel>().is_err());
        assert!("info,,debug".parse::<LogLevel>().is_ok());
    }

    #[test]
    fn a_template_line_carries_span_fields() {
        let logs = genro_test_support::LogBuffer::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(logs.clone())
                .with_ansi(false)
                .event_format(
                    "%(levelname)s %(name)s: %(message)s"
                        .parse::<LogTemplate>()
                        .unwrap(),
                ),
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
