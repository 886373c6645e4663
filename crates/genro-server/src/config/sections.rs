//! genro's sections. Each one is a struct whose `Default` is the one place its defaults are
//! written, and a `read` beside it that takes each key from the resolver (environment, file,
//! or that default), parsed into its type, and checks what the keys must agree on.

use std::{num::NonZeroU32, path::PathBuf, time::Duration};

use genro_debug::AllowList;
use http::{HeaderName, Method};

use super::{
    resolver::Resolver,
    source::SecretValue,
    value::{
        self, humanize, Allow, Encoding, ALLOW_LIST, BACKLOG, BOOLEAN, CLIENT_LEVEL, COUNT,
        DURATION, ENCODINGS, ENDPOINT, HEADERS, HEADER_NAMES, HOST, LINE_RATE, METHODS, NAMES,
        OPTIONAL_DURATION, OPTIONAL_PORT, OPTIONAL_TEXT, ORIGINS, PATH, PORT, SIZE, SMALL_SIZE,
    },
};
use crate::logging::format::{LogFormat, LogLevel};

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
    /// Bind with `SO_REUSEPORT` (`reuse_port`), so that another instance can bind the same port
    /// and the two overlap during a restart; the kernel spreads new connections between them.
    pub reuse_port: bool,
    /// The listen queue (`backlog`), default 1024: connections the kernel holds until they are
    /// accepted (capped by `net.core.somaxconn`).
    pub backlog: u32,
    /// A file the serving process writes its pid to (`pid_file`); after an upgrade it names
    /// the new process.
    pub pid_file: Option<PathBuf>,
    /// The executable an upgrade starts (`upgrade_executable`); by default the one this process
    /// was started from, as it is on disk at the time of the upgrade.
    pub upgrade_executable: Option<PathBuf>,
    /// Longest an upgrade waits for the new process to be ready (`upgrade_timeout`), default
    /// 30 s; past it the new process is stopped and this one keeps serving.
    pub upgrade_timeout: Duration,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            workers: 0,
            debug: false,
            reuse_port: false,
            backlog: 1024,
            pid_file: None,
            upgrade_executable: None,
            upgrade_timeout: Duration::from_secs(30),
        }
    }
}

/// One per CPU for a setting of 0, else the setting.
fn per_cpu(setting: usize) -> usize {
    match setting {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    }
}

impl ServerSection {
    /// The tokio worker threads `workers` asks for: one per CPU for 0.
    #[must_use]
    pub fn worker_threads(&self) -> usize {
        per_cpu(self.workers)
    }

    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "server";
        Self {
            debug: r.get(s, "debug", d.debug, &BOOLEAN),
            host: r.get(s, "host", d.host, &HOST),
            port: r.get(s, "port", d.port, &PORT),
            workers: r.get(s, "workers", d.workers, &COUNT),
            reuse_port: r.get(s, "reuse_port", d.reuse_port, &BOOLEAN),
            backlog: r.get(s, "backlog", d.backlog, &BACKLOG),
            pid_file: r.get(s, "pid_file", d.pid_file, &PATH),
            upgrade_executable: r.get(s, "upgrade_executable", d.upgrade_executable, &PATH),
            upgrade_timeout: r.positive(s, "upgrade_timeout", d.upgrade_timeout),
        }
    }
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
    /// Longest a client may take to finish the TLS handshake (`handshake_timeout`), default 10 s,
    /// counted from the connection's accept (a wait for a handshake slot included).
    pub handshake_timeout: Duration,
    /// Most TLS handshakes worked on at once (`max_handshakes`), default 256; 0 for no cap. A
    /// handshake takes a slot once the client's hello has arrived; past the cap, new ones wait
    /// (within their `handshake_timeout`), so a flood of handshakes cannot take all the CPU.
    pub max_handshakes: usize,
}

impl Default for SslSection {
    fn default() -> Self {
        Self {
            enabled: false,
            certfile: None,
            keyfile: None,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
        }
    }
}

impl SslSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "ssl";
        let enabled = r.get(s, "enabled", d.enabled, &BOOLEAN);
        let (certfile, cert_source) = r.read(s, "certfile", d.certfile, &PATH);
        let (keyfile, key_source) = r.read(s, "keyfile", d.keyfile, &PATH);
        if enabled {
            for (key, file, source) in [
                ("certfile", &certfile, cert_source),
                ("keyfile", &keyfile, key_source),
            ] {
                match file {
                    None => r.problem(s, key, source, "is required when ssl.enabled is true"),
                    Some(p) => {
                        if let Err(e) = std::fs::File::open(p) {
                            r.problem(
                                s,
                                key,
                                source,
                                format!("cannot read {:?}: {e}", p.display().to_string()),
                            );
                        }
                    }
                }
            }
        }
        Self {
            enabled,
            certfile,
            keyfile,
            handshake_timeout: r.positive(s, "handshake_timeout", d.handshake_timeout),
            max_handshakes: r.get(s, "max_handshakes", d.max_handshakes, &COUNT),
        }
    }
}

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

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: "/metrics".into(),
            export_port: None,
            process: true,
            max_routes: genro_metrics::DEFAULT_MAX_ROUTES,
        }
    }
}

impl MetricsSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "metrics";
        Self {
            enabled: r.get(s, "enabled", d.enabled, &BOOLEAN),
            endpoint: r.get(s, "endpoint", d.endpoint, &ENDPOINT),
            export_port: r.get(s, "export_port", d.export_port, &OPTIONAL_PORT),
            process: r.get(s, "process", d.process, &BOOLEAN),
            max_routes: r.get(s, "max_routes", d.max_routes, &COUNT),
        }
    }
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

impl Default for WatchdogSection {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
            critical: Duration::from_secs(300),
        }
    }
}

impl WatchdogSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "watchdog";
        let enabled = r.get(s, "enabled", d.enabled, &BOOLEAN);
        let (interval, interval_source) = r.read(s, "interval", d.interval, &DURATION);
        let timeout = r.get(s, "timeout", d.timeout, &DURATION);
        let (critical, critical_source) = r.read(s, "critical", d.critical, &DURATION);
        if enabled {
            if interval.is_zero() {
                r.problem(s, "interval", interval_source, "must be more than zero");
            }
            if critical <= timeout {
                r.problem(
                    s,
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
        Self {
            enabled,
            interval,
            timeout,
            critical,
        }
    }

    /// The watchdog's thresholds.
    pub(crate) fn thresholds(&self) -> genro_watchdog::WatchdogConfig {
        genro_watchdog::WatchdogConfig {
            interval: self.interval,
            timeout: self.timeout,
            critical: self.critical,
        }
    }
}

/// `[taskdump]`: the limits of the traces that say what a stuck request is waiting on (the
/// watchdog's critical report, the console's `show --trace`, the drain report). Traces are only
/// taken in a build with them (feature `taskdump` and `--cfg tokio_unstable`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskdumpSection {
    /// The least time between two batches of traces (`min_interval`); within it, answers come
    /// from the last.
    pub min_interval: Duration,
    /// The longest wait for the traces, and again for their symbols (`timeout`).
    pub timeout: Duration,
    /// The most bytes of one trace (`max_bytes`); outer frames are cut first.
    pub max_bytes: u64,
}

impl Default for TaskdumpSection {
    fn default() -> Self {
        let limits = genro_envelope::taskdump::DumpLimits::default();
        Self {
            min_interval: limits.min_interval,
            timeout: limits.timeout,
            max_bytes: limits.max_bytes as u64,
        }
    }
}

impl TaskdumpSection {
    /// The smallest `max_bytes`: room for a few frames and the note that says what was cut.
    const MIN_BYTES: u64 = 256;

    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "taskdump";
        let min_interval = r.get(s, "min_interval", d.min_interval, &DURATION);
        let (timeout, timeout_source) = r.read(s, "timeout", d.timeout, &DURATION);
        let (max_bytes, bytes_source) = r.read(s, "max_bytes", d.max_bytes, &SIZE);
        if timeout.is_zero() {
            r.problem(s, "timeout", timeout_source, "must be more than zero");
        }
        if max_bytes < Self::MIN_BYTES {
            r.problem(
                s,
                "max_bytes",
                bytes_source,
                format!("must be at least {} bytes", Self::MIN_BYTES),
            );
        }
        Self {
            min_interval,
            timeout,
            max_bytes,
        }
    }

    /// The limits of the process's [`TaskDumper`](genro_envelope::taskdump::TaskDumper).
    pub(crate) fn limits(&self) -> genro_envelope::taskdump::DumpLimits {
        genro_envelope::taskdump::DumpLimits::default()
            .min_interval(self.min_interval)
            .timeout(self.timeout)
            .max_bytes(usize::try_from(self.max_bytes).unwrap_or(usize::MAX))
    }
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
    /// The framework's own error answers (the router's 404 and 405, extractor rejections, a
    /// bodiless 4xx or 5xx) get the error format and an error id (`framework_errors`); see
    /// [`ErrorLayer::framework_errors`](genro_errors::ErrorLayer::framework_errors).
    pub framework_errors: bool,
    /// The level 4xx errors are logged at, `None` for none (`client_error_level`: `warning`,
    /// `info`, `debug`, `trace` or `off`).
    pub client_error_level: Option<tracing::Level>,
    /// At most this many 4xx log lines a second for each status, error type and route, the
    /// rest summed up in one line (`client_error_lines_per_second`: a number, or `unlimited`);
    /// see [`ErrorLayer::client_error_lines_per_second`](genro_errors::ErrorLayer::client_error_lines_per_second).
    pub client_error_lines_per_second: Option<NonZeroU32>,
}

impl Default for ErrorsSection {
    /// Production: no tracebacks, no notifications, the framework's errors in the error format,
    /// client errors at WARNING.
    fn default() -> Self {
        Self {
            show_traceback: false,
            notify_critical: false,
            notify_webhook: None,
            framework_errors: true,
            client_error_level: Some(tracing::Level::WARN),
            client_error_lines_per_second: NonZeroU32::new(10),
        }
    }
}

impl ErrorsSection {
    /// Development (`[server] debug = true`): tracebacks in error bodies.
    #[must_use]
    pub fn development() -> Self {
        Self {
            show_traceback: true,
            ..Self::default()
        }
    }

    pub(crate) fn read(r: &mut Resolver<'_>, debug: bool) -> Self {
        let d = if debug {
            Self::development()
        } else {
            Self::default()
        };
        let s = "errors";
        let show_traceback = r.get(s, "show_traceback", d.show_traceback, &BOOLEAN);
        let notify_critical = r.get(s, "notify_critical", d.notify_critical, &BOOLEAN);
        // Judged only where it is used: a placeholder URL is fine while notifications are off.
        let (webhook, source) = r.read(s, "notify_webhook", d.notify_webhook, &OPTIONAL_TEXT);
        if notify_critical {
            match &webhook {
                None => r.problem(
                    s,
                    "notify_webhook",
                    source,
                    "is required when errors.notify_critical is true",
                ),
                Some(url) => {
                    if let Err(why) = value::webhook_url(url) {
                        r.problem(s, "notify_webhook", source, format!("{url:?} is not {why}"));
                    }
                }
            }
        }
        Self {
            show_traceback,
            notify_critical,
            notify_webhook: webhook,
            framework_errors: r.get(s, "framework_errors", d.framework_errors, &BOOLEAN),
            client_error_level: r.get(s, "client_error_level", d.client_error_level, &CLIENT_LEVEL),
            client_error_lines_per_second: r.get(
                s,
                "client_error_lines_per_second",
                d.client_error_lines_per_second,
                &LINE_RATE,
            ),
        }
    }
}

/// `[debug]`: the remote debug console (genro-debug). Off unless `enabled`; then it listens on
/// `host:debug_port` and refuses to start without a secret of at least 16 bytes.
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
    /// Who may connect, by the socket's peer address (`allowed_ips`; reloaded on SIGHUP).
    pub allowed_ips: AllowList,
    /// Host names a client may use besides IP literals and `localhost` (`allowed_hosts`).
    pub allowed_hosts: Vec<String>,
    /// The shared secret (`secret`), at least 16 bytes.
    pub secret: SecretValue,
    /// Longest a failing request waits for a debugger (`hold_timeout`).
    pub hold_timeout: Duration,
    /// Most requests held at once (`max_held`); past it, errors are answered at once.
    pub max_held: usize,
    /// Most console sessions logged in at once (`max_sessions`).
    pub max_sessions: usize,
    /// A session with no command for this long is closed (`session_timeout`).
    pub session_timeout: Duration,
    /// A connection that has not logged in this long after its accept is closed
    /// (`login_timeout`).
    pub login_timeout: Duration,
    /// The largest message a client may send (`max_message_size`); larger closes the session.
    pub max_message_size: u64,
    /// Failed logins from one IP within `failure_window` that lock it out (`login_failures`).
    pub login_failures: usize,
    /// The window failed logins are counted in (`failure_window`).
    pub failure_window: Duration,
    /// How long a locked-out IP's wrong answers are refused; its right answer still logs in
    /// (`lockout`).
    pub lockout: Duration,
    /// Request headers masked in the console besides `authorization`, `proxy-authorization`,
    /// `cookie` and `set-cookie` (`mask_headers`).
    pub mask_headers: Vec<HeaderName>,
}

impl Default for DebugSection {
    fn default() -> Self {
        Self {
            enabled: false,
            remote_pdb: false,
            debug_port: 8001,
            host: "127.0.0.1".into(),
            allowed_ips: AllowList::loopback(),
            allowed_hosts: Vec::new(),
            secret: SecretValue::default(),
            hold_timeout: Duration::from_secs(30),
            max_held: 8,
            max_sessions: 4,
            session_timeout: Duration::from_secs(600),
            login_timeout: Duration::from_secs(10),
            max_message_size: genro_debug::DEFAULT_MAX_MESSAGE_SIZE as u64,
            login_failures: 10,
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            mask_headers: Vec::new(),
        }
    }
}

impl DebugSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "debug";
        let enabled = r.get(s, "enabled", d.enabled, &BOOLEAN);
        let (secret, secret_source) = r.secret(s, "secret");
        if enabled && secret.len() < genro_debug::MIN_SECRET_LEN {
            r.problem(
                s,
                "secret",
                secret_source,
                format!(
                    "must be at least {} bytes (it has {})",
                    genro_debug::MIN_SECRET_LEN,
                    secret.len()
                ),
            );
        }
        let (max_message_size, size_source) =
            r.read(s, "max_message_size", d.max_message_size, &SIZE);
        if max_message_size == 0 {
            r.problem(s, "max_message_size", size_source, "must be more than 0");
        }
        Self {
            enabled,
            remote_pdb: r.get(s, "remote_pdb", d.remote_pdb, &BOOLEAN),
            debug_port: r.get(s, "debug_port", d.debug_port, &PORT),
            host: r.get(s, "host", d.host, &HOST),
            allowed_ips: r.get(s, "allowed_ips", d.allowed_ips, &ALLOW_LIST),
            allowed_hosts: r.get(s, "allowed_hosts", d.allowed_hosts, &NAMES),
            secret,
            hold_timeout: r.positive(s, "hold_timeout", d.hold_timeout),
            max_held: r.at_least_one(s, "max_held", d.max_held),
            max_sessions: r.at_least_one(s, "max_sessions", d.max_sessions),
            session_timeout: r.positive(s, "session_timeout", d.session_timeout),
            login_timeout: r.positive(s, "login_timeout", d.login_timeout),
            max_message_size,
            login_failures: r.at_least_one(s, "login_failures", d.login_failures),
            failure_window: r.positive(s, "failure_window", d.failure_window),
            lockout: r.positive(s, "lockout", d.lockout),
            mask_headers: r.get(s, "mask_headers", d.mask_headers, &HEADER_NAMES),
        }
    }

    /// The console's settings.
    #[must_use]
    pub fn console(&self) -> genro_debug::DebugConfig {
        let mut config =
            genro_debug::DebugConfig::new(genro_debug::Secret::new(self.secret.expose()));
        config.host.clone_from(&self.host);
        config.port = self.debug_port;
        config.allowed_ips = self.allowed_ips.clone();
        config.allowed_hosts.clone_from(&self.allowed_hosts);
        config.max_sessions = self.max_sessions;
        config.session_timeout = self.session_timeout;
        config.login_timeout = self.login_timeout;
        config.max_message_size = usize::try_from(self.max_message_size).unwrap_or(usize::MAX);
        config.failures = genro_debug::FailureLimit {
            failures: u32::try_from(self.login_failures).unwrap_or(u32::MAX),
            window: self.failure_window,
            lockout: self.lockout,
        };
        config.masked_headers.clone_from(&self.mask_headers);
        config
    }
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
    /// it (`keepalive_timeout`, 0 for no pings).
    pub keepalive_timeout: Option<Duration>,
    /// Longest a connection stays open with no request in progress (`idle_timeout`): an HTTP/2
    /// connection with no open stream, whether or not it answers pings, and an HTTP/1
    /// keep-alive connection (closed sooner, at `header_read_timeout`, when that is smaller).
    pub idle_timeout: Duration,
    /// Longest a request body may go without a new byte while the application reads it
    /// (`body_read_timeout`, 0 for no limit); the read then fails and the connection closes.
    pub body_read_timeout: Option<Duration>,
    /// Longest a response may wait for the client to take more of it (`write_timeout`, 0 for
    /// no limit): a client that stops reading is disconnected.
    pub write_timeout: Option<Duration>,
}

/// The smallest request head HTTP/1 must accept.
const MIN_HEAD: u64 = 8192;

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_header_size: MIN_HEAD,
            body_limit: 10 << 20,
            concurrency_limit: 0,
            max_connections: 10_000,
            request_timeout: None,
            keepalive: true,
            keepalive_timeout: Some(Duration::from_secs(75)),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl LimitsSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "limits";
        let header_read_timeout = r.positive(s, "header_read_timeout", d.header_read_timeout);
        // 0 would answer every request with 431.
        let max_headers = r.at_least_one(s, "max_headers", d.max_headers);
        let (max_header_size, source) = r.read(s, "max_header_size", d.max_header_size, &SIZE);
        if max_header_size < MIN_HEAD {
            r.problem(
                s,
                "max_header_size",
                source,
                format!("{max_header_size} is below the smallest head size HTTP/1 allows (8KiB)"),
            );
        }
        let body_limit = r.get(s, "body_limit", d.body_limit, &SIZE);
        let concurrency_limit = r.get(s, "concurrency_limit", d.concurrency_limit, &COUNT);
        let max_connections = r.at_least_one(s, "max_connections", d.max_connections);
        Self {
            header_read_timeout,
            max_headers,
            max_header_size,
            body_limit,
            concurrency_limit,
            max_connections,
            request_timeout: r.get(s, "request_timeout", d.request_timeout, &OPTIONAL_DURATION),
            keepalive: r.get(s, "keepalive", d.keepalive, &BOOLEAN),
            keepalive_timeout: r.get(
                s,
                "keepalive_timeout",
                d.keepalive_timeout,
                &OPTIONAL_DURATION,
            ),
            idle_timeout: r.positive(s, "idle_timeout", d.idle_timeout),
            body_read_timeout: r.get(
                s,
                "body_read_timeout",
                d.body_read_timeout,
                &OPTIONAL_DURATION,
            ),
            write_timeout: r.get(s, "write_timeout", d.write_timeout, &OPTIONAL_DURATION),
        }
    }
}

/// `[shutdown]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSection {
    /// How long the server keeps accepting and serving, not ready, after a stop signal and
    /// before the drain (`drain_delay`), default 0. Behind a load balancer that polls
    /// readiness (a Kubernetes Service), set it to a little more than the time the balancer
    /// takes to see not-ready (5 s for Kubernetes' endpoint propagation): the connections it
    /// still sends meanwhile are served, not refused. A second signal ends it at once.
    pub drain_delay: Duration,
    /// Longest the drain waits for in-flight requests before aborting them (`drain_timeout`).
    pub drain_timeout: Duration,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        Self {
            drain_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ShutdownSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        Self {
            drain_delay: r.get("shutdown", "drain_delay", d.drain_delay, &DURATION),
            drain_timeout: r.get("shutdown", "drain_timeout", d.drain_timeout, &DURATION),
        }
    }
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

impl Default for ExecutorsSection {
    fn default() -> Self {
        Self {
            threads: 0,
            queue: 64,
            processes: 0,
            process_queue: 64,
            job_timeout: None,
        }
    }
}

impl ExecutorsSection {
    /// The threads `threads` asks for: one per CPU for 0.
    #[must_use]
    pub fn pool_threads(&self) -> usize {
        per_cpu(self.threads)
    }

    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "executors";
        Self {
            threads: r.get(s, "threads", d.threads, &COUNT),
            queue: r.get(s, "queue", d.queue, &COUNT),
            processes: r.get(s, "processes", d.processes, &COUNT),
            process_queue: r.get(s, "process_queue", d.process_queue, &COUNT),
            job_timeout: r.get(s, "job_timeout", d.job_timeout, &OPTIONAL_DURATION),
        }
    }
}

/// `[cors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorsSection {
    /// Answer CORS (`enabled`).
    pub enabled: bool,
    /// Allowed origins (`allow_origins`), or `*`; changed live by SIGHUP.
    pub allow_origins: Allow<String>,
    /// Allowed methods (`allow_methods`).
    pub allow_methods: Allow<Method>,
    /// Allowed request headers (`allow_headers`).
    pub allow_headers: Allow<HeaderName>,
    /// Allow credentials (`allow_credentials`).
    pub allow_credentials: bool,
    /// How long a preflight answer may be cached (`max_age`).
    pub max_age: Duration,
}

impl Default for CorsSection {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_origins: Allow::List(Vec::new()),
            allow_methods: Allow::List(vec![Method::GET, Method::HEAD, Method::POST]),
            allow_headers: Allow::List(Vec::new()),
            allow_credentials: false,
            max_age: Duration::from_secs(600),
        }
    }
}

impl CorsSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "cors";
        let enabled = r.get(s, "enabled", d.enabled, &BOOLEAN);
        let (allow_origins, origins_source) = r.read(s, "allow_origins", d.allow_origins, &ORIGINS);
        let allow_methods = r.get(s, "allow_methods", d.allow_methods, &METHODS);
        let allow_headers = r.get(s, "allow_headers", d.allow_headers, &HEADERS);
        let (allow_credentials, credentials_source) =
            r.read(s, "allow_credentials", d.allow_credentials, &BOOLEAN);
        if enabled {
            if allow_origins.is_empty() {
                r.problem(
                    s,
                    "allow_origins",
                    origins_source,
                    "is required when cors.enabled is true (a list of origins, or *)",
                );
            } else if allow_credentials
                && (allow_origins.is_any() || allow_headers.is_any() || allow_methods.is_any())
            {
                r.problem(
                    s,
                    "allow_credentials",
                    credentials_source,
                    "cannot be true together with a * in allow_origins, allow_methods or \
                     allow_headers (browsers refuse it): list them",
                );
            }
        }
        Self {
            enabled,
            allow_origins,
            allow_methods,
            allow_headers,
            allow_credentials,
            max_age: r.get(s, "max_age", d.max_age, &DURATION),
        }
    }
}

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

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            enabled: true,
            live: "/health/live".into(),
            ready: "/health/ready".into(),
        }
    }
}

impl HealthSection {
    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "health";
        Self {
            enabled: r.get(s, "enabled", d.enabled, &BOOLEAN),
            live: r.get(s, "live", d.live, &ENDPOINT),
            ready: r.get(s, "ready", d.ready, &ENDPOINT),
        }
    }
}
