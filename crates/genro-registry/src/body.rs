use genro_envelope::{BodyWatch, WatchedBody};

use crate::future::Tracking;

/// Response body of [`Registry`](crate::Registry): the request stays in the registry until
/// this body has ended, failed or been dropped.
pub type ResponseBody<B> = WatchedBody<B, Tracking>;

impl BodyWatch for Tracking {}
