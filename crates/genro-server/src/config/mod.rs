//! The server's configuration: a `.ini` file, `GENRO_ASGI_<SECTION>_<KEY>` environment
//! overrides, and defaults, in that order of precedence from last to first.
//!
//! Every value remembers where it came from ([`Source`]); a bad value, an unknown key, a missing
//! or unreadable file is a [`ConfigError`] that names the key, the source and the value (never a
//! secret's), with every problem listed at once. Nothing falls back to a default silently.

mod ini;
mod value;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

pub use value::Cidr;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// No file or environment variable set it.
    Default,
    /// A line of a file.
    File {
        /// The file, as it was named.
        path: Arc<str>,
        /// The line, from 1.
        line: usize,
    },
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File { path, line } => write!(f, "{path}:{line}"),
            Self::Env(var) => f.write_str(var),
        }
    }
}

/// A secret value (`debug.secret`, `application.secret_key`, and free-form keys whose name says
/// secret, password or token). It never appears in Debug or Display output, logs or errors;
/// [`expose`](Self::expose) gives the value where it is needed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Keep it out of logs.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes (safe to log).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// One thing wrong with a configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Problem {
    key: String,
    source: Source,
    message: String,
}

impl Problem {
    /// The key, as `section.key` (or the file, for problems of the file itself).
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where the bad value came from.
    #[must_use]
    pub fn source(&self) -> &Source {
        &self.source
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Default => write!(f, "{}: {}", self.key, self.message),
            _ => write!(f, "{}: {} (from {})", self.key, self.message, self.source),
        }
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A configuration that cannot be used, with every problem found.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// Every problem, in the order of the file and then of the environment.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    fn file(path: &str, message: String) -> Self {
        Self {
            problems: vec![Problem {
                key: format!("config file {path}"),
                source: Source::Default,
                message,
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems in the configuration:", many.len())?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// Written as the message, so that `main` returning this error prints something a person reads.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConfigError {}

/// `[server]`: where and how to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerSection {
    /// Address to bind (`host`), default `127.0.0.1`.
    pub host: String,
    /// Port (`port`), default 8000; 0 picks a free port.
    pub port: u16,
    /// Tokio worker threads (`workers`); 0, the default, means one per CPU.
    pub workers: usize,
    /// Development defaults (`debug`): tracebacks in error bodies, DEBUG logs, readable logs.
    pub debug: bool,
}

/// `[ssl]`: TLS for the main port.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SslSection {
    /// Serve TLS (`enabled`).
    pub enabled: bool,
    /// PEM certificate chain (`certfile`).
    pub certfile: Option<PathBuf>,
    /// PEM private key (`keyfile`).
    pub keyfile: Option<PathBuf>,
    /// Longest a client may take to finish the TLS handshake (`handshake_timeout`), default 10 s.
    pub handshake_timeout: Duration,
}

/// How log lines are written (`[logging] format`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// A Python-style template: `%(asctime)s - %(levelname)s - %(message)s`.
    Template(String),
    /// One JSON object per line.
    Json,
    /// tracing-subscriber's compact lines.
    Compact,
    /// tracing-subscriber's multi-line pretty output.
    Pretty,
    /// tracing-subscriber's default lines.
    Full,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoggingSection {
    /// A level (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, or `trace`/`debug`/`info`/
    /// `warn`/`error`), or a tracing filter such as `info,hyper=warn` (`level`).
    pub level: String,
    /// Line format (`format`).
    pub format: LogFormat,
    /// Append to this file instead of writing to stderr (`file`).
    pub file: Option<PathBuf>,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSection {
    /// Serve the metrics (`enabled`).
    pub enabled: bool,
    /// Path of the metrics endpoint (`endpoint`), default `/metrics`.
    pub endpoint: String,
    /// Serve the endpoint on this port of its own instead of the main one (`export_port`).
    pub export_port: Option<u16>,
    /// Export process metrics: CPU, memory, file descriptors (`process`).
    pub process: bool,
    /// Most distinct route labels claimed at run time (`max_routes`).
    pub max_routes: usize,
}

/// `[watchdog]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchdogSection {
    /// Run the watchdog (`enabled`).
    pub enabled: bool,
    /// Time between scans (`interval`).
    pub interval: Duration,
    /// Age of a request reported at warning level (`timeout`).
    pub timeout: Duration,
    /// Age of a request reported as critical and notified (`critical`).
    pub critical: Duration,
}

/// `[errors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorsSection {
    /// Error bodies include detail and traceback (`show_traceback`).
    pub show_traceback: bool,
    /// Send critical errors and critically stuck requests to the webhook (`notify_critical`).
    pub notify_critical: bool,
    /// The webhook (`notify_webhook`).
    pub notify_webhook: Option<String>,
}

/// `[debug]`: the remote debug console.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DebugSection {
    /// Run the console (`enabled`).
    pub enabled: bool,
    /// Hold failing requests for a debugger (`remote_pdb`).
    pub remote_pdb: bool,
    /// Its port (`debug_port`).
    pub debug_port: u16,
    /// Its address (`host`), default `127.0.0.1`.
    pub host: String,
    /// Who may connect (`allowed_ips`).
    pub allowed_ips: Vec<Cidr>,
    /// The shared secret (`secret`), at least 16 bytes.
    pub secret: Secret,
    /// Longest a failing request waits for a debugger (`hold_timeout`).
    pub hold_timeout: Duration,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitsSection {
    /// Longest a client may take to send a request head, and the longest an idle HTTP/1
    /// keep-alive connection waits for the next one (`header_read_timeout`).
    pub header_read_timeout: Duration,
    /// Most request headers (`max_headers`).
    pub max_headers: usize,
    /// Largest request head in bytes (`max_header_size`).
    pub max_header_size: u64,
    /// Largest request body in bytes (`body_limit`); larger gets 413.
    pub body_limit: u64,
    /// Most requests handled at once (`concurrency_limit`, 0 for no limit); more get 503.
    pub concurrency_limit: usize,
    /// Most open connections (`max_connections`); more wait to be accepted.
    pub max_connections: usize,
    /// Longest a request may take (`request_timeout`, 0 for no limit); longer gets 504.
    pub request_timeout: Option<Duration>,
    /// Keep HTTP/1 connections open between requests (`keepalive`).
    pub keepalive: bool,
    /// HTTP/2 connections are pinged this often, and closed when a ping is not answered within
    /// it (`keepalive_timeout`).
    pub keepalive_timeout: Duration,
}

/// `[executors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutorsSection {
    /// Blocking closures run at once (`threads`); 0, the default, means one per CPU.
    pub threads: usize,
    /// Blocking closures that may wait for a thread (`queue`); more are refused.
    pub queue: usize,
    /// Worker processes (`processes`); 0, the default, turns the process pool off.
    pub processes: usize,
    /// Process jobs that may wait for a worker (`process_queue`).
    pub process_queue: usize,
    /// Longest a process job may run before its worker is killed (`job_timeout`, 0 for none).
    pub job_timeout: Option<Duration>,
}

/// `[shutdown]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSection {
    /// Longest the drain waits for in-flight requests before aborting them (`drain_timeout`).
    pub drain_timeout: Duration,
}

/// `[cors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsSection {
    /// Answer CORS (`enabled`).
    pub enabled: bool,
    /// Allowed origins (`allow_origins`), or `*`.
    pub allow_origins: Vec<String>,
    /// Allowed methods (`allow_methods`).
    pub allow_methods: Vec<String>,
    /// Allowed request headers (`allow_headers`).
    pub allow_headers: Vec<String>,
    /// Allow credentials (`allow_credentials`).
    pub allow_credentials: bool,
    /// How long a preflight answer may be cached (`max_age`).
    pub max_age: Duration,
}

/// `[compression]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompressionSection {
    /// Compress responses (`enabled`).
    pub enabled: bool,
    /// Smallest response worth compressing, in bytes, at most 65535 (`min_size`).
    pub min_size: u64,
    /// Encodings offered (`algorithms`): gzip, br, deflate.
    pub algorithms: Vec<String>,
}

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthSection {
    /// Serve the health endpoints (`enabled`).
    pub enabled: bool,
    /// Liveness path (`live`).
    pub live: String,
    /// Readiness path (`ready`); it answers 503 while starting and draining.
    pub ready: String,
}

/// A free-form section: `[application]`, or one of your own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    name: String,
    values: BTreeMap<String, (Value, Source)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Plain(String),
    Secret(Secret),
}

/// Whether a free-form key holds a secret, by its name.
fn is_secret_key(key: &str) -> bool {
    ["secret", "password", "token", "private_key"]
        .iter()
        .any(|word| key.contains(word))
}

impl Section {
    /// The section's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A plain value. Secrets (keys named like `secret`, `password`, `token`) are not returned
    /// here: use [`secret`](Self::secret).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some((Value::Plain(v), _)) => Some(v),
            _ => None,
        }
    }

    /// A secret value.
    #[must_use]
    pub fn secret(&self, key: &str) -> Option<&Secret> {
        match self.values.get(key) {
            Some((Value::Secret(s), _)) => Some(s),
            _ => None,
        }
    }

    /// Where a key's value came from.
    #[must_use]
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.values.get(key).map(|(_, s)| s)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// `name`, for `[application]`.
    #[must_use]
    pub fn app_name(&self) -> Option<&str> {
        self.get("name")
    }

    /// `secret_key`, for `[application]`.
    #[must_use]
    pub fn secret_key(&self) -> Option<&Secret> {
        self.secret("secret_key")
    }
}

/// One effective value, for [`Config::effective`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The section.
    pub section: String,
    /// The key.
    pub key: String,
    /// The value as written, or `********` for a secret.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// The sections genro reads; any other section is free-form.
pub(crate) const SECTIONS: &[&str] = &[
    "server",
    "ssl",
    "logging",
    "metrics",
    "watchdog",
    "errors",
    "debug",
    "application",
    "limits",
    "shutdown",
    "executors",
    "cors",
    "compression",
    "health",
];

/// The prefix of the environment overrides.
pub const ENV_PREFIX: &str = "GENRO_ASGI_";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// `[server]`.
    pub server: ServerSection,
    /// `[ssl]`.
    pub ssl: SslSection,
    /// `[logging]`.
    pub logging: LoggingSection,
    /// `[metrics]`.
    pub metrics: MetricsSection,
    /// `[watchdog]`.
    pub watchdog: WatchdogSection,
    /// `[errors]`.
    pub errors: ErrorsSection,
    /// `[debug]`.
    pub debug: DebugSection,
    /// `[limits]`.
    pub limits: LimitsSection,
    /// `[shutdown]`.
    pub shutdown: ShutdownSection,
    /// `[executors]`.
    pub executors: ExecutorsSection,
    /// `[cors]`.
    pub cors: CorsSection,
    /// `[compression]`.
    pub compression: CompressionSection,
    /// `[health]`.
    pub health: HealthSection,
    /// `[application]`, free-form.
    pub application: Section,
    custom: BTreeMap<String, Section>,
    effective: Vec<Effective>,
    path: Option<PathBuf>,
}

impl Default for Config {
    /// The defaults, as if read from an empty file with no environment overrides.
    fn default() -> Self {
        Self::from_ini_str("", "(defaults)", std::iter::empty::<(String, String)>())
            .expect("the defaults are valid")
    }
}

impl Config {
    /// Reads `path`, with the process environment's `GENRO_ASGI_*` overrides.
    ///
    /// # Errors
    ///
    /// The file is missing or unreadable, or holds (or the environment gives) a bad value or an
    /// unknown key.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::from_path_with_env(path, std::env::vars())
    }

    /// Reads `path` with these environment variables instead of the process's.
    ///
    /// # Errors
    ///
    /// As [`from_path`](Self::from_path).
    pub fn from_path_with_env(
        path: impl AsRef<Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(&shown, format!("cannot read it: {e}")))?;
        let mut config = Self::from_ini_str(&text, &shown, env)?;
        config.path = Some(path.to_owned());
        Ok(config)
    }

    /// Reads `.ini` text, named `name` in messages, with these environment variables (only
    /// those starting with `GENRO_ASGI_` are read).
    ///
    /// # Errors
    ///
    /// A bad value or an unknown key, in the text or the environment.
    pub fn from_ini_str(
        text: &str,
        name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let ini = ini::parse(text).map_err(|errors| ConfigError {
            problems: errors
                .into_iter()
                .map(|e| Problem {
                    key: format!("{name}:{}", e.line),
                    source: Source::Default,
                    message: e.message,
                })
                .collect(),
        })?;
        let mut resolver = Resolver::new(&ini, name, env);
        let config = resolver.resolve();
        resolver.finish()?;
        Ok(config)
    }

    /// The file the configuration was read from, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A section of your own (any name genro does not use), free-form.
    #[must_use]
    pub fn section(&self, name: &str) -> Option<&Section> {
        if name == "application" {
            return Some(&self.application);
        }
        self.custom.get(name)
    }

    /// Every value genro read, with its source, secrets masked: what `--print-config` prints.
    #[must_use]
    pub fn effective(&self) -> &[Effective] {
        &self.effective
    }

    /// The effective configuration as `.ini` text, each value followed by its source, secrets
    /// masked.
    #[must_use]
    pub fn render_effective(&self) -> String {
        let mut out = String::new();
        let mut current = "";
        let width = self
            .effective
            .iter()
            .map(|e| e.key.len() + e.value.len() + 3)
            .max()
            .unwrap_or(0)
            .min(60);
        for entry in &self.effective {
            if entry.section != current {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&format!("[{}]\n", entry.section));
                current = &entry.section;
            }
            let line = format!("{} = {}", entry.key, entry.value);
            out.push_str(&format!("{line:<width$}  # {}\n", entry.source));
        }
        out
    }
}

/// Reads every known key from the environment, the file, or the default, and collects every
/// problem on the way.
struct Resolver<'a> {
    ini: &'a ini::Ini,
    file: Arc<str>,
    /// (section, key) → (variable, value).
    env: BTreeMap<(String, String), (String, String)>,
    problems: Vec<Problem>,
    effective: Vec<Effective>,
    asked: BTreeSet<(String, String)>,
}

impl<'a> Resolver<'a> {
    fn new(ini: &'a ini::Ini, name: &str, env: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut problems = Vec::new();
        let mut vars = BTreeMap::new();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            // The longest known or present section name that prefixes the rest.
            let section = SECTIONS
                .iter()
                .copied()
                .chain(ini.sections.iter().map(|s| s.name.as_str()))
                .filter(|s| {
                    lower.len() > s.len() + 1
                        && lower.starts_with(&s.to_ascii_lowercase())
                        && lower.as_bytes()[s.len()] == b'_'
                })
                .max_by_key(|s| s.len());
            match section {
                Some(section) => {
                    let key = lower[section.len() + 1..].to_owned();
                    vars.insert((section.to_owned(), key), (var.clone(), value));
                }
                None => {
                    // A section of the user's own that the file does not have.
                    match lower.split_once('_') {
                        Some((section, key)) if !key.is_empty() => {
                            vars.insert((section.to_owned(), key.to_owned()), (var.clone(), value));
                        }
                        _ => problems.push(Problem {
                            key: var.clone(),
                            source: Source::Env(var.clone()),
                            message: format!("not of the form {ENV_PREFIX}<SECTION>_<KEY>"),
                        }),
                    }
                }
            }
        }
        Self {
            ini,
            file: Arc::from(name),
            env: vars,
            problems,
            effective: Vec::new(),
            asked: BTreeSet::new(),
        }
    }

    /// The raw value of a key and its source, or `None` for the default.
    fn raw(&mut self, section: &str, key: &str) -> Option<(String, Source)> {
        self.asked.insert((section.to_owned(), key.to_owned()));
        if let Some((var, value)) = self.env.get(&(section.to_owned(), key.to_owned())) {
            return Some((value.clone(), Source::Env(var.clone())));
        }
        self.ini.get(section, key).map(|e| {
            (
                e.value.clone(),
                Source::File {
                    path: self.file.clone(),
                    line: e.line,
                },
            )
        })
    }

    fn record(&mut self, section: &str, key: &str, value: String, source: Source) {
        self.effective.push(Effective {
            section: section.to_owned(),
            key: key.to_owned(),
            value,
            source,
        });
    }

    fn problem(&mut self, section: &str, key: &str, source: Source, message: String) {
        self.problems.push(Problem {
            key: format!("{section}.{key}"),
            source,
            message,
        });
    }

    /// A typed value: the environment's, else the file's, else `default`; a value that does
    /// not parse is a problem (and `default` stands in so that the other keys are still read).
    fn get<T>(
        &mut self,
        section: &str,
        key: &str,
        default: T,
        show_default: &str,
        parse: impl Fn(&str) -> Result<T, value::Expected>,
    ) -> (T, Source) {
        match self.raw(section, key) {
            None => {
                self.record(section, key, show_default.to_owned(), Source::Default);
                (default, Source::Default)
            }
            Some((text, source)) => {
                self.record(section, key, text.clone(), source.clone());
                match parse(&text) {
                    Ok(value) => (value, source),
                    Err(expected) => {
                        self.problem(
                            section,
                            key,
                            source.clone(),
                            format!("{text:?} is not {expected}"),
                        );
                        (default, source)
                    }
                }
            }
        }
    }

    fn secret(&mut self, section: &str, key: &str) -> (Secret, Source) {
        match self.raw(section, key) {
            None => {
                self.record(section, key, String::new(), Source::Default);
                (Secret::default(), Source::Default)
            }
            Some((text, source)) => {
                self.record(section, key, "********".into(), source.clone());
                (Secret(text), source)
            }
        }
    }

    fn boolean(&mut self, s: &str, k: &str, default: bool) -> bool {
        self.get(
            s,
            k,
            default,
            if default { "true" } else { "false" },
            value::boolean,
        )
        .0
    }

    fn duration(&mut self, s: &str, k: &str, default: Duration) -> Duration {
        let shown = humanize(default);
        self.get(s, k, default, &shown, value::duration).0
    }

    fn string(&mut self, s: &str, k: &str, default: &str) -> String {
        self.get(s, k, default.to_owned(), default, |t| Ok(t.to_owned()))
            .0
    }

    fn resolve(&mut self) -> Config {
        let debug = self.boolean("server", "debug", false);
        let (host, _) = self.get("server", "host", "127.0.0.1".to_owned(), "127.0.0.1", |t| {
            if t.parse::<IpAddr>().is_ok()
                || (!t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
            {
                Ok(t.to_owned())
            } else {
                Err("an IP address or host name".into())
            }
        });
        let server = ServerSection {
            host,
            port: self.get("server", "port", 8000, "8000", value::port).0,
            workers: self.get("server", "workers", 0, "0", value::count).0,
            debug,
        };

        let ssl_enabled = self.boolean("ssl", "enabled", false);
        let (certfile, cert_source) = self.get("ssl", "certfile", None, "", |t| Ok(path(t)));
        let (keyfile, key_source) = self.get("ssl", "keyfile", None, "", |t| Ok(path(t)));
        if ssl_enabled {
            for (name, file, source) in [
                ("certfile", &certfile, cert_source),
                ("keyfile", &keyfile, key_source),
            ] {
                match file {
                    None => self.problem(
                        "ssl",
                        name,
                        source,
                        "is required when ssl.enabled is true".into(),
                    ),
                    Some(p) => {
                        if let Err(e) = std::fs::File::open(p) {
                            self.problem(
                                "ssl",
                                name,
                                source,
                                format!("cannot read {:?}: {e}", p.display().to_string()),
                            );
                        }
                    }
                }
            }
        }
        let ssl = SslSection {
            enabled: ssl_enabled,
            certfile,
            keyfile,
            handshake_timeout: self.duration("ssl", "handshake_timeout", Duration::from_secs(10)),
        };

        let default_level = if debug { "DEBUG" } else { "INFO" };
        let (level, _) = self.get(
            "logging",
            "level",
            default_level.to_owned(),
            default_level,
            |t| crate::logging::parse_level(t).map(|_| t.to_owned()),
        );
        let default_format = if debug { "pretty" } else { "json" };
        let (format, _) = self.get(
            "logging",
            "format",
            if debug {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            },
            default_format,
            crate::logging::parse_format,
        );
        let logging = LoggingSection {
            level,
            format,
            file: self.get("logging", "file", None, "", |t| Ok(path(t))).0,
        };

        let metrics = MetricsSection {
            enabled: self.boolean("metrics", "enabled", true),
            endpoint: self
                .get(
                    "metrics",
                    "endpoint",
                    "/metrics".to_owned(),
                    "/metrics",
                    value::endpoint,
                )
                .0,
            export_port: self
                .get("metrics", "export_port", None, "", |t| {
                    if t.is_empty() {
                        Ok(None)
                    } else {
                        value::port(t).map(Some)
                    }
                })
                .0,
            process: self.boolean("metrics", "process", true),
            max_routes: self
                .get(
                    "metrics",
                    "max_routes",
                    genro_metrics::DEFAULT_MAX_ROUTES,
                    "500",
                    value::count,
                )
                .0,
        };

        let watchdog_enabled = self.boolean("watchdog", "enabled", true);
        let (interval, interval_source) = self.get(
            "watchdog",
            "interval",
            Duration::from_secs(30),
            "30s",
            value::duration,
        );
        let timeout = self.duration("watchdog", "timeout", Duration::from_secs(60));
        let (critical, critical_source) = self.get(
            "watchdog",
            "critical",
            Duration::from_secs(300),
            "5m",
            value::duration,
        );
        if watchdog_enabled {
            if interval.is_zero() {
                self.problem(
                    "watchdog",
                    "interval",
                    interval_source,
                    "must be more than zero".into(),
                );
            }
            if critical <= timeout {
                self.problem(
                    "watchdog",
                    "critical",
                    critical_source,
                    format!(
                        "{} must be above watchdog.timeout ({})",
                        humanize(critical),
                        humanize(timeout)
                    ),
                );
            }
        }
        let watchdog = WatchdogSection {
            enabled: watchdog_enabled,
            interval,
            timeout,
            critical,
        };

        let show_traceback = self.boolean("errors", "show_traceback", debug);
        let notify_critical = self.boolean("errors", "notify_critical", false);
        // Judged only where it is used: a placeholder URL is fine while notifications are off.
        let (webhook, webhook_source) = self.get("errors", "notify_webhook", None, "", |t| {
            Ok((!t.is_empty()).then(|| t.to_owned()))
        });
        if notify_critical {
            match &webhook {
                None => self.problem(
                    "errors",
                    "notify_webhook",
                    webhook_source,
                    "is required when errors.notify_critical is true".into(),
                ),
                Some(url) => {
                    if let Err(why) = value::webhook_url(url) {
                        self.problem(
                            "errors",
                            "notify_webhook",
                            webhook_source,
                            format!("{url:?} is not {why}"),
                        );
                    }
                }
            }
        }
        let errors = ErrorsSection {
            show_traceback,
            notify_critical,
            notify_webhook: webhook,
        };

        let debug_enabled = self.boolean("debug", "enabled", false);
        let (secret, secret_source) = self.secret("debug", "secret");
        if debug_enabled && secret.len() < 16 {
            self.problem(
                "debug",
                "secret",
                secret_source,
                format!("must be at least 16 bytes (it has {})", secret.len()),
            );
        }
        let debug_section = DebugSection {
            enabled: debug_enabled,
            remote_pdb: self.boolean("debug", "remote_pdb", false),
            debug_port: self.get("debug", "debug_port", 8001, "8001", value::port).0,
            host: self.string("debug", "host", "127.0.0.1"),
            allowed_ips: self
                .get(
                    "debug",
                    "allowed_ips",
                    vec![
                        "127.0.0.1".parse().expect("valid"),
                        "::1".parse().expect("valid"),
                    ],
                    "127.0.0.1, ::1",
                    value::cidrs,
                )
                .0,
            secret,
            hold_timeout: self.duration("debug", "hold_timeout", Duration::from_secs(30)),
        };

        let limits = LimitsSection {
            header_read_timeout: {
                let (d, source) = self.get(
                    "limits",
                    "header_read_timeout",
                    Duration::from_secs(10),
                    "10s",
                    value::duration,
                );
                if d.is_zero() {
                    self.problem(
                        "limits",
                        "header_read_timeout",
                        source,
                        "must be more than zero: a header read timeout is always on".into(),
                    );
                }
                d
            },
            max_headers: self
                .get("limits", "max_headers", 100, "100", value::count)
                .0,
            max_header_size: {
                let (n, source) = self.get("limits", "max_header_size", 8192, "8KiB", value::size);
                if n < 8192 {
                    self.problem(
                        "limits",
                        "max_header_size",
                        source,
                        format!("{n} is below the smallest head size HTTP/1 allows (8KiB)"),
                    );
                }
                n
            },
            body_limit: self
                .get("limits", "body_limit", 10 << 20, "10MiB", value::size)
                .0,
            concurrency_limit: self
                .get("limits", "concurrency_limit", 0, "0", value::count)
                .0,
            max_connections: {
                let (n, source) =
                    self.get("limits", "max_connections", 10_000, "10000", value::count);
                if n == 0 {
                    self.problem(
                        "limits",
                        "max_connections",
                        source,
                        "must be at least 1".into(),
                    );
                }
                n
            },
            request_timeout: {
                let d = self.duration("limits", "request_timeout", Duration::ZERO);
                (!d.is_zero()).then_some(d)
            },
            keepalive: self.boolean("limits", "keepalive", true),
            keepalive_timeout: self.duration(
                "limits",
                "keepalive_timeout",
                Duration::from_secs(75),
            ),
        };

        let shutdown = ShutdownSection {
            drain_timeout: self.duration("shutdown", "drain_timeout", Duration::from_secs(30)),
        };
        let executors = ExecutorsSection {
            threads: self.get("executors", "threads", 0, "0", value::count).0,
            queue: self.get("executors", "queue", 64, "64", value::count).0,
            processes: self.get("executors", "processes", 0, "0", value::count).0,
            process_queue: self
                .get("executors", "process_queue", 64, "64", value::count)
                .0,
            job_timeout: {
                let d = self.duration("executors", "job_timeout", Duration::ZERO);
                (!d.is_zero()).then_some(d)
            },
        };

        let cors_enabled = self.boolean("cors", "enabled", false);
        let (allow_origins, origins_source) =
            self.get("cors", "allow_origins", Vec::<String>::new(), "", |t| {
                let items: Vec<String> = value::list(t).into_iter().map(str::to_owned).collect();
                match items.iter().find(|o| {
                    o.as_str() != "*"
                        && (http::HeaderValue::from_str(o).is_err() || !o.contains("://"))
                }) {
                    Some(bad) => Err(format!(
                        "a list of origins such as https://app.example.com, or * (not {bad:?})"
                    )),
                    None => Ok(items),
                }
            });
        let allow_methods = self
            .get(
                "cors",
                "allow_methods",
                ["GET", "HEAD", "POST"].map(str::to_owned).to_vec(),
                "GET, HEAD, POST",
                |t| {
                    let items: Vec<String> = value::list(t)
                        .into_iter()
                        .map(str::to_ascii_uppercase)
                        .collect();
                    match items.iter().find(|m| {
                        m.as_str() != "*" && http::Method::from_bytes(m.as_bytes()).is_err()
                    }) {
                        Some(bad) => Err(format!("a list of HTTP methods (not {bad:?})")),
                        None => Ok(items),
                    }
                },
            )
            .0;
        let allow_headers = self
            .get("cors", "allow_headers", Vec::new(), "", |t| {
                let items: Vec<String> = value::list(t)
                    .into_iter()
                    .map(str::to_ascii_lowercase)
                    .collect();
                match items.iter().find(|h| {
                    h.as_str() != "*" && http::HeaderName::from_bytes(h.as_bytes()).is_err()
                }) {
                    Some(bad) => Err(format!("a list of header names (not {bad:?})")),
                    None => Ok(items),
                }
            })
            .0;
        let (allow_credentials, credentials_source) =
            self.get("cors", "allow_credentials", false, "false", value::boolean);
        if cors_enabled {
            if allow_origins.is_empty() {
                self.problem(
                    "cors",
                    "allow_origins",
                    origins_source,
                    "is required when cors.enabled is true (a list of origins, or *)".into(),
                );
            } else if allow_credentials
                && (allow_origins.iter().any(|o| o == "*")
                    || allow_headers.iter().any(|h| h == "*")
                    || allow_methods.iter().any(|m| m == "*"))
            {
                self.problem(
                    "cors",
                    "allow_credentials",
                    credentials_source,
                    "cannot be true together with a * in allow_origins, allow_methods or allow_headers (browsers refuse it): list them".into(),
                );
            }
        }
        let cors = CorsSection {
            enabled: cors_enabled,
            allow_origins,
            allow_methods,
            allow_headers,
            allow_credentials,
            max_age: self.duration("cors", "max_age", Duration::from_secs(600)),
        };
        let compression = CompressionSection {
            enabled: self.boolean("compression", "enabled", false),
            min_size: self
                .get("compression", "min_size", 1024, "1KiB", |t| {
                    value::size(t).and_then(|n| {
                        if n <= u64::from(u16::MAX) {
                            Ok(n)
                        } else {
                            Err("a size of at most 65535 bytes".into())
                        }
                    })
                })
                .0,
            algorithms: self
                .get(
                    "compression",
                    "algorithms",
                    ["gzip", "br"].map(str::to_owned).to_vec(),
                    "gzip, br",
                    |t| {
                        let items: Vec<String> = value::list(t)
                            .into_iter()
                            .map(str::to_ascii_lowercase)
                            .collect();
                        match items
                            .iter()
                            .find(|a| !["gzip", "br", "deflate"].contains(&a.as_str()))
                        {
                            Some(bad) => Err(format!("a list of gzip, br, deflate (not {bad:?})")),
                            None => Ok(items),
                        }
                    },
                )
                .0,
        };
        let health = HealthSection {
            enabled: self.boolean("health", "enabled", true),
            live: self
                .get(
                    "health",
                    "live",
                    "/health/live".to_owned(),
                    "/health/live",
                    value::endpoint,
                )
                .0,
            ready: self
                .get(
                    "health",
                    "ready",
                    "/health/ready".to_owned(),
                    "/health/ready",
                    value::endpoint,
                )
                .0,
        };

        let application = self.free_form("application");
        let custom: Vec<String> = self
            .ini
            .sections
            .iter()
            .map(|s| s.name.clone())
            .chain(self.env.keys().map(|(s, _)| s.clone()))
            .filter(|s| !SECTIONS.contains(&s.as_str()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let custom = custom
            .into_iter()
            .map(|name| {
                let section = self.free_form(&name);
                (name, section)
            })
            .collect();

        Config {
            server,
            ssl,
            logging,
            metrics,
            watchdog,
            errors,
            debug: debug_section,
            limits,
            shutdown,
            executors,
            cors,
            compression,
            health,
            application,
            custom,
            effective: std::mem::take(&mut self.effective),
            path: None,
        }
    }

    fn free_form(&mut self, name: &str) -> Section {
        let mut keys: BTreeSet<String> = self
            .ini
            .section(name)
            .map(|s| s.entries.iter().map(|e| e.key.clone()).collect())
            .unwrap_or_default();
        keys.extend(
            self.env
                .keys()
                .filter(|(s, _)| s == name)
                .map(|(_, k)| k.clone()),
        );
        let mut section = Section {
            name: name.to_owned(),
            values: BTreeMap::new(),
        };
        for key in keys {
            let Some((text, source)) = self.raw(name, &key) else {
                continue;
            };
            let value = if is_secret_key(&key) {
                self.record(name, &key, "********".into(), source.clone());
                Value::Secret(Secret(text))
            } else {
                self.record(name, &key, text.clone(), source.clone());
                Value::Plain(text)
            };
            section.values.insert(key, (value, source));
        }
        section
    }

    /// Unknown keys and look-alike sections become problems; then the verdict.
    fn finish(mut self) -> Result<(), ConfigError> {
        for section in &self.ini.sections {
            if !SECTIONS.contains(&section.name.as_str()) {
                if let Some(near) = closest(&section.name, SECTIONS.iter().copied()) {
                    self.problems.push(Problem {
                        key: format!("[{}]", section.name),
                        source: Source::File {
                            path: self.file.clone(),
                            line: section.line,
                        },
                        message: format!(
                            "unknown section (did you mean [{near}]? a section of your own must not look like one of genro's)"
                        ),
                    });
                }
                continue;
            }
            for entry in &section.entries {
                if !self
                    .asked
                    .contains(&(section.name.clone(), entry.key.clone()))
                {
                    let known = self.known_keys(&section.name);
                    self.problems.push(Problem {
                        key: format!("{}.{}", section.name, entry.key),
                        source: Source::File {
                            path: self.file.clone(),
                            line: entry.line,
                        },
                        message: unknown_key_message(&entry.key, &known),
                    });
                }
            }
        }
        for ((section, key), (var, _)) in &self.env {
            if SECTIONS.contains(&section.as_str())
                && !self.asked.contains(&(section.clone(), key.clone()))
            {
                let known = self.known_keys(section);
                self.problems.push(Problem {
                    key: format!("{section}.{key}"),
                    source: Source::Env(var.clone()),
                    message: unknown_key_message(key, &known),
                });
            }
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }

    fn known_keys(&self, section: &str) -> Vec<String> {
        self.asked
            .iter()
            .filter(|(s, _)| s == section)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

fn unknown_key_message(key: &str, known: &[String]) -> String {
    match closest(key, known.iter().map(String::as_str)) {
        Some(near) => format!("unknown key (did you mean `{near}`?)"),
        None => format!("unknown key (known keys: {})", known.join(", ")),
    }
}

/// The nearest of `candidates` to `word`, if near enough to be a likely typo.
fn closest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn path(text: &str) -> Option<PathBuf> {
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// A duration as a person writes it in the file.
pub(crate) fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}
