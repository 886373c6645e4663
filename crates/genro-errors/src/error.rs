use std::{
    backtrace::{Backtrace, BacktraceStatus},
    error::Error as StdError,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use http::StatusCode;

/// A boxed error, as tower layers pass them around.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An application error, returned by handlers and rendered centrally by
/// [`ErrorLayer`](crate::ErrorLayer).
///
/// Any `std::error::Error + Send + Sync + 'static` converts into it, so `?` works in a handler
/// returning `Result<T, genro_errors::Error>`. A backtrace is captured when the process enables
/// them (`RUST_BACKTRACE` or `RUST_LIB_BACKTRACE`); capturing costs nothing otherwise.
///
/// With the `axum` feature it is an `IntoResponse`: the error travels to the layer inside the
/// response, where the handler registered for its type (or the default) renders it, and it is
/// logged and counted once.
pub struct Error {
    pub(crate) inner: Box<Inner>,
}

pub(crate) struct Inner {
    pub(crate) error: BoxError,
    pub(crate) status: Option<StatusCode>,
    pub(crate) backtrace: Backtrace,
}

impl Error {
    /// Wraps an error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self {
            inner: Box::new(Inner {
                error: error.into(),
                status: None,
                backtrace: Backtrace::capture(),
            }),
        }
    }

    /// An error from a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::new(message.to_string())
    }

    /// Answers with this status unless a handler registered for the error's type decides.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// The wrapped error.
    #[must_use]
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner.error
    }

    /// The status set by [`with_status`](Self::with_status).
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    pub(crate) fn backtrace_text(&self) -> Option<String> {
        (self.inner.backtrace.status() == BacktraceStatus::Captured)
            .then(|| self.inner.backtrace.to_string())
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Self::new(error)
    }
}

/// The wrapped error's own Debug output (and the status, when one was set), so that `main`
/// returning `Result<(), genro_errors::Error>` prints the error itself.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.status {
            None => fmt::Debug::fmt(&self.inner.error, f),
            Some(status) => f
                .debug_struct("Error")
                .field("error", &self.inner.error)
                .field("status", &status)
                .finish(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.error, f)
    }
}

/// Carries an [`Error`] from a handler to the layer inside response extensions (which need
/// `Clone`); the layer takes it out once.
#[derive(Clone)]
pub(crate) struct Carried(pub(crate) Arc<Mutex<Option<Error>>>);

impl Carried {
    pub(crate) fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Error {
    fn into_response(self) -> axum_core::response::Response {
        // Without the layer, this is all the client sees: the status and no detail.
        let status = self
            .inner
            .status
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = axum_core::response::Response::new(axum_core::body::Body::empty());
        *response.status_mut() = status;
        response
            .extensions_mut()
            .insert(Carried(Arc::new(Mutex::new(Some(self)))));
        response
    }
}

/// The error chain, outermost first, as one line.
/// Each error of the `source()` chain, outermost first.
pub(crate) fn chain_list(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    chain
}
