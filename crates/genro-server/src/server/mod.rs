//! [`AsgiServer`]: a configuration in, a served application out, with its lifecycle around
//! it. A run is a few named steps: start (logging, background parts, process pool), listen,
//! the `on_startup` hooks, serve until a signal or the handle, drain, the `on_shutdown` hooks.
//!
//! The files below this one: `handle` ([`ServerHandle`]), `startup` (what starts and stops with
//! the server, [`StartError`]), `listen` (the sockets, bound or inherited), `signals`, `reload`,
//! `wait` (serving until a stop or an upgrade), `drain` (the stop), `upgrade` (a new process
//! takes the sockets over), `systemd` (the notify protocol) and `pid_file`.

mod drain;
mod handle;
mod listen;
mod pid_file;
mod reload;
mod signals;
mod startup;
mod systemd;
#[cfg(unix)]
mod upgrade;
mod wait;
mod workers;

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use genro_envelope::EnvelopeLayer;
use genro_errors::{BoxError, Error, ErrorLayer};
use genro_metrics::MetricsCollector;
use genro_registry::EnvelopeRegistry;

pub use handle::ServerHandle;
#[cfg(test)]
pub(crate) use reload::LIVE;
pub use startup::StartError;

use self::{
    listen::{Inherited, Listeners},
    pid_file::PidFile,
    signals::Signals,
    startup::{Parts, ServerCollector},
    systemd::Systemd,
    wait::{prepare_upgrade, wait_for_shutdown, Stop},
    workers::WorkerThreads,
};
use crate::{
    config::{Config, Runtime},
    conn::{self, Connections, Port, Spread},
    executor::{Executors, ProcessJobs},
    logging::{self, Logging},
    request::{
        adapter::PortService,
        app::{IntoApplication, RequestLayers},
        builtins::{self, Builtins, WithBuiltins},
        edge,
    },
    state::{Lifecycle, ListenAddrs, ServerContext},
};

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
    process_jobs: Option<ProcessJobs>,
    errors: ErrorLayer,
    envelope: EnvelopeLayer,
    /// The sockets passed by the environment, taken by `run` before its runtime starts.
    inherited: Option<Inherited>,
    /// The other workers' runtimes (`runtime = per_core`), which share the main port's
    /// connections with the runtime that serves.
    other_workers: Vec<tokio::runtime::Handle>,
}

impl fmt::Debug for AsgiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsgiServer")
            .field("config", &self.context.config().path())
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
        Self {
            context: ServerContext::new(config),
            startup: Vec::new(),
            shutdown: Vec::new(),
            install_logging: true,
            process_jobs: None,
            errors: ErrorLayer::new(),
            envelope: EnvelopeLayer::new(),
            inherited: None,
            other_workers: Vec::new(),
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
        ServerHandle::new(self.context.clone())
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
    pub fn executors(&self) -> &Executors {
        self.context.executors()
    }

    /// The jobs the process pool runs (`[executors] processes`). The binary must call
    /// [`ProcessJobs::serve_if_worker`](ProcessJobs::serve_if_worker) with the
    /// same jobs first thing in `main`, since the workers are this binary in worker mode.
    #[must_use]
    pub fn process_jobs(mut self, jobs: ProcessJobs) -> Self {
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

    /// Serves `app` until SIGINT, SIGTERM or [`ServerHandle::shutdown`], on `[server] workers`
    /// threads that this call starts and ends, laid out as `[server] runtime` says
    /// ([`Runtime`](crate::config::Runtime)). Blocks.
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve); and when called inside a tokio runtime.
    pub fn run<A: IntoApplication>(mut self, app: A) -> Result<(), Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(StartError::NestedRuntime.into());
        }
        // Before the runtime's threads start: taking them changes the environment.
        self.inherited = Some(Inherited::from_env()?);
        let config = self.config();
        let workers = config.server.worker_threads();
        let cannot = |e: std::io::Error| {
            StartError::Setup(format!(
                "server.workers: cannot start {workers} worker threads: {e}"
            ))
        };
        match config.server.runtime {
            Runtime::WorkStealing => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name("genro-worker")
                    .enable_all()
                    .build()
                    .map_err(cannot)?;
                runtime.block_on(self.serve(app))
            }
            Runtime::PerCore => {
                // This thread is the first worker; the others run their own runtimes.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(cannot)?;
                let others = WorkerThreads::start(workers - 1)?;
                self.other_workers = others.handles();
                let served = runtime.block_on(self.serve(app));
                others.stop();
                served
            }
        }
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

    /// A run, in its phases: set up, start up, open the doors, serve, drain.
    async fn serve_inner<A: IntoApplication>(mut self, app: A) -> Result<(), StartError> {
        // Installed first, for the whole run: a signal that comes while the server starts, or
        // while it handles another, waits its turn.
        let mut signals = Signals::install();
        let systemd = Systemd::from_env();
        let config = self.config();
        let logging = self.start_logging(&config)?;
        let (listeners, bound, started) = self.set_up(&config, logging.as_ref()).await?;
        let app = self.application(app, &config, &started);
        let upgrader = prepare_upgrade(&config, &listeners);
        self.context.shared.bound.send_replace(bound);
        let pid_file = match self.start_up(&config).await {
            Ok(pid_file) => pid_file,
            Err(e) => {
                self.context
                    .shared
                    .lifecycle
                    .send_replace(Lifecycle::Stopped);
                started.stop().await;
                return Err(e);
            }
        };
        let (loops, connections) = self.open::<A>(listeners, app, &config, &started);
        startup::announce(&config, bound);
        Self::report_ready(systemd);
        let pings = systemd.watchdog();

        let shared = &self.context.shared.clone();
        let stop = wait_for_shutdown(
            shared,
            &mut signals,
            &started,
            logging.as_ref(),
            systemd,
            upgrader,
        )
        .await;
        if stop == Stop::Asked {
            systemd.stopping();
            drain::delay_drain(shared, &config.shutdown, &mut signals).await;
        }
        if let Some(holds) = &started.holds {
            // Held requests are answered now: the drain waits for them like any other.
            holds.release_all();
        }
        drain::drain(shared, &config.shutdown, &connections, &mut signals).await;
        for task in loops {
            let _ = task.await;
        }
        self.run_shutdown_hooks().await;
        started.stop().await;
        if let Some(pings) = pings {
            pings.abort();
        }
        if let Some(pid_file) = pid_file {
            pid_file.remove();
        }
        shared.lifecycle.send_replace(Lifecycle::Stopped);
        tracing::info!("server stopped");
        Ok(())
    }

    /// Set up: the sockets (bound, or inherited), the background parts, the process pool and
    /// the debug console.
    async fn set_up(
        &mut self,
        config: &Config,
        logging: Option<&Logging>,
    ) -> Result<(Listeners, ListenAddrs, Parts), StartError> {
        // Before any process of its own starts: inherited sockets are marked close-on-exec.
        let inherited = match self.inherited.take() {
            Some(inherited) => inherited,
            None => Inherited::from_env()?,
        };
        let mut listeners = Listeners::open(config, inherited).await?;
        let mut started = Parts::start(&self.context, &self.errors, &self.envelope, config)?;
        startup::start_process_pool(&self.context, config, self.process_jobs.take())?;
        // Every address, the console's included, before the console takes its listener.
        let bound = listeners.bound();
        if let Some(listener) = listeners.debug.take() {
            let log_filter = logging.and_then(Logging::level_setter);
            if !self.install_logging && started.holds.is_some() {
                // The application's own panic hook stays; backtraces reach held errors too.
                genro_errors::install_panic_hook();
            }
            started.start_debug(&self.context, config, listener, log_filter)?;
        }
        Ok((listeners, bound, started))
    }

    /// Start up: the `on_startup` hooks, then the pid file. A failure stops the run; the
    /// background parts are the caller's to stop.
    async fn start_up(&mut self, config: &Config) -> Result<Option<PidFile>, StartError> {
        self.run_startup_hooks().await?;
        // Before the process says it is ready: a process that cannot name itself in the pid
        // file does not start, so an upgrade to it fails and the old process serves on with its
        // file, and `kill $(cat pid_file)` never names a process that has exited.
        match config.server.pid_file.as_deref().map(PidFile::write) {
            None => Ok(None),
            Some(Ok(pid_file)) => Ok(Some(pid_file)),
            Some(Err(e)) => {
                self.run_shutdown_hooks().await;
                Err(StartError::Setup(e))
            }
        }
    }

    /// Open the doors: ready, then accepting on every listener.
    fn open<S: IntoApplication>(
        &self,
        listeners: Listeners,
        app: WithBuiltins<S::Service>,
        config: &Config,
        started: &Parts,
    ) -> (Vec<tokio::task::JoinHandle<()>>, Arc<Connections>) {
        // Ready before the first connection is accepted: the sockets already listen (the
        // start-up hooks may have told a client where), and a connection the kernel queued
        // meanwhile must find the server ready, not a "not ready" from a race with this line.
        let shared = &self.context.shared;
        shared
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        shared.lifecycle.send_replace(Lifecycle::Serving);
        let connections = self.count_connections(config);
        // Two types of served application, one with tower-http's CORS and compression and one
        // without: an application that does not use them does not carry their (larger) service
        // and response future through every request.
        let loops = if edge::is_configured(config) {
            let app = edge::wrap(app, config, &started.cors_origins);
            self.accept(listeners, app, config, started, &connections)
        } else {
            let app = edge::plain(app, config);
            self.accept(listeners, app, config, started, &connections)
        };
        (loops, connections)
    }

    /// Tells systemd, and the process that started this one by an upgrade, that the server is
    /// ready.
    fn report_ready(systemd: Systemd) {
        #[cfg(unix)]
        {
            let upgraded = upgrade::UpgradeNotify::from_env();
            systemd.ready(upgraded.is_some());
            if let Some(upgraded) = upgraded {
                upgraded.ready();
            }
        }
        #[cfg(not(unix))]
        systemd.ready(false);
    }

    fn start_logging(&self, config: &Config) -> Result<Option<Logging>, StartError> {
        if !self.install_logging {
            return Ok(None);
        }
        let section = &config.logging;
        logging::install(&section.level, &section.format, section.file.as_deref())
            .map(Some)
            .map_err(|e| StartError::Setup(e.to_string()))
    }

    /// The application as the main port serves it, but for the edge layers: inside its request
    /// layers, behind the server's own endpoints.
    fn application<A: IntoApplication>(
        &self,
        app: A,
        config: &Config,
        started: &Parts,
    ) -> WithBuiltins<A::Service> {
        let layers = RequestLayers::new(started.genro.clone(), &config.limits);
        WithBuiltins::new(
            app.into_service(&layers),
            Builtins::main(config, &self.context),
        )
    }

    async fn run_startup_hooks(&mut self) -> Result<(), StartError> {
        for (index, hook) in std::mem::take(&mut self.startup).into_iter().enumerate() {
            hook(self.context())
                .await
                .map_err(|source| StartError::Hook {
                    index: index + 1,
                    source,
                })?;
        }
        Ok(())
    }

    async fn run_shutdown_hooks(&mut self) {
        for (index, hook) in std::mem::take(&mut self.shutdown).into_iter().enumerate() {
            if let Err(e) = hook(self.context()).await {
                tracing::error!(hook = index + 1, error = %e, "on_shutdown hook failed");
            }
        }
    }

    /// The open connections of every port, counted in the server's own metrics.
    fn count_connections(&self, config: &Config) -> Arc<Connections> {
        let connections = Arc::new(Connections::default());
        let shared = &self.context.shared;
        shared
            .metrics
            .registry()
            .register_collector(Box::new(ServerCollector {
                shared: Arc::downgrade(shared),
                connections: connections.clone(),
                concurrency_limit: config.limits.concurrency_limit,
            }));
        connections
    }

    /// Starts accepting on every listener; each loop ends when the drain begins.
    fn accept<S, B>(
        &self,
        listeners: Listeners,
        app: S,
        config: &Config,
        started: &Parts,
        connections: &Arc<Connections>,
    ) -> Vec<tokio::task::JoinHandle<()>>
    where
        S: PortService<B>,
        B: conn::ResponseBody,
    {
        let limits = &config.limits;
        let port = Arc::new(
            Port::new(limits, limits.max_connections, connections.clone())
                .spread(Spread::new(self.other_workers.clone())),
        );
        let lifecycle = &self.context.shared.lifecycle;
        let tls = started
            .tls
            .clone()
            .map(|tls| (tls, config.ssl.handshake_timeout));
        let mut loops = vec![tokio::spawn(conn::accept_loop(
            listeners.main,
            app,
            port,
            tls,
            lifecycle.subscribe(),
        ))];
        if let Some(export) = listeners.export {
            loops.push(tokio::spawn(conn::accept_loop(
                export,
                builtins::export_port(config, &self.context),
                // Its own small budget: a scrape is answered while the main port is full.
                Arc::new(Port::new(
                    limits,
                    conn::MONITORING_CONNECTIONS,
                    connections.clone(),
                )),
                None,
                lifecycle.subscribe(),
            )));
        }
        loops
    }
}
