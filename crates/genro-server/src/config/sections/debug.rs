//! `[debug]`: its struct, its defaults (`Default`), and `read`.

use std::time::Duration;

use genro_debug::AllowList;
use http::HeaderName;

use crate::config::{
    resolver::Resolver,
    source::SecretValue,
    value::{ALLOW_LIST, BOOLEAN, HEADER_NAMES, HOST, NAMES, PORT, SIZE},
};

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
    /// Its address (`host`).
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
