//! The server's own endpoints (metrics, health) in front of the application.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use genro_metrics::{EndpointFuture, MetricsEndpoint};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower::Service;

use crate::{config::Config, state::ServerContext};

/// The application the server runs: the user's, inside its request layers, behind the
/// server's own endpoints.
pub(crate) struct WithBuiltins<S> {
    inner: S,
    builtins: Arc<Builtins>,
}

impl<S: Clone> Clone for WithBuiltins<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            builtins: self.builtins.clone(),
        }
    }
}

/// The server's own endpoints, answered before the application sees the request (they are not
/// enveloped or measured).
pub(crate) struct Builtins {
    metrics: Option<(String, MetricsEndpoint)>,
    health: Option<(String, String)>,
    context: ServerContext,
}

impl<S> WithBuiltins<S> {
    pub(crate) fn new(inner: S, builtins: Builtins) -> Self {
        Self {
            inner,
            builtins: Arc::new(builtins),
        }
    }
}

/// Response body of [`WithBuiltins`]: the application's, or one of the server's endpoints.
pub(crate) type BuiltinsBody<B> = Either<B, Full<Bytes>>;

pin_project! {
    #[project = StateProj]
    enum State<F> {
        App { #[pin] future: F },
        Metrics { future: EndpointFuture },
        Ready { response: Option<Response<Full<Bytes>>> },
    }
}

pin_project! {
    /// Response future of [`WithBuiltins`]: the application's, or one of the server's own
    /// endpoints'.
    pub(crate) struct BuiltinsFuture<F> {
        #[pin]
        state: State<F>,
    }
}

impl<F, B> Future for BuiltinsFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<BuiltinsBody<B>>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::App { future } => {
                future.poll(cx).map(|r| r.map(|res| res.map(Either::Left)))
            }
            StateProj::Metrics { future } => future
                .as_mut()
                .poll(cx)
                .map(|r| r.map(|res| res.map(Either::Right))),
            StateProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("polled after completion")
                .map(Either::Right))),
        }
    }
}

fn text_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl Builtins {
    /// The main port's: the metrics (unless they have a port of their own) and health.
    pub(crate) fn main(config: &Config, context: &ServerContext) -> Self {
        let metrics = &config.metrics;
        Self {
            metrics: (metrics.enabled && metrics.export_port.is_none())
                .then(|| (metrics.endpoint.clone(), context.metrics().endpoint())),
            health: config
                .health
                .enabled
                .then(|| (config.health.live.clone(), config.health.ready.clone())),
            context: context.clone(),
        }
    }

    /// The export port's: the metrics only.
    fn export(config: &Config, context: &ServerContext) -> Self {
        Self {
            metrics: Some((
                config.metrics.endpoint.clone(),
                context.metrics().endpoint(),
            )),
            health: None,
            context: context.clone(),
        }
    }

    fn health_response(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        let (live, ready) = self.health.as_ref()?;
        if path == live {
            Some(text_response(StatusCode::OK, "live\n"))
        } else if path == ready {
            Some(if self.context.is_ready() {
                text_response(StatusCode::OK, "ready\n")
            } else {
                let mut res = text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n");
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                res
            })
        } else {
            None
        }
    }
}

impl<S, ReqBody, B> Service<Request<ReqBody>> for WithBuiltins<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>, Error = Infallible>,
{
    type Response = Response<BuiltinsBody<B>>;
    type Error = Infallible;
    type Future = BuiltinsFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let builtins = &*self.builtins;
        let path = req.uri().path();
        if let Some((endpoint, metrics)) = &builtins.metrics {
            if path == endpoint {
                return BuiltinsFuture {
                    state: State::Metrics {
                        future: metrics.clone().call(req),
                    },
                };
            }
        }
        if let Some(response) = builtins.health_response(path) {
            return BuiltinsFuture {
                state: State::Ready {
                    response: Some(response),
                },
            };
        }
        BuiltinsFuture {
            state: State::App {
                future: self.inner.call(req),
            },
        }
    }
}

/// What the export port (`[metrics] export_port`) serves: the metrics, and 404 for anything
/// else.
pub(crate) fn export_port<B>(
    config: &Config,
    context: &ServerContext,
) -> WithBuiltins<
    impl Service<
            Request<B>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
> {
    let not_found = tower::service_fn(|_req: Request<B>| async {
        Ok::<_, Infallible>(text_response(
            StatusCode::NOT_FOUND,
            "not found: this port serves the metrics only\n",
        ))
    });
    WithBuiltins::new(not_found, Builtins::export(config, context))
}
