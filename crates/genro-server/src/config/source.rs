//! What a value is and where it came from: [`Source`], [`SecretValue`], [`ResolvedKey`], and the
//! problems a configuration can have ([`ConfigProblem`], [`ConfigError`]).

use std::{fmt, sync::Arc};

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
pub struct SecretValue(String);

impl SecretValue {
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

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(********)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// One thing wrong with a configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    key: String,
    source: Source,
    message: String,
}

impl ConfigProblem {
    pub(crate) fn new(key: impl Into<String>, source: Source, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            source,
            message: message.into(),
        }
    }

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

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Default => write!(f, "{}: {}", self.key, self.message),
            _ => write!(f, "{}: {} (from {})", self.key, self.message, self.source),
        }
    }
}

impl fmt::Debug for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A configuration that cannot be used, with every problem found.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// Every problem, in the order of the file and then of the environment.
    #[must_use]
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    pub(crate) fn new(problems: Vec<ConfigProblem>) -> Self {
        Self { problems }
    }

    /// A problem with the file itself: missing, unreadable.
    pub(crate) fn file(path: &str, message: String) -> Self {
        Self::new(vec![ConfigProblem::new(
            format!("config file {path}"),
            Source::Default,
            message,
        )])
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

/// One key with the value in force and where it came from, for [`Config::effective`](crate::Config::effective).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedKey {
    /// The section.
    pub section: String,
    /// The key.
    pub key: String,
    /// The value as written, or `********` for a secret.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}
