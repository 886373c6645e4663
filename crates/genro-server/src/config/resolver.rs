//! The resolver: reads each key from the environment, else the file, else its default; records
//! what it read for `--print-config`; and collects every problem on the way, unknown keys
//! included, so that one run reports them all.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use crate::suggest::closest;

use super::{
    ini::Ini,
    source::{ConfigError, ConfigProblem, ResolvedKey, SecretValue, Source},
    value::Kind,
};

/// The sections genro reads; any other section is free-form.
pub(crate) const SECTIONS: &[&str] = &[
    "server",
    "ssl",
    "logging",
    "metrics",
    "watchdog",
    "taskdump",
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

/// How a secret is shown.
pub(crate) const MASK: &str = "********";

pub(crate) struct Resolver<'a> {
    ini: &'a Ini,
    file: Arc<str>,
    /// (section, key) → (variable, value).
    env: BTreeMap<(String, String), (String, String)>,
    problems: Vec<ConfigProblem>,
    effective: Vec<ResolvedKey>,
    asked: BTreeSet<(String, String)>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(
        ini: &'a Ini,
        name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
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
                // A section of the user's own that the file does not have.
                None => match lower.split_once('_') {
                    Some((section, key)) if !key.is_empty() => {
                        vars.insert((section.to_owned(), key.to_owned()), (var.clone(), value));
                    }
                    _ => problems.push(ConfigProblem::new(
                        var.clone(),
                        Source::Env(var.clone()),
                        format!("not of the form {ENV_PREFIX}<SECTION>_<KEY>"),
                    )),
                },
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

    /// Problems found before the resolver ran (the environment's), to be reported with its own.
    pub(crate) fn refused(&mut self, problems: Vec<ConfigProblem>) {
        self.problems.extend(problems);
    }

    /// The raw value of a key and its source, or `None` when neither the environment nor the
    /// file sets it. The key becomes a known one.
    pub(crate) fn raw(&mut self, section: &str, key: &str) -> Option<(String, Source)> {
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

    /// Notes a value for [`Config::effective`](crate::Config::effective).
    pub(crate) fn record(&mut self, section: &str, key: &str, value: String, source: Source) {
        self.effective.push(ResolvedKey {
            section: section.to_owned(),
            key: key.to_owned(),
            value,
            source,
        });
    }

    pub(crate) fn problem(
        &mut self,
        section: &str,
        key: &str,
        source: Source,
        message: impl Into<String>,
    ) {
        self.problems.push(ConfigProblem::new(
            format!("{section}.{key}"),
            source,
            message,
        ));
    }

    /// A typed value and its source: the environment's, else the file's, else `default`. A
    /// value that does not parse is a problem, and `default` stands in so that the other keys
    /// are still read.
    pub(crate) fn read<T>(
        &mut self,
        section: &str,
        key: &str,
        default: T,
        kind: &Kind<T>,
    ) -> (T, Source) {
        match self.raw(section, key) {
            None => {
                self.record(section, key, (kind.render)(&default), Source::Default);
                (default, Source::Default)
            }
            Some((text, source)) => {
                self.record(section, key, text.clone(), source.clone());
                match (kind.parse)(&text) {
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

    /// A duration that must be more than zero: a timeout that is always on.
    pub(crate) fn positive(
        &mut self,
        section: &str,
        key: &str,
        default: std::time::Duration,
    ) -> std::time::Duration {
        let (value, source) = self.read(section, key, default, &super::value::DURATION);
        if value.is_zero() {
            self.problem(
                section,
                key,
                source,
                "must be more than zero: this timeout is always on (0 would fail or close \
                 every connection)",
            );
        }
        value
    }

    /// A count that must be at least 1.
    pub(crate) fn at_least_one(&mut self, section: &str, key: &str, default: usize) -> usize {
        let (value, source) = self.read(section, key, default, &super::value::COUNT);
        if value == 0 {
            self.problem(section, key, source, "must be at least 1");
        }
        value
    }

    /// As [`read`](Self::read), without the source.
    pub(crate) fn get<T>(&mut self, section: &str, key: &str, default: T, kind: &Kind<T>) -> T {
        self.read(section, key, default, kind).0
    }

    /// A secret: recorded masked, never parsed, never shown.
    pub(crate) fn secret(&mut self, section: &str, key: &str) -> (SecretValue, Source) {
        match self.raw(section, key) {
            None => {
                self.record(section, key, String::new(), Source::Default);
                (SecretValue::default(), Source::Default)
            }
            Some((text, source)) => {
                self.record(section, key, MASK.into(), source.clone());
                (SecretValue::new(text), source)
            }
        }
    }

    /// The keys the file and the environment set in `section`.
    pub(crate) fn keys_in(&self, section: &str) -> BTreeSet<String> {
        let mut keys: BTreeSet<String> = self
            .ini
            .section(section)
            .map(|s| s.entries.iter().map(|e| e.key.clone()).collect())
            .unwrap_or_default();
        keys.extend(
            self.env
                .keys()
                .filter(|(s, _)| s == section)
                .map(|(_, k)| k.clone()),
        );
        keys
    }

    /// The sections of the user's own (not genro's) that the file or the environment set.
    pub(crate) fn custom_sections(&self) -> BTreeSet<String> {
        self.ini
            .sections
            .iter()
            .map(|s| s.name.clone())
            .chain(self.env.keys().map(|(s, _)| s.clone()))
            .filter(|s| !SECTIONS.contains(&s.as_str()))
            .collect()
    }

    /// Unknown keys and look-alike sections become problems; then the verdict, and what was
    /// read.
    pub(crate) fn finish(mut self) -> Result<Vec<ResolvedKey>, ConfigError> {
        // The known keys of each section, gathered once: a file of many unknown keys is still
        // reported in one pass.
        let mut known: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (section, key) in &self.asked {
            known.entry(section).or_default().push(key.clone());
        }
        let known = |section: &str| known.get(section).map_or(&[][..], Vec::as_slice);
        for section in &self.ini.sections {
            if !SECTIONS.contains(&section.name.as_str()) {
                if let Some(near) = closest(&section.name, SECTIONS.iter().copied()) {
                    self.problems.push(ConfigProblem::new(
                        format!("[{}]", section.name),
                        Source::File {
                            path: self.file.clone(),
                            line: section.line,
                        },
                        format!(
                            "unknown section (did you mean [{near}]? a section of your own must \
                             not look like one of genro's)"
                        ),
                    ));
                }
                continue;
            }
            for entry in &section.entries {
                if !self
                    .asked
                    .contains(&(section.name.clone(), entry.key.clone()))
                {
                    self.problems.push(ConfigProblem::new(
                        format!("{}.{}", section.name, entry.key),
                        Source::File {
                            path: self.file.clone(),
                            line: entry.line,
                        },
                        unknown_key_message(&entry.key, known(&section.name)),
                    ));
                }
            }
        }
        for ((section, key), (var, _)) in &self.env {
            if SECTIONS.contains(&section.as_str())
                && !self.asked.contains(&(section.clone(), key.clone()))
            {
                self.problems.push(ConfigProblem::new(
                    format!("{section}.{key}"),
                    Source::Env(var.clone()),
                    unknown_key_message(key, known(section)),
                ));
            }
        }
        if self.problems.is_empty() {
            Ok(self.effective)
        } else {
            Err(ConfigError::new(self.problems))
        }
    }
}

fn unknown_key_message(key: &str, known: &[String]) -> String {
    match closest(key, known.iter().map(String::as_str)) {
        Some(near) => format!("unknown key (did you mean `{near}`?)"),
        None => format!("unknown key (known keys: {})", known.join(", ")),
    }
}
