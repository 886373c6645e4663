//! The server's configuration: a `.ini` file, `GENRO_ASGI_<SECTION>_<KEY>` environment
//! overrides, and defaults, in that order of precedence from last to first.
//!
//! Every value remembers where it came from ([`Source`]); a bad value, an unknown key, a missing
//! or unreadable file is a [`ConfigError`] that names the key, the source and the value (never a
//! secret's), with every problem listed at once. Nothing falls back to a default silently.
//!
//! The files, from the bottom up: `source` (what a value is and where it came from), `value`
//! (the kinds of value, each read and written back), `ini` (the file), `resolver` (environment,
//! file, default; unknown keys), `sections/` (one file per section, each with its defaults) and
//! `free_form`,
//! and this one, the [`Config`] they make.

mod free_form;
mod ini;
mod resolver;
mod sections;
mod source;
mod value;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

pub use free_form::Section;
pub use resolver::ENV_PREFIX;
pub use sections::{
    CompressionSection, CorsSection, DebugSection, ErrorsSection, ExecutorsSection, HealthSection,
    LimitsSection, LoggingSection, MetricsSection, Runtime, ServerSection, ShutdownSection,
    SslSection, TaskdumpSection, WatchdogSection,
};
pub use source::{ConfigError, ConfigProblem, ResolvedKey, SecretValue, Source};
pub use value::{Allow, Encoding};

pub use crate::logging::format::{LogFormat, LogLevel, LogTemplate};

use resolver::{Resolver, SECTIONS};

/// Whether `section` is one of genro's own (not free-form).
pub(crate) fn is_genro_section(section: &str) -> bool {
    section != "application" && SECTIONS.contains(&section)
}

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
    /// `[taskdump]`.
    pub taskdump: TaskdumpSection,
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
    effective: Vec<ResolvedKey>,
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
    /// The environment is read as the OS gives it: a variable that is not valid UTF-8 is
    /// ignored, unless it is a `GENRO_ASGI_*` one, which is a problem naming it.
    ///
    /// # Errors
    ///
    /// The file is missing, unreadable or larger than [`MAX_FILE_SIZE`], or holds (or the
    /// environment gives) a bad value or an unknown key.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let (env, refused) = process_env(std::env::vars_os());
        Self::read_file(path.as_ref(), env, refused)
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
        Self::read_file(path.as_ref(), env, Vec::new())
    }

    fn read_file(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        refused: Vec<ConfigProblem>,
    ) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = read_capped(path).map_err(|why| ConfigError::file(&shown, why))?;
        let mut config = Self::read_text(&text, &shown, env, refused)?;
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
        Self::read_text(text, name, env, Vec::new())
    }

    /// Reads `.ini` text; `refused` are the problems already found in the environment.
    fn read_text(
        text: &str,
        name: &str,
        env: impl IntoIterator<Item = (String, String)>,
        refused: Vec<ConfigProblem>,
    ) -> Result<Self, ConfigError> {
        let ini = ini::parse(text).map_err(|errors| {
            ConfigError::new(
                errors
                    .into_iter()
                    .map(|e| {
                        ConfigProblem::new(format!("{name}:{}", e.line), Source::Default, e.message)
                    })
                    .collect(),
            )
        })?;
        let mut resolver = Resolver::new(&ini, name, env);
        resolver.refused(refused);
        let mut config = Self::read(&mut resolver);
        config.effective = resolver.finish()?;
        Ok(config)
    }

    /// Every section, in the order `--print-config` shows them. `[server]` comes first: its
    /// `debug` key picks the defaults of `[logging]` and `[errors]`.
    fn read(r: &mut Resolver<'_>) -> Self {
        let server = ServerSection::read(r);
        let debug = server.debug;
        Self {
            ssl: SslSection::read(r),
            logging: LoggingSection::read(r, debug),
            metrics: MetricsSection::read(r),
            watchdog: WatchdogSection::read(r),
            taskdump: TaskdumpSection::read(r),
            errors: ErrorsSection::read(r, debug),
            debug: DebugSection::read(r),
            limits: LimitsSection::read(r),
            shutdown: ShutdownSection::read(r),
            executors: ExecutorsSection::read(r),
            cors: CorsSection::read(r),
            compression: CompressionSection::read(r),
            health: HealthSection::read(r),
            application: Section::read(r, "application"),
            custom: r
                .custom_sections()
                .into_iter()
                .map(|name| {
                    let section = Section::read(r, &name);
                    (name, section)
                })
                .collect(),
            server,
            effective: Vec::new(),
            path: None,
        }
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
    pub fn effective(&self) -> &[ResolvedKey] {
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

/// The largest configuration file read; a larger one is refused before it is parsed. A real
/// configuration is a few kilobytes; this leaves room for a large `[application]` section and
/// keeps a start (or a SIGHUP) from reading a runaway file.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// The text of the file at `path`, if it is no larger than [`MAX_FILE_SIZE`].
fn read_capped(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    // Read through a cap rather than trusting the size the file reports (a pipe reports none).
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(format!(
            "it is larger than {} KiB, the most a configuration file may be",
            MAX_FILE_SIZE >> 10
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("it is not valid UTF-8: {e}"))
}

/// The process environment as text. A variable whose name or value is not valid UTF-8 is
/// skipped when it is not genro's, and refused (named) when it is: it cannot crash the start,
/// and an override that cannot be read is not ignored silently.
fn process_env(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> (Vec<(String, String)>, Vec<ConfigProblem>) {
    let mut env = Vec::new();
    let mut refused = Vec::new();
    for (name, value) in vars {
        let shown = name.to_string_lossy().into_owned();
        if !shown.starts_with(ENV_PREFIX) {
            continue;
        }
        let why = match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => {
                env.push((name, value));
                continue;
            }
            (Ok(_), Err(_)) => "its value is not valid UTF-8",
            (Err(_), _) => "the variable's name is not valid UTF-8",
        };
        refused.push(ConfigProblem::new(shown.clone(), Source::Env(shown), why));
    }
    (env, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_non_utf8_variable_is_skipped_unless_it_is_genros_then_it_is_named() {
        use std::{ffi::OsString, os::unix::ffi::OsStringExt};
        let bad = || OsString::from_vec(vec![b'x', 0xff, 0xfe]);
        let (env, refused) = process_env([
            (OsString::from("LANG_OF_SOMETHING"), bad()),
            (bad(), OsString::from("1")),
            (OsString::from("GENRO_ASGI_LIMITS_MAX_HEADERS"), bad()),
            (
                OsString::from("GENRO_ASGI_SERVER_PORT"),
                OsString::from("9000"),
            ),
        ]);
        assert_eq!(env, [("GENRO_ASGI_SERVER_PORT".into(), "9000".into())]);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].key(), "GENRO_ASGI_LIMITS_MAX_HEADERS");
        assert!(refused[0].to_string().contains("not valid UTF-8"));
    }

    #[test]
    fn a_file_past_the_size_cap_is_refused_before_it_is_parsed() {
        let dir = genro_test_support::process::temp_dir("config-cap");
        let path = dir.join("huge.ini");
        let line = "[application]\n".to_owned() + &"k = v\n".repeat(200_000);
        std::fs::write(&path, &line).unwrap();
        let err = Config::from_path_with_env(&path, no_env()).unwrap_err();
        assert!(err.to_string().contains("larger than 1024 KiB"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn no_env() -> std::iter::Empty<(String, String)> {
        std::iter::empty()
    }

    /// The values alone, without what was read from where.
    fn values(config: Config) -> Config {
        Config {
            effective: Vec::new(),
            path: None,
            ..config
        }
    }

    /// `--print-config` renders each default from the value the server uses, so the printed
    /// text, read back, is the same configuration: in production and in development mode.
    #[test]
    fn every_printed_default_reads_back_as_the_default_in_force() {
        for base in ["", "[server]\ndebug = true\n"] {
            let config = Config::from_ini_str(base, "defaults.ini", no_env()).unwrap();
            let printed = config.render_effective();
            let again =
                Config::from_ini_str(&printed, "printed.ini", no_env()).unwrap_or_else(|e| {
                    panic!("the printed defaults do not read back: {e}\n{printed}")
                });
            assert_eq!(values(again), values(config), "{printed}");
        }
    }

    /// The defaults in force are the sections' own `Default` (and `development()` with
    /// `[server] debug = true`): written once, as values.
    #[test]
    fn the_defaults_in_force_are_the_sections_default_values() {
        let production = Config::default();
        assert_eq!(production.server, ServerSection::default());
        assert_eq!(production.ssl, SslSection::default());
        assert_eq!(production.logging, LoggingSection::default());
        assert_eq!(production.metrics, MetricsSection::default());
        assert_eq!(production.watchdog, WatchdogSection::default());
        assert_eq!(production.taskdump, TaskdumpSection::default());
        assert_eq!(production.errors, ErrorsSection::default());
        assert_eq!(production.debug, DebugSection::default());
        assert_eq!(production.limits, LimitsSection::default());
        assert_eq!(production.shutdown, ShutdownSection::default());
        assert_eq!(production.executors, ExecutorsSection::default());
        assert_eq!(production.cors, CorsSection::default());
        assert_eq!(production.compression, CompressionSection::default());
        assert_eq!(production.health, HealthSection::default());
        let development =
            Config::from_ini_str("[server]\ndebug = true\n", "d.ini", no_env()).unwrap();
        assert_eq!(development.logging, LoggingSection::development());
        assert_eq!(development.errors, ErrorsSection::development());
        // Every key printed as a default shows what its section's `Default` holds.
        let printed = production.render_effective();
        for line in [
            "max_header_size = 8KiB",
            "body_limit = 10MiB",
            "max_routes = 500",
            "allowed_ips = 127.0.0.1, ::1",
            "allow_methods = GET, HEAD, POST",
            "algorithms = gzip, br",
        ] {
            assert!(printed.contains(line), "{line:?} not in\n{printed}");
        }
    }
}
