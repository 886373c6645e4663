//! Bounded label values: methods from a fixed set, routes from templates, and a hard cap.

use std::{fmt, sync::Arc};

use http::Method;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// The method labels: the nine standard methods, then `other`.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
];

/// The method label's index in [`METHODS`].
#[inline]
pub(crate) fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// The route label for requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The route label once the distinct-route cap is reached.
pub const OVERFLOW: &str = "overflow";

/// A route template as a label value, shared rather than copied.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct RouteLabel(pub(crate) Arc<str>);

impl fmt::Debug for RouteLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}
