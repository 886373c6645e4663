//! The `.ini` reader: sections, `key = value` (or `key: value`), comments, and the line of every
//! key, so that an error can say where a bad value came from.
//!
//! The dialect is Python's `configparser` as genro's seed config uses it, without interpolation:
//! - `[section]` opens a section; a section may appear only once, and every key needs one;
//! - `key = value` or `key: value`; keys are case-insensitive (kept lowercase), values are
//!   trimmed; a key may appear only once per section;
//! - a line whose first non-blank character is `#` or `;` is a comment, and so is the rest of a
//!   line from a `#` or `;` that follows whitespace (`interval = 30   # seconds`);
//! - an indented line after a key continues its value on a new line;
//! - `%` is an ordinary character: `%(asctime)s` reaches the logger as written.
//!
//! The well-kept ini crates (rust-ini, configparser) read this dialect but do not keep the line of
//! each key, which every configuration error here names; the reader is small enough to own.

use std::{collections::HashMap, fmt};

/// Where a value was read from in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) line: usize,
}

/// One `[section]` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniSection {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) entries: Vec<Entry>,
    /// Key → index in `entries`: a lookup, and the check for a repeated key, in constant time,
    /// so that reading a file is linear in its keys.
    index: HashMap<String, usize>,
}

impl IniSection {
    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.index.get(key).map(|&i| &self.entries[i])
    }
}

/// A parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ini {
    pub(crate) sections: Vec<IniSection>,
    /// Section name → index in `sections`.
    index: HashMap<String, usize>,
}

impl Ini {
    pub(crate) fn section(&self, name: &str) -> Option<&IniSection> {
        self.index.get(name).map(|&i| &self.sections[i])
    }

    pub(crate) fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        self.section(section)?.get(key)
    }
}

/// A line the reader could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The text of `line` without an inline comment (a `#` or `;` after whitespace).
fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b'#' || b == b';') && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

impl Ini {
    /// A `[section]` header at `line` (`content` without its `[`).
    fn open_section(&mut self, rest: &str, content: &str, line: usize) -> Result<(), String> {
        let Some(name) = rest.strip_suffix(']') else {
            return Err(format!("section header {content:?} has no closing `]`"));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err("empty section name `[]`".into());
        }
        if let Some(first) = self.section(name) {
            return Err(format!(
                "section [{name}] appears twice (first at line {})",
                first.line
            ));
        }
        self.index.insert(name.to_owned(), self.sections.len());
        self.sections.push(IniSection {
            name: name.to_owned(),
            line,
            entries: Vec::new(),
            index: HashMap::new(),
        });
        Ok(())
    }

    /// A `key = value` line at `line`, in the last section opened; its place, as (section
    /// index, entry index), for the indented lines that continue it.
    fn add_entry(&mut self, content: &str, line: usize) -> Result<(usize, usize), String> {
        let Some(at) = content.find(['=', ':']) else {
            return Err(format!(
                "expected `key = value`, `[section]` or a comment, found {content:?}"
            ));
        };
        let key = content[..at].trim().to_ascii_lowercase();
        let value = content[at + 1..].trim().to_owned();
        if key.is_empty() {
            return Err("a value with no key".into());
        }
        let Some(section_index) = self.sections.len().checked_sub(1) else {
            return Err(format!("key `{key}` before any [section]"));
        };
        let section = &mut self.sections[section_index];
        if let Some(first) = section.get(&key) {
            return Err(format!(
                "key `{key}` appears twice in [{}] (first at line {})",
                section.name, first.line
            ));
        }
        section.index.insert(key.clone(), section.entries.len());
        section.entries.push(Entry { key, value, line });
        Ok((section_index, section.entries.len() - 1))
    }
}

/// Reads `text`. Every malformed line is reported, not only the first.
pub(crate) fn parse(text: &str) -> Result<Ini, Vec<SyntaxError>> {
    let mut ini = Ini::default();
    let mut errors = Vec::new();
    // The key the next indented line continues, as (section index, entry index).
    let mut last: Option<(usize, usize)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let content = strip_inline_comment(raw);
        if let (true, Some((s, e))) = (raw.starts_with([' ', '\t']), last) {
            let entry = &mut ini.sections[s].entries[e];
            entry.value.push('\n');
            entry.value.push_str(content.trim());
            continue;
        }
        let content = content.trim();
        let read = if let Some(rest) = content.strip_prefix('[') {
            last = None;
            ini.open_section(rest, content, line)
        } else {
            ini.add_entry(content, line).map(|at| last = Some(at))
        };
        if let Err(message) = read {
            errors.push(SyntaxError { line, message });
        }
    }
    if errors.is_empty() {
        Ok(ini)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_inline_comments_and_python_formats() {
        let ini = parse(
            "# top\n[watchdog]\ninterval = 30           # check every 30s\nTimeout: 60 ; warn\n\
             [logging]\nformat = %(asctime)s - %(levelname)s - %(message)s\nurl = https://x/#frag\n",
        )
        .unwrap();
        assert_eq!(ini.get("watchdog", "interval").unwrap().value, "30");
        assert_eq!(ini.get("watchdog", "timeout").unwrap().value, "60");
        assert_eq!(ini.get("watchdog", "timeout").unwrap().line, 4);
        assert_eq!(
            ini.get("logging", "format").unwrap().value,
            "%(asctime)s - %(levelname)s - %(message)s"
        );
        assert_eq!(ini.get("logging", "url").unwrap().value, "https://x/#frag");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let errors = parse("stray = 1\n[a]\nno equals here\n[a]\nk = 1\n[b\n").unwrap_err();
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3, 4, 6], "{errors:?}");
        let errors = parse("[a]\nk = 1\nK = 2\n").unwrap_err();
        assert!(errors[0].message.contains("appears twice"), "{errors:?}");
    }

    /// Each key is looked up, and checked against the keys before it, in constant time: a
    /// section of 100,000 keys reads in one pass (a list search made it quadratic: minutes).
    #[test]
    fn reading_is_linear_in_the_keys_of_a_section() {
        let text = (0..100_000).fold("[application]\n".to_owned(), |mut text, i| {
            text.push_str(&format!("key{i} = {i}\n"));
            text
        });
        let started = std::time::Instant::now();
        let ini = parse(&text).unwrap();
        let took = started.elapsed();
        assert_eq!(ini.get("application", "key99999").unwrap().line, 100_001);
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
        let repeated = parse(&format!("{text}key5 = again\n")).unwrap_err();
        assert!(
            repeated[0].message.contains("first at line 7"),
            "{repeated:?}"
        );
    }

    #[test]
    fn indented_lines_continue_a_value() {
        let ini = parse("[application]\nnote = first\n  second\n").unwrap();
        assert_eq!(
            ini.get("application", "note").unwrap().value,
            "first\nsecond"
        );
    }
}
