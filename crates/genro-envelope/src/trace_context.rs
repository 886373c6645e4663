//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` a request
//! arrives with, or the trace it starts, so that one chain of ids runs from the client's trace
//! to the request id and the error id.

use std::fmt;

use http::HeaderValue;

/// The `traceparent` header.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The `tracestate` header.
pub const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// The longest `tracestate` kept, in bytes. The spec allows 32 members of at most 256
/// characters each; a longer value is dropped whole (it may not be cut in a member).
pub const MAX_TRACESTATE_LEN: usize = 8192;

/// A trace id: 16 bytes, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A span id (the spec's parent-id): 8 bytes, written as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    f.write_str(std::str::from_utf8(&buf[..2 * bytes.len()]).map_err(|_| fmt::Error)?)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// Why a `traceparent` was not taken: each way the spec rejects one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidTraceparent {
    /// Not the length of a `traceparent` of its version (55 bytes for version 00).
    Length,
    /// A character that is not lowercase hex where hex goes, or a missing `-`.
    Format,
    /// Version `ff`, which the spec forbids.
    Version,
    /// A trace id of all zeros.
    ZeroTraceId,
    /// A parent id of all zeros.
    ZeroParentId,
}

impl InvalidTraceparent {
    /// A short reason, for logs.
    #[must_use]
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Length => "wrong length",
            Self::Format => "not lowercase hex fields separated by '-'",
            Self::Version => "version ff is forbidden",
            Self::ZeroTraceId => "all-zero trace id",
            Self::ZeroParentId => "all-zero parent id",
        }
    }
}

impl fmt::Display for InvalidTraceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid traceparent: {}", self.reason())
    }
}

impl std::error::Error for InvalidTraceparent {}

/// A parsed `traceparent`: the caller's trace and span, and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traceparent {
    /// The trace the caller is in.
    pub trace_id: TraceId,
    /// The caller's span: the parent of this request's.
    pub parent_id: SpanId,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        // Upper case is refused: the spec's hex is lowercase.
        _ => None,
    }
}

fn hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

impl Traceparent {
    /// Parses a `traceparent` value as the spec says: `version-traceid-parentid-flags`, all
    /// lowercase hex. Version `00` is exactly 55 bytes; a later version may be longer, with
    /// a `-` after the first 55 bytes, and is read as version 00 is.
    ///
    /// # Errors
    ///
    /// [`InvalidTraceparent`], saying which rule the value breaks.
    pub fn parse(value: &[u8]) -> Result<Self, InvalidTraceparent> {
        if value.len() < 55 {
            return Err(InvalidTraceparent::Length);
        }
        let version = hex::<1>(&value[..2]).ok_or(InvalidTraceparent::Format)?[0];
        if version == 0xff {
            return Err(InvalidTraceparent::Version);
        }
        if (version == 0 && value.len() != 55) || (value.len() > 55 && value[55] != b'-') {
            return Err(InvalidTraceparent::Length);
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return Err(InvalidTraceparent::Format);
        }
        let trace_id = hex::<16>(&value[3..35]).ok_or(InvalidTraceparent::Format)?;
        let parent_id = hex::<8>(&value[36..52]).ok_or(InvalidTraceparent::Format)?;
        let flags = hex::<1>(&value[53..55]).ok_or(InvalidTraceparent::Format)?[0];
        if trace_id == [0; 16] {
            return Err(InvalidTraceparent::ZeroTraceId);
        }
        if parent_id == [0; 8] {
            return Err(InvalidTraceparent::ZeroParentId);
        }
        Ok(Self {
            trace_id: TraceId(trace_id),
            parent_id: SpanId(parent_id),
            flags,
        })
    }
}

/// The span an OpenTelemetry layer started for a request, for its envelope: the trace, the
/// span's own id (the parent of the calls the request makes), the caller's span when it sent a
/// valid `traceparent`, and the flags.
#[cfg(feature = "opentelemetry")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct JoinedSpan {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_id: Option<SpanId>,
    pub(crate) flags: u8,
}

/// What the envelope layer found of a request's trace.
#[derive(Debug, Clone)]
pub(crate) enum TraceStart {
    /// None: the request starts a trace.
    Start,
    /// The caller's valid `traceparent`, and its `tracestate`.
    Continue(Traceparent, Option<HeaderValue>),
    /// The span an OpenTelemetry layer started for the request (`otel::join_trace`), and the
    /// caller's `tracestate`.
    #[cfg(feature = "opentelemetry")]
    Joined(JoinedSpan, Option<HeaderValue>),
}

/// How a request stands in a distributed trace: the trace it is part of, its own span id, and
/// the caller's span when it came with a valid `traceparent`.
///
/// The request's span id is the last eight bytes of its internal id (random bits of the
/// UUIDv7), or, under an OpenTelemetry layer (`otel::join_trace`), the id of the span it
/// exports. A trace the request starts (no `traceparent`, and the layer asked to start one)
/// has the internal id's sixteen bytes as its trace id, so the trace id and the request id
/// name each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_id: Option<SpanId>,
    flags: u8,
    tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// The context of a request with internal id `id`, as `start` says.
    pub(crate) fn new(id: &uuid::Uuid, start: TraceStart) -> Self {
        let bytes = id.as_bytes();
        let mut span = [0u8; 8];
        span.copy_from_slice(&bytes[8..]);
        match start {
            TraceStart::Continue(parent, tracestate) => Self {
                trace_id: parent.trace_id,
                span_id: SpanId(span),
                parent_id: Some(parent.parent_id),
                flags: parent.flags,
                tracestate,
            },
            TraceStart::Start => Self {
                trace_id: TraceId(*bytes),
                span_id: SpanId(span),
                parent_id: None,
                flags: 0,
                tracestate: None,
            },
            #[cfg(feature = "opentelemetry")]
            TraceStart::Joined(joined, tracestate) => Self {
                trace_id: joined.trace_id,
                span_id: joined.span_id,
                parent_id: joined.parent_id,
                flags: joined.flags,
                tracestate,
            },
        }
    }

    /// The trace the request is part of.
    #[must_use]
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This request's span id: the parent of the calls it makes.
    #[must_use]
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The caller's span, when the request came with a valid `traceparent`; `None` when the
    /// trace started here.
    #[must_use]
    pub fn parent_id(&self) -> Option<SpanId> {
        self.parent_id
    }

    /// The trace flags: the caller's, or 0 for a trace started here.
    #[must_use]
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller sampled the trace (flag bit 0).
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The caller's `tracestate`, kept as it came (when it was at most
    /// [`MAX_TRACESTATE_LEN`] bytes and came with a valid `traceparent`).
    #[must_use]
    pub fn tracestate(&self) -> Option<&HeaderValue> {
        self.tracestate.as_ref()
    }

    /// The `traceparent` for a call this request makes (a webhook, a backend): this trace,
    /// with this request's span as the parent.
    #[must_use]
    pub fn child_traceparent(&self) -> HeaderValue {
        let text = format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags);
        HeaderValue::from_str(&text).expect("hex and dashes are a valid header value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_parses() {
        let t = Traceparent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(t.flags, 1);
    }

    #[test]
    fn each_way_the_spec_rejects_is_refused() {
        let bad = |v: &str| Traceparent::parse(v.as_bytes()).unwrap_err();
        assert_eq!(
            bad("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            InvalidTraceparent::Version
        );
        assert_eq!(
            bad("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            InvalidTraceparent::ZeroTraceId
        );
        assert_eq!(
            bad("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            InvalidTraceparent::ZeroParentId
        );
        assert_eq!(
            bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"),
            InvalidTraceparent::Length
        );
        assert_eq!(
            bad("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"),
            InvalidTraceparent::Length
        );
        assert_eq!(
            bad("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            InvalidTraceparent::Format
        );
        assert_eq!(
            bad("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            InvalidTraceparent::Format
        );
        // A later version may carry more after a dash.
        assert!(Traceparent::parse(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"
        )
        .is_ok());
    }

    #[test]
    fn a_child_keeps_the_trace_and_names_this_span_as_parent() {
        let id = uuid::Uuid::from_bytes([7; 16]);
        let parent = Traceparent::parse(VALID.as_bytes()).unwrap();
        let ctx = TraceContext::new(&id, TraceStart::Continue(parent, None));
        assert_eq!(
            ctx.child_traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0707070707070707-01"
        );
        let started = TraceContext::new(&id, TraceStart::Start);
        assert_eq!(started.trace_id(), TraceId([7; 16]));
        assert_eq!(started.parent_id(), None);
    }
}
