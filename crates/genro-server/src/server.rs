//! `AsgiServer`: configuration in, a served application out, with its lifecycle around it.

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use arc_swap::ArcSwap;
use genro_envelope::EnvelopeLayer;
use genro_errors::{BoxError, ErrorLayer, TracebackSwitch};
use genro_metrics::MetricsCollector;
use genro_notify::{Notifiers, WebhookNotifier};
use genro_registry::EnvelopeRegistry;
use genro_stack::GenroLayer;
use genro_watchdog::{Watchdog, WatchdogConfig, WatchdogHandle};
use tokio::{net::TcpListener, sync::watch};
use tower::Layer;

use crate::{
    app::{AsgiApplication, Builtins, IntoApplication, RequestPath, ServerContext, Shared},
    conn::{self, Connections},
    logging, Config, Error,
};

/// Where the server is in its life. Ordered: each phase comes after the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lifecycle {
    Starting,
    Serving,
    Draining,
    Aborting,
    Stopped,
}

/// The addresses the server listens on, once bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bound {
    /// The main listener.
    pub main: Option<SocketAddr>,
    /// The metrics export listener (`[metrics] export_port`).
    pub export: Option<SocketAddr>,
}

/// Why the server could not start, or stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not bind.
    Bind {
        /// What it was for, and the key that set it.
        what: &'static str,
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// An `on_startup` hook failed.
    Hook {
        /// Which hook, from 1, in the order they were added.
        index: usize,
        /// Its error.
        source: BoxError,
    },
    /// Something the configuration asks for could not be set up.
    Setup(String),
    /// `run` was called inside a tokio runtime.
    NestedRuntime,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind { what, addr, source } => {
                write!(f, "{what}: cannot listen on {addr}: {source}")
            }
            Self::Hook { index, source } => write!(f, "on_startup hook {index} failed: {source}"),
            Self::Setup(why) => f.write_str(why),
            Self::NestedRuntime => f.write_str(
                "AsgiServer::run blocks and starts its own runtime: inside a tokio runtime, call \
                 `serve(app).await` instead",
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } => Some(source),
            Self::Hook { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

type Hook = Box<
    dyn FnOnce(ServerContext) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send,
>;

fn boxed_hook<F, Fut, E>(hook: F) -> Hook
where
    F: FnOnce(ServerContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    Box::new(move |ctx| Box::pin(async move { hook(ctx).await.map_err(Into::into) }))
}

/// Controls a server from outside: its bound addresses, readiness and shutdown. Cheap to clone;
/// get one with [`AsgiServer::handle`] before serving.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    bound: watch::Receiver<Bound>,
}

impl ServerHandle {
    /// The addresses once the server has bound them (at once if it has); `None` if the server
    /// stopped first.
    pub async fn bound(&self) -> Option<Bound> {
        let mut bound = self.bound.clone();
        let mut life = self.shared.lifecycle.subscribe();
        loop {
            let now = *bound.borrow_and_update();
            if now.main.is_some() {
                return Some(now);
            }
            if *life.borrow_and_update() >= Lifecycle::Stopped {
                return None;
            }
            tokio::select! {
                changed = bound.changed() => if changed.is_err() { return None },
                changed = life.changed() => if changed.is_err() { return None },
            }
        }
    }

    /// The main listener's address once bound (port 0 in the configuration picks a free one).
    pub async fn local_addr(&self) -> Option<SocketAddr> {
        self.bound().await.and_then(|b| b.main)
    }

    /// Starts the graceful drain, as SIGTERM does. Returns at once.
    pub fn shutdown(&self) {
        self.shared.begin_drain();
    }

    /// Whether the server reports itself ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    /// Waits until the server has stopped.
    pub async fn stopped(&self) {
        let mut life = self.shared.lifecycle.subscribe();
        let _ = life.wait_for(|l| *l == Lifecycle::Stopped).await;
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("bound", &*self.bound.borrow())
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// The genro-asgi server: a configuration, the infrastructure it describes (logging, metrics,
/// registry, watchdog, notifications), and the application served with the whole request path.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use genro_server::AsgiServer;
///
/// fn main() -> Result<(), genro_server::Error> {
///     let app = Router::new().route("/", get(|| async { "hello" }));
///     AsgiServer::from_config_path("server.ini")?.run(app)
/// }
/// ```
pub struct AsgiServer {
    context: ServerContext,
    startup: Vec<Hook>,
    shutdown: Vec<Hook>,
    install_logging: bool,
    process_jobs: Option<crate::executor::ProcessJobs>,
    errors: ErrorLayer,
    envelope: EnvelopeLayer,
}

impl fmt::Debug for AsgiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsgiServer")
            .field("config", &self.context.shared.config.load().path())
            .field("on_startup", &self.startup.len())
            .field("on_shutdown", &self.shutdown.len())
            .finish_non_exhaustive()
    }
}

impl AsgiServer {
    /// A server configured by the `.ini` file at `path`, with `GENRO_ASGI_*` overrides.
    ///
    /// # Errors
    ///
    /// The configuration cannot be used; the error lists every problem, each naming its key,
    /// source and value.
    pub fn from_config_path(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        Ok(Self::from_config(Config::from_path(path)?))
    }

    /// A server with this configuration.
    #[must_use]
    pub fn from_config(config: Config) -> Self {
        let metrics = MetricsCollector::with_max_routes(config.metrics.max_routes);
        let executors = config.executors.clone();
        let threads = crate::app::per_cpu(executors.threads);
        let (lifecycle, _) = watch::channel(Lifecycle::Starting);
        let (bound, _) = watch::channel(Bound::default());
        Self {
            context: ServerContext {
                shared: Arc::new(Shared {
                    config: ArcSwap::from_pointee(config),
                    registry: EnvelopeRegistry::new(),
                    metrics,
                    ready: std::sync::atomic::AtomicBool::new(false),
                    lifecycle,
                    bound,
                    executors: crate::executor::Executors::new(crate::executor::ThreadPool::new(
                        threads,
                        executors.queue,
                    )),
                }),
            },
            startup: Vec::new(),
            shutdown: Vec::new(),
            install_logging: true,
            process_jobs: None,
            errors: ErrorLayer::new(),
            envelope: EnvelopeLayer::new(),
        }
    }

    /// The configuration (see [`ServerContext::config`]).
    #[must_use]
    pub fn config(&self) -> Arc<Config> {
        self.context.config()
    }

    /// The registry of in-flight requests.
    #[must_use]
    pub fn registry(&self) -> &EnvelopeRegistry {
        self.context.registry()
    }

    /// The metrics collector; register your own metrics in `metrics().registry()`.
    #[must_use]
    pub fn metrics(&self) -> &MetricsCollector {
        self.context.metrics()
    }

    /// What handlers receive as [`ServerContext`].
    #[must_use]
    pub fn context(&self) -> ServerContext {
        self.context.clone()
    }

    /// A handle to the running server: bound address, readiness, shutdown.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.context.shared.clone(),
            bound: self.context.shared.bound.subscribe(),
        }
    }

    /// Runs `hook` before the server accepts connections; hooks run in the order added, and
    /// one that fails stops the start with its error.
    #[must_use]
    pub fn on_startup<F, Fut, E>(mut self, hook: F) -> Self
    where
        F: FnOnce(ServerContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.startup.push(boxed_hook(hook));
        self
    }

    /// Runs `hook` after the drain; a failing hook is logged and the next one still runs.
    #[must_use]
    pub fn on_shutdown<F, Fut, E>(mut self, hook: F) -> Self
    where
        F: FnOnce(ServerContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.shutdown.push(boxed_hook(hook));
        self
    }

    /// The executors: blocking work and process jobs (the process pool starts with the server).
    #[must_use]
    pub fn executors(&self) -> &crate::executor::Executors {
        self.context.executors()
    }

    /// The jobs the process pool runs (`[executors] processes`). The binary must call
    /// [`ProcessJobs::serve_if_worker`](crate::executor::ProcessJobs::serve_if_worker) with the
    /// same jobs first thing in `main`, since the workers are this binary in worker mode.
    #[must_use]
    pub fn process_jobs(mut self, jobs: crate::executor::ProcessJobs) -> Self {
        self.process_jobs = Some(jobs);
        self
    }

    /// The error layer's own settings (handlers by error type, observers, the `critical_when`
    /// rule). The server adds `show_traceback` and the notifiers from the configuration.
    #[must_use]
    pub fn errors(mut self, layer: ErrorLayer) -> Self {
        self.errors = layer;
        self
    }

    /// The envelope layer's settings (id header, response id).
    #[must_use]
    pub fn envelope(mut self, layer: EnvelopeLayer) -> Self {
        self.envelope = layer;
        self
    }

    /// Leaves logging alone: for applications that install their own tracing subscriber. (When
    /// one is already installed, the server keeps it anyway.)
    #[must_use]
    pub fn without_logging(mut self) -> Self {
        self.install_logging = false;
        self
    }

    /// Serves `app` until SIGINT, SIGTERM or [`ServerHandle::shutdown`], on a tokio runtime of
    /// `[server] workers` threads that this call starts and ends. Blocks.
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve); and when called inside a tokio runtime.
    pub fn run<A: IntoApplication>(self, app: A) -> Result<(), Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(StartError::NestedRuntime.into());
        }
        let workers = crate::app::per_cpu(self.config().server.workers);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("genro-worker")
            .enable_all()
            .build()
            .map_err(|e| {
                StartError::Setup(format!(
                    "server.workers: cannot start {workers} worker threads: {e}"
                ))
            })?;
        runtime.block_on(self.serve(app))
    }

    /// Serves `app` on the current tokio runtime until SIGINT, SIGTERM or
    /// [`ServerHandle::shutdown`], then drains and runs the `on_shutdown` hooks.
    ///
    /// # Errors
    ///
    /// A listener cannot bind, an `on_startup` hook fails, or something the configuration asks
    /// for cannot be set up (the log file, the webhook).
    pub async fn serve<A: IntoApplication>(self, app: A) -> Result<(), Error> {
        let result = self.serve_inner(app).await;
        result.map_err(Into::into)
    }

    async fn serve_inner<A: IntoApplication>(mut self, app: A) -> Result<(), StartError> {
        let config = self.config();
        let logging = if self.install_logging {
            Some(logging::install(&config.logging).map_err(|e| StartError::Setup(e.to_string()))?)
        } else {
            None
        };
        let shared = self.context.shared.clone();
        let started = Started::start(&self, &config)?;
        if config.executors.processes > 0 {
            let Some(jobs) = self.process_jobs.take() else {
                return Err(StartError::Setup(format!(
                    "executors.processes: {} workers asked for, but no process jobs are registered \
                     (AsgiServer::process_jobs)",
                    config.executors.processes
                )));
            };
            let pool = crate::executor::ProcessPool::start(
                jobs,
                config.executors.processes,
                config.executors.process_queue,
                config.executors.job_timeout,
            )
            .map_err(StartError::Setup)?;
            shared.executors.set_processes(pool);
        }

        let path = RequestPath {
            genro: started.genro.clone(),
            timeout: config.limits.request_timeout,
            concurrency: (config.limits.concurrency_limit > 0).then(|| {
                tower::limit::GlobalConcurrencyLimitLayer::new(config.limits.concurrency_limit)
            }),
        };
        let context = self.context();
        let metrics_on_main = config.metrics.enabled && config.metrics.export_port.is_none();
        let builtins = Arc::new(Builtins {
            metrics: metrics_on_main
                .then(|| (config.metrics.endpoint.clone(), shared.metrics.endpoint())),
            health: config
                .health
                .enabled
                .then(|| (config.health.live.clone(), config.health.ready.clone())),
            context: context.clone(),
        });
        let body_limit = usize::try_from(config.limits.body_limit).unwrap_or(usize::MAX);
        let application = AsgiApplication::new(app.into_service(&path), builtins);
        // Compression and CORS only when configured: each costs a wrapper per request.
        let application = if config.compression.enabled {
            tower::util::Either::Left(
                tower::ServiceBuilder::new()
                    .map_response(|r: http::Response<_>| r.map(crate::edge::EdgeBody::compressed))
                    .layer(crate::edge::compression(&config.compression))
                    .service(application),
            )
        } else {
            tower::util::Either::Right(
                tower::ServiceBuilder::new()
                    .map_response(|r: http::Response<_>| r.map(crate::edge::EdgeBody::plain))
                    .service(application),
            )
        };
        let application = if config.cors.enabled {
            tower::util::Either::Left(
                crate::edge::cors(&config.cors, &started.cors_origins).layer(application),
            )
        } else {
            tower::util::Either::Right(application)
        };
        let application =
            tower_http::limit::RequestBodyLimitLayer::new(body_limit).layer(application);

        let main_addr = format!("{}:{}", config.server.host, config.server.port);
        let listener = TcpListener::bind(&main_addr)
            .await
            .map_err(|source| StartError::Bind {
                what: "server.host/server.port",
                addr: main_addr.clone(),
                source,
            })?;
        let export = match (config.metrics.enabled, config.metrics.export_port) {
            (true, Some(port)) => {
                let addr = format!("{}:{port}", config.server.host);
                Some(
                    TcpListener::bind(&addr)
                        .await
                        .map_err(|source| StartError::Bind {
                            what: "metrics.export_port",
                            addr,
                            source,
                        })?,
                )
            }
            _ => None,
        };
        let bound = Bound {
            main: listener.local_addr().ok(),
            export: export.as_ref().and_then(|l| l.local_addr().ok()),
        };
        self.context.shared.bound.send_replace(bound);

        for (index, hook) in std::mem::take(&mut self.startup).into_iter().enumerate() {
            if let Err(source) = hook(context.clone()).await {
                shared.lifecycle.send_replace(Lifecycle::Stopped);
                started.stop().await;
                return Err(StartError::Hook {
                    index: index + 1,
                    source,
                });
            }
        }

        let limits = Arc::new(config.limits.clone());
        let builder = Arc::new(conn::builder(&limits));
        let connections = Arc::new(Connections::new(limits.max_connections));
        shared
            .metrics
            .registry()
            .register_collector(Box::new(ServerCollector {
                shared: Arc::downgrade(&shared),
                connections: connections.clone(),
            }));
        let mut loops = Vec::new();
        loops.push(tokio::spawn(conn::accept_loop(
            listener,
            application,
            builder.clone(),
            limits.clone(),
            connections.clone(),
            started
                .tls
                .clone()
                .map(|tls| (tls, config.ssl.handshake_timeout)),
            shared.lifecycle.subscribe(),
        )));
        if let Some(export) = export {
            let exporter = AsgiApplication::new(
                tower::service_fn(|_req: http::Request<_>| async {
                    let mut res =
                        http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
                            b"not found: this port serves the metrics only\n",
                        )));
                    *res.status_mut() = http::StatusCode::NOT_FOUND;
                    Ok::<_, std::convert::Infallible>(res)
                }),
                Arc::new(Builtins {
                    metrics: Some((config.metrics.endpoint.clone(), shared.metrics.endpoint())),
                    health: None,
                    context: context.clone(),
                }),
            );
            loops.push(tokio::spawn(conn::accept_loop(
                export,
                exporter,
                builder,
                limits.clone(),
                connections.clone(),
                None,
                shared.lifecycle.subscribe(),
            )));
        }
        shared.ready.store(true, Ordering::Release);
        shared.lifecycle.send_replace(Lifecycle::Serving);
        announce(&config, bound);

        wait_for_shutdown(&shared, &started, logging.as_ref()).await;
        drain(&shared, &config, &connections).await;
        for task in loops {
            let _ = task.await;
        }
        for (index, hook) in std::mem::take(&mut self.shutdown).into_iter().enumerate() {
            if let Err(e) = hook(context.clone()).await {
                tracing::error!(hook = index + 1, error = %e, "on_shutdown hook failed");
            }
        }
        started.stop().await;
        shared.lifecycle.send_replace(Lifecycle::Stopped);
        tracing::info!("server stopped");
        Ok(())
    }
}

/// The server's own gauges, read at scrape time: where it is in its life (so a drain can be
/// followed on a dashboard), its open connections and its busy executor jobs.
#[derive(Debug)]
struct ServerCollector {
    // Weak: the collector lives in the metrics registry, which the server state owns.
    shared: std::sync::Weak<Shared>,
    connections: Arc<Connections>,
}

impl prometheus_client::collector::Collector for ServerCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::{encoding::EncodeMetric, metrics::gauge::ConstGauge};
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let phase = match *shared.lifecycle.borrow() {
            Lifecycle::Starting => 0,
            Lifecycle::Serving => 1,
            Lifecycle::Draining => 2,
            Lifecycle::Aborting => 3,
            Lifecycle::Stopped => 4,
        };
        let gauges = [
            (
                "server_phase",
                "Where the server is: 0 starting, 1 serving, 2 draining, 3 aborting what outlived the drain, 4 stopped",
                phase,
            ),
            (
                "server_connections_open",
                "Open client connections",
                i64::try_from(self.connections.open()).unwrap_or(i64::MAX),
            ),
            (
                "server_executor_jobs",
                "Blocking jobs running or waiting on the thread pool",
                i64::try_from(shared.executors.threads().busy()).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// The background parts that start with the server and stop with it.
struct Started {
    genro: GenroLayer,
    watchdog: Option<WatchdogHandle>,
    traceback: TracebackSwitch,
    tls: Option<Arc<crate::tls::Tls>>,
    cors_origins: crate::edge::LiveOrigins,
}

impl Started {
    fn start(server: &AsgiServer, config: &Config) -> Result<Self, StartError> {
        let shared = &server.context.shared;
        let metrics = &shared.metrics;
        let notifiers = if config.errors.notify_critical {
            let url = config.errors.notify_webhook.as_deref().unwrap_or_default();
            let webhook = WebhookNotifier::builder(url)
                .and_then(genro_notify::WebhookBuilder::build)
                .map_err(|e| StartError::Setup(format!("errors.notify_webhook: {e}")))?;
            webhook.register_metrics(&mut metrics.registry());
            Notifiers::new().with("webhook", webhook)
        } else {
            Notifiers::new()
        };
        let switch = TracebackSwitch::new(config.errors.show_traceback);
        let errors = server
            .errors
            .clone()
            .traceback_switch(&switch)
            .notifiers(notifiers.clone());
        {
            let mut registry = metrics.registry();
            errors.register_metrics(&mut registry);
            server.envelope.register_metrics(&mut registry);
            shared.registry.register_metrics(&mut registry);
        }
        if config.metrics.process {
            metrics.register_process_metrics();
        }
        let watchdog = if config.watchdog.enabled {
            let watchdog = Watchdog::new(
                shared.registry.clone(),
                WatchdogConfig {
                    interval: config.watchdog.interval,
                    timeout: config.watchdog.timeout,
                    critical: config.watchdog.critical,
                },
            )
            .notifiers(notifiers);
            watchdog.register_metrics(&mut metrics.registry());
            Some(
                watchdog
                    .spawn()
                    .map_err(|e| StartError::Setup(e.to_string()))?,
            )
        } else {
            None
        };
        let genro = GenroLayer::new(&shared.registry, metrics)
            .envelope(server.envelope.clone())
            .errors(errors);
        let tls = if config.ssl.enabled {
            Some(Arc::new(
                crate::tls::Tls::new(&config.ssl).map_err(StartError::Setup)?,
            ))
        } else {
            None
        };
        Ok(Self {
            genro,
            watchdog,
            traceback: switch,
            tls,
            cors_origins: Arc::new(ArcSwap::from_pointee(config.cors.allow_origins.clone())),
        })
    }

    async fn stop(self) {
        if let Some(watchdog) = self.watchdog {
            watchdog.stop().await;
        }
    }
}

fn announce(config: &Config, bound: Bound) {
    let Some(main) = bound.main else { return };
    let scheme = if config.ssl.enabled { "https" } else { "http" };
    let metrics = match (config.metrics.enabled, bound.export) {
        (false, _) => "off".to_owned(),
        (true, Some(export)) => format!("http://{export}{}", config.metrics.endpoint),
        (true, None) => format!("{scheme}://{main}{}", config.metrics.endpoint),
    };
    tracing::info!(
        address = %main,
        metrics = %metrics,
        health = config.health.enabled.then_some(config.health.ready.as_str()),
        watchdog = config.watchdog.enabled,
        "listening on {scheme}://{main}"
    );
}

/// Serves until SIGINT, SIGTERM or a handle's shutdown, reloading the configuration on SIGHUP.
async fn wait_for_shutdown(shared: &Shared, started: &Started, logging: Option<&logging::Logging>) {
    let mut life = shared.lifecycle.subscribe();
    let mut reloads = reload_signals();
    loop {
        tokio::select! {
            _ = life.wait_for(|l| *l >= Lifecycle::Draining) => return,
            signal = shutdown_signal() => {
                tracing::info!(signal, "shutdown requested");
                return;
            }
            () = next_reload(&mut reloads) => reload(shared, started, logging),
        }
    }
}

#[cfg(unix)]
type Reloads = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Reloads = ();

#[cfg(unix)]
fn reload_signals() -> Reloads {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn reload_signals() -> Reloads {}

#[cfg(unix)]
async fn next_reload(reloads: &mut Reloads) {
    match reloads {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_reload(_: &mut Reloads) {
    std::future::pending().await;
}

/// Re-reads the configuration file and applies what can change live: the log level, the
/// watchdog's thresholds, `show_traceback`, the CORS origins and the TLS certificates. A broken file is refused and the running
/// configuration stays; changes that need a restart are logged and not applied.
fn reload(shared: &Shared, started: &Started, logging: Option<&logging::Logging>) {
    let old = shared.config.load_full();
    let Some(path) = old.path() else {
        tracing::warn!("SIGHUP: the configuration was not read from a file; nothing to reload");
        return;
    };
    let new = match Config::from_path(path) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "SIGHUP: new configuration refused; the running one stays");
            return;
        }
    };
    let mut applied = Vec::new();
    if new.logging.level != old.logging.level {
        match logging.map(|l| l.set_level(&new.logging.level)) {
            Some(Ok(())) => applied.push("logging.level"),
            Some(Err(why)) => tracing::warn!(%why, "logging.level not changed"),
            None => tracing::warn!(
                "logging.level not changed: the application's own subscriber is in use"
            ),
        }
    }
    if new.errors.show_traceback != old.errors.show_traceback {
        started.traceback.set(new.errors.show_traceback);
        applied.push("errors.show_traceback");
    }
    if new.watchdog != old.watchdog {
        if let Some(watchdog) = &started.watchdog {
            let thresholds = WatchdogConfig {
                interval: new.watchdog.interval,
                timeout: new.watchdog.timeout,
                critical: new.watchdog.critical,
            };
            match watchdog.set_config(thresholds) {
                Ok(()) => applied.push("watchdog"),
                Err(e) => tracing::warn!(error = %e, "watchdog thresholds not changed"),
            }
        }
    }
    if new.cors.allow_origins != old.cors.allow_origins {
        started
            .cors_origins
            .store(Arc::new(new.cors.allow_origins.clone()));
        applied.push("cors.allow_origins");
    }
    let mut restart = Vec::new();
    if new.cors.enabled != old.cors.enabled {
        restart.push("cors.enabled");
    }
    if new.server != old.server {
        restart.push("[server] (host, port, workers, debug)");
    }
    if new.limits != old.limits {
        restart.push("[limits]");
    }
    match (&started.tls, new.ssl.enabled) {
        // The files are read again even when their paths did not change: renewed in place.
        (Some(tls), true) => match tls.reload(&new.ssl) {
            Ok(()) => applied.push("ssl certificates"),
            Err(why) => {
                tracing::error!(%why, "SIGHUP: certificates not reloaded; the current ones stay")
            }
        },
        (None, false) => {}
        _ => restart.push("[ssl] enabled"),
    }
    if new.metrics != old.metrics {
        restart.push("[metrics]");
    }
    if !restart.is_empty() {
        tracing::warn!(changes = ?restart, "SIGHUP: these changes need a restart and were not applied");
    }
    tracing::info!(applied = ?applied, "configuration reloaded");
    shared.config.store(Arc::new(new));
}

#[cfg(unix)]
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}

/// The bounded drain: readiness off, listeners closed, connections asked to close, in-flight
/// requests awaited until `drain_timeout`, then whatever is left aborted and reported. A second
/// signal aborts at once.
async fn drain(shared: &Shared, config: &Config, connections: &Connections) {
    let began = tokio::time::Instant::now();
    shared.begin_drain();
    let in_flight = shared.registry.len();
    tracing::info!(
        in_flight,
        connections = connections.open(),
        executor_jobs = shared.executors.threads().busy(),
        drain_timeout = ?config.shutdown.drain_timeout,
        "draining"
    );
    let idle = async {
        shared.registry.wait_idle(Duration::MAX).await;
        connections.closed().await;
        shared.executors.idle().await;
    };
    let finished = tokio::select! {
        () = idle => true,
        () = tokio::time::sleep(config.shutdown.drain_timeout) => false,
        signal = shutdown_signal() => {
            tracing::warn!(signal, "second signal: aborting the drain");
            false
        }
    };
    let mut aborted = 0;
    if !finished {
        for envelope in shared.registry.snapshot() {
            aborted += 1;
            tracing::warn!(
                request_id = %envelope.internal_id().hyphenated(),
                error_id = %envelope.short_id(),
                method = %envelope.method(),
                path = %genro_envelope::plumbing::truncated(envelope.path(), genro_notify::MAX_REPORTED_PATH),
                age_s = envelope.age().as_secs_f64(),
                phase = %envelope.phase(),
                "request aborted: it outlived the drain"
            );
        }
        shared.lifecycle.send_replace(Lifecycle::Aborting);
        // The connections drop their requests now; give their tasks a moment to end.
        let _ = tokio::time::timeout(Duration::from_secs(1), connections.closed()).await;
    }
    tracing::info!(
        finished = in_flight.saturating_sub(aborted),
        aborted,
        took_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
        "drain complete"
    );
}
