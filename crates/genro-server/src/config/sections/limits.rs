//! `[limits]`: its struct, its defaults (`Default`), and `read`.

use std::time::Duration;

use crate::config::{
    resolver::Resolver,
    value::{BOOLEAN, COUNT, OPTIONAL_DURATION, SIZE},
};

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
