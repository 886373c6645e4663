//! The kinds of value the configuration holds. Each [`Kind`] reads its text (saying, in words,
//! what it expected when it cannot) and writes a value back as a person would type it, which is
//! how `--print-config` shows a default: from the value itself, never from a second string.

use std::{fmt, net::IpAddr, num::NonZeroU32, path::PathBuf, time::Duration};

use genro_debug::{AllowList, Cidr};

use http::{HeaderName, Method};

/// A parse failure: what was expected, for the message `key: <value> is not <what>`.
pub(crate) type Expected = String;

/// A kind of value: how its text is read, and how a value is written back.
pub(crate) struct Kind<T> {
    pub(crate) parse: fn(&str) -> Result<T, Expected>,
    pub(crate) render: fn(&T) -> String,
}

pub(crate) const BOOLEAN: Kind<bool> = Kind {
    parse: boolean,
    render: ToString::to_string,
};
pub(crate) const PORT: Kind<u16> = Kind {
    parse: port,
    render: ToString::to_string,
};
/// A port, or nothing (empty).
pub(crate) const OPTIONAL_PORT: Kind<Option<u16>> = Kind {
    parse: |t| optional(t, port),
    render: |p| p.map(|p| p.to_string()).unwrap_or_default(),
};
pub(crate) const COUNT: Kind<usize> = Kind {
    parse: count,
    render: ToString::to_string,
};
/// A listen queue: 1 to 65535 connections.
pub(crate) const BACKLOG: Kind<u32> = Kind {
    parse: |t| match count(t)? {
        n @ 1..=65535 => Ok(u32::try_from(n).expect("at most 65535")),
        _ => Err("a number of connections from 1 to 65535".to_owned()),
    },
    render: ToString::to_string,
};
pub(crate) const DURATION: Kind<Duration> = Kind {
    parse: duration,
    render: |d| humanize(*d),
};
/// A duration where 0 means none.
pub(crate) const OPTIONAL_DURATION: Kind<Option<Duration>> = Kind {
    parse: |t| duration(t).map(|d| (!d.is_zero()).then_some(d)),
    render: |d| humanize(d.unwrap_or_default()),
};
pub(crate) const SIZE: Kind<u64> = Kind {
    parse: size,
    render: |n| render_size(*n),
};
/// A size of at most 65535 bytes.
pub(crate) const SMALL_SIZE: Kind<u16> = Kind {
    parse: |t| {
        size(t)
            .and_then(|n| u16::try_from(n).map_err(|_| "a size of at most 65535 bytes".to_owned()))
    },
    render: |n| render_size(u64::from(*n)),
};
/// The level of a log line that reports a client's mistake: at most WARNING, or off.
pub(crate) const CLIENT_LEVEL: Kind<Option<tracing::Level>> = Kind {
    parse: client_level,
    render: |level| match level {
        None => "off".to_owned(),
        Some(tracing::Level::WARN) => "warning".to_owned(),
        Some(level) => level.as_str().to_ascii_lowercase(),
    },
};

fn client_level(text: &str) -> Result<Option<tracing::Level>, Expected> {
    match text.trim().to_ascii_lowercase().as_str() {
        "warning" | "warn" => Ok(Some(tracing::Level::WARN)),
        "info" => Ok(Some(tracing::Level::INFO)),
        "debug" => Ok(Some(tracing::Level::DEBUG)),
        "trace" => Ok(Some(tracing::Level::TRACE)),
        "off" | "none" => Ok(None),
        _ => Err(
            "a level for client errors: warning, info, debug, trace or off (a client's \
                  mistake is never logged as an error)"
                .to_owned(),
        ),
    }
}

/// Log lines a second: a whole number from 1, or `unlimited`.
pub(crate) const LINE_RATE: Kind<Option<NonZeroU32>> = Kind {
    parse: |text| match text.trim() {
        "unlimited" => Ok(None),
        text => count(text)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new)
            .map(Some)
            .ok_or_else(|| "a number of lines a second from 1, or unlimited".to_owned()),
    },
    render: |rate| rate.map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
};

/// Text, or nothing (empty).
pub(crate) const OPTIONAL_TEXT: Kind<Option<String>> = Kind {
    parse: |t| Ok((!t.is_empty()).then(|| t.to_owned())),
    render: |t| t.clone().unwrap_or_default(),
};
pub(crate) const HOST: Kind<String> = Kind {
    parse: host,
    render: Clone::clone,
};
pub(crate) const ENDPOINT: Kind<String> = Kind {
    parse: endpoint,
    render: Clone::clone,
};
/// A file, or nothing (empty).
pub(crate) const PATH: Kind<Option<PathBuf>> = Kind {
    parse: |t| Ok((!t.is_empty()).then(|| PathBuf::from(t))),
    render: |p| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    },
};
pub(crate) const ALLOW_LIST: Kind<AllowList> = Kind {
    parse: |t| cidrs(t).map(AllowList::new),
    render: |list| join(list.networks()),
};
/// A list of host names.
pub(crate) const NAMES: Kind<Vec<String>> = Kind {
    parse: |t| {
        list(t)
            .into_iter()
            .map(|n| {
                if !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                {
                    Ok(n.to_ascii_lowercase())
                } else {
                    Err(format!(
                        "a list of host names such as debug.internal (not {n:?})"
                    ))
                }
            })
            .collect()
    },
    render: |n| n.join(", "),
};
/// A list of header names.
pub(crate) const HEADER_NAMES: Kind<Vec<HeaderName>> = Kind {
    parse: |t| list(t).into_iter().map(header_name).collect(),
    render: |h| join(h),
};
pub(crate) const ORIGINS: Kind<Allow<String>> = Kind {
    parse: |t| {
        allow(t, |o| {
            if http::HeaderValue::from_str(o).is_ok() && o.is_ascii() && o.contains("://") {
                Ok(o.to_owned())
            } else {
                Err(format!(
                    "a list of origins such as https://app.example.com, or * (not {o:?})"
                ))
            }
        })
    },
    render: ToString::to_string,
};
pub(crate) const METHODS: Kind<Allow<Method>> = Kind {
    parse: |t| {
        allow(t, |m| {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("a list of HTTP methods (not {m:?})"))
        })
    },
    render: ToString::to_string,
};
pub(crate) const HEADERS: Kind<Allow<HeaderName>> = Kind {
    parse: |t| allow(t, header_name),
    render: ToString::to_string,
};
pub(crate) const ENCODINGS: Kind<Vec<Encoding>> = Kind {
    parse: |t| list(t).into_iter().map(str::parse).collect(),
    render: |e| join(e),
};

/// One header name of a list, in lowercase.
fn header_name(h: &str) -> Result<HeaderName, Expected> {
    HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("a list of header names (not {h:?})"))
}

/// A kind read by `FromStr` and written by `Display`.
pub(crate) fn parsed<T>() -> Kind<T>
where
    T: std::str::FromStr<Err = String> + std::fmt::Display,
{
    Kind {
        parse: str::parse,
        render: ToString::to_string,
    }
}

fn optional<T>(text: &str, parse: fn(&str) -> Result<T, Expected>) -> Result<Option<T>, Expected> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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

/// A size as a person writes it: `8KiB`, `10MiB`, or bytes.
fn render_size(n: u64) -> String {
    for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n > 0 && n.is_multiple_of(scale) {
            return format!("{}{unit}", n / scale);
        }
    }
    n.to_string()
}

/// An IP address or a host name.
fn host(text: &str) -> Result<String, Expected> {
    if text.parse::<IpAddr>().is_ok()
        || (!text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        Ok(text.to_owned())
    } else {
        Err("an IP address or host name".into())
    }
}

/// What a CORS list allows: anything (`*`), or the items listed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Allow<T> {
    /// `*`: any value.
    Any,
    /// Only these (possibly none).
    List(Vec<T>),
}

impl<T> Allow<T> {
    /// Whether this is `*`.
    #[must_use]
    pub fn is_any(&self) -> bool {
        matches!(self, Self::Any)
    }

    /// Whether nothing at all is allowed (an empty list).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        matches!(self, Self::List(items) if items.is_empty())
    }
}

impl<T: fmt::Display> fmt::Display for Allow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::List(items) => f.write_str(&join(items)),
        }
    }
}

/// `*` anywhere in the list allows anything; otherwise each item is read by `item`.
fn allow<T>(text: &str, item: impl Fn(&str) -> Result<T, Expected>) -> Result<Allow<T>, Expected> {
    let items = list(text);
    let parsed = items
        .iter()
        .filter(|i| **i != "*")
        .map(|i| item(i))
        .collect::<Result<Vec<T>, Expected>>()?;
    if items.contains(&"*") {
        Ok(Allow::Any)
    } else {
        Ok(Allow::List(parsed))
    }
}

/// A response encoding `[compression] algorithms` can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// `gzip`.
    Gzip,
    /// `br` (Brotli).
    Br,
    /// `deflate`.
    Deflate,
}

impl Encoding {
    /// Its name in the configuration and in `content-encoding`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Br => "br",
            Self::Deflate => "deflate",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Encoding {
    type Err = Expected;

    fn from_str(text: &str) -> Result<Self, Expected> {
        match text.to_ascii_lowercase().as_str() {
            "gzip" => Ok(Self::Gzip),
            "br" => Ok(Self::Br),
            "deflate" => Ok(Self::Deflate),
            _ => Err(format!("a list of gzip, br, deflate (not {text:?})")),
        }
    }
}

fn boolean(text: &str) -> Result<bool, Expected> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err("a boolean (true/false, yes/no, on/off, 1/0)".into()),
    }
}

fn port(text: &str) -> Result<u16, Expected> {
    text.parse::<u16>()
        .map_err(|_| "a port number from 0 to 65535".into())
}

fn count(text: &str) -> Result<usize, Expected> {
    let digits: String = text.chars().filter(|c| *c != '_').collect();
    digits
        .parse::<usize>()
        .map_err(|_| "a whole number of zero or more".into())
}

/// `30`, `30s`, `1.5s`, `500ms`, `5m`, `2h`: a number alone is seconds, as in the seed config.
fn duration(text: &str) -> Result<Duration, Expected> {
    const WHAT: &str = "a duration such as 30, 30s, 500ms, 5m or 1h (a plain number is seconds)";
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| WHAT.to_owned())?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        _ => return Err(WHAT.into()),
    };
    let seconds = number * scale;
    if !seconds.is_finite() || !(0.0..=1e12).contains(&seconds) {
        return Err(WHAT.into());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `1048576`, `64KiB`, `10MiB`, `1GiB`, `10KB`, `2MB`.
fn size(text: &str) -> Result<u64, Expected> {
    const WHAT: &str = "a size in bytes such as 65536, 64KiB, 10MiB or 1GB";
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .replace('_', "")
        .parse()
        .map_err(|_| WHAT.to_owned())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(WHAT.into()),
    };
    number.checked_mul(scale).ok_or_else(|| WHAT.to_owned())
}

fn cidrs(text: &str) -> Result<Vec<Cidr>, Expected> {
    list(text)
        .into_iter()
        .map(|t| {
            t.parse()
                .map_err(|e: genro_debug::InvalidCidr| e.to_string())
        })
        .collect()
}

/// A comma- (or whitespace-) separated list; empty items are dropped.
fn list(text: &str) -> Vec<&str> {
    text.split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// An absolute URL path such as `/metrics`.
fn endpoint(text: &str) -> Result<String, Expected> {
    const WHAT: &str = "an absolute path such as /metrics";
    if text.starts_with('/')
        && text.parse::<http::uri::PathAndQuery>().is_ok()
        && !text.contains('?')
    {
        Ok(text.to_owned())
    } else {
        Err(WHAT.into())
    }
}

/// A usable `http://` or `https://` URL with a real host name or address.
pub(crate) fn webhook_url(text: &str) -> Result<String, Expected> {
    let uri: http::Uri = text
        .parse()
        .map_err(|_| "a usable http:// or https:// URL".to_owned())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("a usable URL: the scheme must be http or https".into());
    }
    let host = uri.host().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid_name || host.parse::<IpAddr>().is_ok() {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "a usable URL: the host {host:?} is not a valid host name or address"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert!(duration("-1").is_err());
        assert!(duration("soon").is_err());
        assert!(duration("1e400").is_err());
        assert_eq!(size("64KiB").unwrap(), 65_536);
        assert_eq!(size("10MB").unwrap(), 10_000_000);
        assert!(size("99999999999999GiB").is_err());
        assert!(size("-1").is_err());
    }

    #[test]
    fn cidrs_and_mapped_addresses() {
        let nets = cidrs("127.0.0.1, 10.0.0.0/8 ::1").unwrap();
        assert!(nets[0].contains("127.0.0.1".parse().unwrap()));
        assert!(nets[0].contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(nets[1].contains("10.200.3.4".parse().unwrap()));
        assert!(!nets[1].contains("11.0.0.1".parse().unwrap()));
        assert!(nets[2].contains("::1".parse().unwrap()));
        assert!(cidrs("10.0.0.0/33").is_err());
        assert!(cidrs("10.0.0/8").is_err());
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn webhook_urls_need_a_real_host() {
        assert!(webhook_url("https://hooks.example.com/x").is_ok());
        assert!(webhook_url("http://127.0.0.1:9/x").is_ok());
        let err = webhook_url("https://...").unwrap_err();
        assert!(err.contains("not a valid host"), "{err}");
        assert!(webhook_url("ftp://example.com").is_err());
    }
}
