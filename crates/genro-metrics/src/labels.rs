//! Bounded label values: methods from a fixed set, routes from templates, and a hard cap.

use std::{fmt, sync::Arc};

use http::Method;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// The method label: one of the nine standard methods, or `other`.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
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
