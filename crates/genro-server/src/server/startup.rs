//! Starting: what can stop a start ([`StartError`]), the background parts that start with the
//! server and stop with it, the listeners, and the server's own metrics.

use std::{fmt, sync::Arc};

use arc_swap::ArcSwap;
use genro_debug::{Holds, RemoteDebugServer, RunningDebugServer};
use genro_envelope::EnvelopeLayer;
use genro_errors::{BoxError, ErrorLayer, Problem, TracebackSwitch};
use genro_notify::{Notifiers, WebhookNotifier};
use genro_stack::GenroLayer;
use genro_watchdog::{Watchdog, WatchdogHandle};
use tokio::net::TcpListener;

use crate::{
    config::Config,
    conn::Connections,
    executor::{ProcessJobs, ProcessPool},
    request::{app::BodyTooLarge, edge::LiveOrigins},
    state::{Lifecycle, ListenAddrs, ServerContext, Shared},
    tls::Tls,
};

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

/// The server's own gauges, read at scrape time: where it is in its life (so a drain can be
/// followed on a dashboard), its open connections and its busy executor jobs.
#[derive(Debug)]
pub(crate) struct ServerCollector {
    // Weak: the collector lives in the metrics registry, which the server state owns.
    pub(crate) shared: std::sync::Weak<Shared>,
    pub(crate) connections: Arc<Connections>,
    /// `[limits] concurrency_limit`, exported so that an alert can compare the requests in
    /// flight with it.
    pub(crate) concurrency_limit: usize,
}

impl prometheus_client::collector::Collector for ServerCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::{
            encoding::EncodeMetric,
            metrics::{counter::ConstCounter, gauge::ConstGauge},
        };
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
        let accept_errors = ConstCounter::new(self.connections.accept_errors());
        accept_errors.encode(encoder.encode_descriptor(
            "server_accept_errors",
            "Accept errors other than a client's own (out of file descriptors or memory)",
            None,
            accept_errors.metric_type(),
        )?)?;
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
            (
                "server_concurrency_limit",
                "Most requests handled at once ([limits] concurrency_limit; 0 for no limit)",
                i64::try_from(self.concurrency_limit).unwrap_or(i64::MAX),
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
pub(crate) struct Parts {
    pub(crate) genro: GenroLayer,
    pub(crate) watchdog: Option<WatchdogHandle>,
    pub(crate) traceback: TracebackSwitch,
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) cors_origins: LiveOrigins,
    /// The requests held on error (`[debug] remote_pdb`).
    pub(crate) holds: Option<Holds>,
    /// The debug console, once its port is bound.
    pub(crate) debug: Option<RunningDebugServer>,
}

impl Parts {
    /// Starts them for `config`: notifications, the error layer with its live traceback
    /// switch, the metrics of every part, the watchdog, the request stack and TLS.
    pub(crate) fn start(
        context: &ServerContext,
        errors: &ErrorLayer,
        envelope: &EnvelopeLayer,
        config: &Config,
    ) -> Result<Self, StartError> {
        let shared = &context.shared;
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
        let mut errors = errors
            .clone()
            .traceback_switch(&switch)
            .notifiers(notifiers.clone())
            .framework_errors(config.errors.framework_errors)
            .client_error_level(config.errors.client_error_level)
            .client_error_lines_per_second(config.errors.client_error_lines_per_second)
            .handler("body_limit", |e: &BodyTooLarge, _envelope| {
                Problem::new(http::StatusCode::PAYLOAD_TOO_LARGE).detail(e.to_string())
            });
        let debug = &config.debug;
        // The console shows a request's headers: the envelope keeps a copy when it is on (and
        // when the application's own envelope layer asked for it).
        // Every envelope refers to the server's context: handlers reach it through the envelope
        // (the `ServerContext` extractor) rather than an extension of its own per request.
        let envelope = envelope
            .clone()
            .start_traces(config.logging.start_traces)
            .share(context.clone());
        let envelope = if debug.enabled {
            envelope.keep_headers(true)
        } else {
            envelope
        };
        let holds = (debug.enabled && debug.remote_pdb)
            .then(|| Holds::new(debug.hold_timeout, debug.max_held));
        if let Some(holds) = &holds {
            errors = holds.install(errors);
        }
        {
            let mut registry = metrics.registry();
            errors.register_metrics(&mut registry);
            envelope.register_metrics(&mut registry);
            shared.registry.register_metrics(&mut registry);
            if let Some(holds) = &holds {
                holds.register_metrics(&mut registry);
            }
        }
        if config.metrics.process {
            metrics.register_process_metrics();
        }
        // The process's one dumper: the watchdog, the console and the drain share its limits.
        genro_envelope::taskdump::TaskDumper::global().set_limits(config.taskdump.limits());
        let watchdog = if config.watchdog.enabled {
            let watchdog = Watchdog::new(shared.registry.clone(), config.watchdog.thresholds())
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
            .envelope(envelope)
            .errors(errors);
        let tls = if config.ssl.enabled {
            Some(Arc::new(Tls::new(&config.ssl).map_err(StartError::Setup)?))
        } else {
            None
        };
        Ok(Self {
            genro,
            watchdog,
            traceback: switch,
            tls,
            cors_origins: Arc::new(ArcSwap::from_pointee(config.cors.allow_origins.clone())),
            holds,
            debug: None,
        })
    }

    /// Starts the debug console on its bound `listener`, with the live log filter of `logging`.
    pub(crate) fn start_debug(
        &mut self,
        context: &ServerContext,
        config: &Config,
        listener: TcpListener,
        log_filter: Option<impl Fn(&str) -> Result<(), String> + Send + Sync + 'static>,
    ) -> Result<(), StartError> {
        let mut console =
            RemoteDebugServer::new(context.registry().clone(), config.debug.console())
                .map_err(|e| StartError::Setup(e.to_string()))?;
        if let Some(holds) = &self.holds {
            console = console.holds(holds);
        }
        if let Some(set) = log_filter {
            console = console.log_filter(set);
        }
        console.register_metrics(&mut context.metrics().registry());
        self.debug = Some(console.serve(listener));
        Ok(())
    }

    pub(crate) async fn stop(self) {
        if let Some(watchdog) = self.watchdog {
            watchdog.stop().await;
        }
        if let Some(debug) = self.debug {
            debug.stop().await;
        }
    }
}

pub(crate) fn announce(config: &Config, bound: ListenAddrs) {
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

/// Starts the process pool `[executors] processes` asks for, with `jobs`.
pub(crate) fn start_process_pool(
    context: &ServerContext,
    config: &Config,
    jobs: Option<ProcessJobs>,
) -> Result<(), StartError> {
    let executors = &config.executors;
    if executors.processes == 0 {
        return Ok(());
    }
    let Some(jobs) = jobs else {
        return Err(StartError::Setup(format!(
            "executors.processes: {} workers asked for, but no process jobs are registered \
             (AsgiServer::process_jobs)",
            executors.processes
        )));
    };
    let pool = ProcessPool::start(
        jobs,
        executors.processes,
        executors.process_queue,
        executors.job_timeout,
    )
    .map_err(StartError::Setup)?;
    context.executors().set_processes(pool);
    Ok(())
}
