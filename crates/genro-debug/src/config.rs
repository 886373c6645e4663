//! The console's settings, and why it can refuse to start.

use std::{fmt, time::Duration};

use http::HeaderName;

use crate::{
    allow::AllowList,
    auth::{FailureLimit, Secret, MIN_SECRET_LEN},
};

/// The console's settings. [`DebugConfig::new`] gives the defaults; genro-server fills them from
/// `[debug]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DebugConfig {
    /// The address to listen on (`127.0.0.1` by default: reachable from this machine only).
    pub host: String,
    /// The port (8001 by default; 0 picks a free one).
    pub port: u16,
    /// The shared secret; at least [`MIN_SECRET_LEN`] bytes.
    pub secret: Secret,
    /// Who may connect, by socket peer address (loopback by default).
    pub allowed_ips: AllowList,
    /// Host names a client may use besides IP literals and `localhost` (the `Host` check that
    /// defeats DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// Most sessions logged in at once (4). Connections that have not logged in hold no
    /// session: they have a budget of their own.
    pub max_sessions: usize,
    /// A session with no command for this long is closed (10 minutes).
    pub session_timeout: Duration,
    /// A connection that has not logged in this long after its accept is closed, whatever it
    /// does meanwhile (10 seconds).
    pub login_timeout: Duration,
    /// The largest message a client may send; a larger one closes the session (1 MiB).
    pub max_message_size: usize,
    /// Failed logins per IP before it is locked out.
    pub failures: FailureLimit,
    /// Request headers masked in `show`, besides `authorization`, `proxy-authorization`,
    /// `cookie` and `set-cookie`.
    pub masked_headers: Vec<HeaderName>,
}

/// Default of [`DebugConfig::max_message_size`].
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

impl DebugConfig {
    /// The defaults, with this secret.
    #[must_use]
    pub fn new(secret: Secret) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8001,
            secret,
            allowed_ips: AllowList::loopback(),
            allowed_hosts: Vec::new(),
            max_sessions: 4,
            session_timeout: Duration::from_secs(600),
            login_timeout: Duration::from_secs(10),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            failures: FailureLimit::default(),
            masked_headers: Vec::new(),
        }
    }

    /// Checks what would make the console unsafe or useless.
    ///
    /// # Errors
    ///
    /// A secret shorter than [`MIN_SECRET_LEN`] bytes, or a bound of zero.
    pub fn validate(&self) -> Result<(), DebugError> {
        if self.secret.len() < MIN_SECRET_LEN {
            return Err(DebugError::Config(format!(
                "secret: must be at least {MIN_SECRET_LEN} bytes (it has {})",
                self.secret.len()
            )));
        }
        let zero = [
            ("max_sessions", self.max_sessions == 0),
            ("session_timeout", self.session_timeout.is_zero()),
            ("login_timeout", self.login_timeout.is_zero()),
            ("max_message_size", self.max_message_size == 0),
            ("login_failures", self.failures.failures == 0),
        ];
        if let Some((key, _)) = zero.iter().find(|(_, z)| *z) {
            return Err(DebugError::Config(format!("{key}: must be more than 0")));
        }
        Ok(())
    }
}

/// Why the console could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum DebugError {
    /// A setting is not usable.
    Config(String),
    /// The listener could not bind.
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

impl fmt::Display for DebugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(why) => write!(f, "debug console: {why}"),
            Self::Bind { addr, source } => {
                write!(f, "debug console: cannot listen on {addr}: {source}")
            }
        }
    }
}

impl std::error::Error for DebugError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } => Some(source),
            Self::Config(_) => None,
        }
    }
}
