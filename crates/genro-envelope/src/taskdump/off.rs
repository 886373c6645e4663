//! A build without tracing: every answer says how to turn it on.

use super::{DumpLimits, TaskTrace, TraceUnavailable};

pub(super) const AVAILABLE: bool = false;

/// What is missing, said once for the whole build.
pub(super) const NOT_BUILT: &str = if !cfg!(all(
    target_os = "linux",
    any(
        target_arch = "aarch64",
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "s390x"
    )
)) {
    "task dumps are not available: tokio traces tasks only on Linux (x86_64, aarch64, x86, s390x)"
} else if !cfg!(feature = "taskdump") {
    "task dumps are not in this build: turn on the `taskdump` feature (of genro-envelope, \
     genro-server or genro-asgi) and build with RUSTFLAGS=\"--cfg tokio_unstable\""
} else {
    "task dumps are not in this build: the `taskdump` feature is on, but the build lacks \
     RUSTFLAGS=\"--cfg tokio_unstable\""
};

#[derive(Debug, Default)]
pub(super) struct Gate;

impl Gate {
    #[allow(clippy::unused_async, clippy::unused_self)]
    pub(super) async fn traces(
        &self,
        _: DumpLimits,
        envelopes: Vec<&crate::RequestEnvelope>,
    ) -> Vec<Result<TaskTrace, TraceUnavailable>> {
        vec![Err(TraceUnavailable::NotBuilt); envelopes.len()]
    }
}
