use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use genro_envelope::{
    taskdump::{TaskDumper, TraceReport},
    RequestEnvelope,
};
use genro_registry::EnvelopeRegistry;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};
use uuid::Uuid;

use genro_notify::{Notification, Notifier, Notifiers, RequestInfo, Severity};

/// Thresholds of a [`Watchdog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// Time between scans.
    pub interval: Duration,
    /// Age past which a request is reported once, at warning level.
    pub timeout: Duration,
    /// Age past which a request is reported once more, at error level, and notified.
    pub critical: Duration,
}

impl Default for WatchdogConfig {
    /// The seed's values: scan every 30 s, warn after 60 s, alert after 5 min.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
            critical: Duration::from_secs(300),
        }
    }
}

impl WatchdogConfig {
    /// Checks that the thresholds make sense together.
    ///
    /// # Errors
    ///
    /// A zero interval or timeout, or `critical` not above `timeout`.
    pub fn validate(&self) -> Result<(), WatchdogError> {
        if self.interval.is_zero() {
            return Err(WatchdogError(
                "watchdog.interval: must be more than zero".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(WatchdogError(
                "watchdog.timeout: must be more than zero".into(),
            ));
        }
        if self.critical <= self.timeout {
            return Err(WatchdogError(format!(
                "watchdog.critical: must be above watchdog.timeout ({:?}), got {:?}",
                self.timeout, self.critical
            )));
        }
        Ok(())
    }
}

/// Why a watchdog cannot run as asked: thresholds that do not fit together (the message names
/// the setting), or no tokio runtime to spawn it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogError(String);

impl fmt::Display for WatchdogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WatchdogError {}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: &'static str,
}

#[derive(Clone, Default)]
struct Metrics {
    reports: Family<SeverityLabel, Counter>,
    stuck: Family<SeverityLabel, Gauge>,
}

impl Metrics {
    fn label(severity: Severity) -> SeverityLabel {
        SeverityLabel {
            severity: severity.as_str(),
        }
    }
}

/// What one scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanSummary {
    /// Requests visited.
    pub visited: usize,
    /// Requests past `timeout` but not `critical`.
    pub warning: usize,
    /// Requests past `critical`.
    pub critical: usize,
    /// New warning-level reports made by this scan.
    pub reported_warning: usize,
    /// New critical-level reports (and notifications) made by this scan.
    pub reported_critical: usize,
    /// Requests a debugger holds ([`Phase::Held`](genro_envelope::Phase::Held)): never
    /// reported, whatever their age.
    pub held: usize,
}

/// One scan in progress: what it found so far.
struct Scan {
    config: WatchdogConfig,
    now: Instant,
    summary: ScanSummary,
    stuck: Vec<(Arc<RequestEnvelope>, Severity)>,
}

impl Scan {
    fn start(config: WatchdogConfig) -> Self {
        Self {
            config,
            now: Instant::now(),
            summary: ScanSummary::default(),
            stuck: Vec::new(),
        }
    }

    /// Reads one shard. Only that shard is locked, and only for age comparisons.
    fn visit(&mut self, registry: &EnvelopeRegistry, shard: usize) {
        let Self {
            config,
            now,
            summary,
            stuck,
        } = self;
        registry.for_each_in_shard(shard, |envelope| {
            summary.visited += 1;
            // A debugger holds it on purpose: that is not a stuck request.
            if envelope.phase() == genro_envelope::Phase::Held {
                summary.held += 1;
                return;
            }
            let age = now.saturating_duration_since(envelope.started());
            if age > config.critical {
                stuck.push((envelope.clone(), Severity::Critical));
            } else if age > config.timeout {
                stuck.push((envelope.clone(), Severity::Warning));
            }
        });
    }
}

/// Watches an [`EnvelopeRegistry`] for requests that take too long, and reports them.
///
/// Each scan looks at every in-flight request, one registry shard at a time:
/// - older than `timeout`: reported once, at warning level;
/// - older than `critical`: reported once more, at error level with `severity="critical"`, and
///   each [`Notifier`] is called once for it. (A request first seen past `critical` gets only the
///   critical report.)
///
/// A request is never reported twice at the same level. The watchdog remembers only requests that
/// are stuck right now, so finished requests cost nothing.
///
/// It never cancels a request: killing a handler half-way can leave shared state half-written, as
/// gunicorn's worker timeouts and rack-timeout are known to. Reports say what is stuck; cancelling
/// is a separate, explicit act (the debug console's).
pub struct Watchdog {
    registry: EnvelopeRegistry,
    config: Arc<ArcSwap<WatchdogConfig>>,
    notifiers: Notifiers,
    metrics: Metrics,
    reported: HashMap<Uuid, Severity>,
    dumper: Option<TaskDumper>,
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog")
            .field("config", &**self.config.load())
            .field("notifiers", &self.notifiers)
            .field("stuck", &self.reported.len())
            .field("traces", &self.dumper.is_some())
            .finish_non_exhaustive()
    }
}

impl Watchdog {
    /// A watchdog of `registry` with these thresholds. Nothing runs until [`spawn`](Self::spawn)
    /// (or a manual [`scan`](Self::scan)).
    #[must_use]
    pub fn new(registry: EnvelopeRegistry, config: WatchdogConfig) -> Self {
        Self {
            registry,
            config: Arc::new(ArcSwap::from_pointee(config)),
            notifiers: Notifiers::new(),
            metrics: Metrics::default(),
            reported: HashMap::new(),
            dumper: Some(TaskDumper::global().clone()),
        }
    }

    /// Where critical reports get their traces (what the request's task waits on): by default
    /// [`TaskDumper::global`], within its limits; `None` leaves the trace out. The running
    /// watchdog takes at most one batch of traces per scan, for the requests that turned critical
    /// in it;
    /// [`scan`](Self::scan) takes none.
    #[must_use]
    pub fn task_dumper(mut self, dumper: Option<TaskDumper>) -> Self {
        self.dumper = dumper;
        self
    }

    /// Adds `notifier`: it is called once for each request that passes the critical threshold.
    /// Several notifiers can be added; each is called independently of the others (see
    /// [`Notifiers`]).
    #[must_use]
    pub fn notifier(mut self, notifier: impl Notifier) -> Self {
        let name = format!("watchdog notifier {}", self.notifiers.len() + 1);
        self.notifiers.push(name, notifier);
        self
    }

    /// Sends critical reports to `notifiers`, replacing those added so far: to share one set
    /// (one webhook, say) with the error layer's critical errors.
    #[must_use]
    pub fn notifiers(mut self, notifiers: Notifiers) -> Self {
        self.notifiers = notifiers;
        self
    }

    /// The longest one notifier call may run before it is abandoned. Default 10 s.
    #[must_use]
    pub fn notify_timeout(mut self, limit: Duration) -> Self {
        self.notifiers = self.notifiers.timeout(limit);
        self
    }

    /// Registers `requests_stuck_total{severity}` (reports made) and
    /// `requests_stuck_now{severity}` (requests past a threshold at the last scan) in a
    /// prometheus-client registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "requests_stuck",
            "Stuck-request reports made by the watchdog, by severity",
            self.metrics.reports.clone(),
        );
        registry.register(
            "requests_stuck_now",
            "Requests past a watchdog threshold at the last scan, by severity",
            self.metrics.stuck.clone(),
        );
    }

    /// The thresholds in force.
    #[must_use]
    pub fn config(&self) -> WatchdogConfig {
        **self.config.load()
    }

    /// How many stuck requests the watchdog remembers (those stuck at the last scan).
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.reported.len()
    }

    /// Scans the registry once, now, shard after shard without pausing. Works outside a tokio
    /// runtime too (notifications then cannot be delivered; they are counted as dropped).
    pub fn scan(&mut self) -> ScanSummary {
        let mut scan = Scan::start(**self.config.load());
        for shard in 0..self.registry.shard_count() {
            scan.visit(&self.registry, shard);
        }
        self.finish(scan, HashMap::new())
    }

    /// Scans the registry once, yielding to the runtime between shards so that a scan of a
    /// large registry never holds a worker thread for long. The running watchdog scans this way.
    pub async fn scan_yielding(&mut self) -> ScanSummary {
        let mut scan = Scan::start(**self.config.load());
        for shard in 0..self.registry.shard_count() {
            scan.visit(&self.registry, shard);
            tokio::task::yield_now().await;
        }
        let traces = self.traces(&scan).await;
        self.finish(scan, traces)
    }

    /// The traces of the requests this scan reports as critical for the first time: one batch
    /// for all of them, within the dumper's limits (its timeout bounds the wait).
    async fn traces(&self, scan: &Scan) -> HashMap<Uuid, TraceReport> {
        let Some(dumper) = &self.dumper else {
            return HashMap::new();
        };
        let due: Vec<&RequestEnvelope> = scan
            .stuck
            .iter()
            .filter(|(envelope, severity)| {
                *severity == Severity::Critical && self.is_new(envelope, *severity)
            })
            .map(|(envelope, _)| &**envelope)
            .collect();
        if due.is_empty() {
            return HashMap::new();
        }
        let traces = dumper.waiting_on_all(due.iter().copied()).await;
        due.iter()
            .map(|envelope| envelope.internal_id())
            .zip(traces.into_iter().map(TraceReport))
            .collect()
    }

    /// Whether a report of `envelope` at `severity` would be its first at that level or above.
    fn is_new(&self, envelope: &RequestEnvelope, severity: Severity) -> bool {
        self.reported.get(&envelope.internal_id()).copied() < Some(severity)
    }

    fn finish(&mut self, scan: Scan, mut traces: HashMap<Uuid, TraceReport>) -> ScanSummary {
        let Scan {
            mut summary, stuck, ..
        } = scan;
        let mut now_stuck = HashMap::with_capacity(stuck.len());
        for (envelope, severity) in stuck {
            match severity {
                Severity::Warning => summary.warning += 1,
                Severity::Critical => summary.critical += 1,
            }
            let id = envelope.internal_id();
            let before = self.reported.get(&id).copied();
            if self.is_new(&envelope, severity) {
                self.report(&envelope, severity, traces.remove(&id));
                match severity {
                    Severity::Warning => summary.reported_warning += 1,
                    Severity::Critical => summary.reported_critical += 1,
                }
            }
            now_stuck.insert(id, severity.max(before.unwrap_or(severity)));
        }
        // Finished requests drop out here: only what is stuck now is remembered.
        self.reported = now_stuck;
        self.metrics
            .stuck
            .get_or_create(&Metrics::label(Severity::Warning))
            .set(summary.warning as i64);
        self.metrics
            .stuck
            .get_or_create(&Metrics::label(Severity::Critical))
            .set(summary.critical as i64);
        summary
    }

    fn report(&self, envelope: &RequestEnvelope, severity: Severity, trace: Option<TraceReport>) {
        self.metrics
            .reports
            .get_or_create(&Metrics::label(severity))
            .inc();
        let annotations = format!("{:?}", envelope.annotations());
        let client = envelope.client().map(|c| c.to_string());
        let trace = trace.map(|trace| trace.to_string());
        macro_rules! stuck_event {
            ($level:ident, $msg:literal) => {
                genro_notify::request_event!(
                    $level,
                    envelope,
                    severity = severity.as_str(),
                    age_s = envelope.age().as_secs_f64(),
                    phase = %envelope.phase(),
                    client = client.as_deref(),
                    annotations = %annotations,
                    trace = trace.as_deref(),
                    $msg
                )
            };
        }
        match severity {
            Severity::Warning => stuck_event!(warn, "request is slow"),
            Severity::Critical => {
                stuck_event!(error, "request is critically stuck");
                if !self.notifiers.is_empty() {
                    // Queued for each notifier's own task: a slow notifier never delays the
                    // scan, and a mass stall never starts a task per request.
                    let mut notification =
                        Notification::stuck_request(RequestInfo::from_envelope(envelope));
                    if let Some(trace) = trace {
                        notification = notification.with_detail("trace", trace);
                    }
                    self.notifiers.send(notification);
                }
            }
        }
    }

    /// Starts scanning every `interval` on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// The thresholds do not fit together (see [`WatchdogConfig::validate`]), or there is no
    /// tokio runtime to run on.
    pub fn spawn(mut self) -> Result<WatchdogHandle, WatchdogError> {
        self.config.load().validate()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| WatchdogError("watchdog: spawn it inside a tokio runtime".to_owned()))?;
        let config = self.config.clone();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            loop {
                let interval = self.config.load().interval;
                tokio::select! {
                    // A stop request, or the handle dropped.
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(interval) => {}
                }
                self.scan_yielding().await;
            }
        });
        Ok(WatchdogHandle {
            stop: Some(stop),
            task: Some(task),
            config,
        })
    }
}

/// Controls a running [`Watchdog`]. Dropping the handle stops it.
pub struct WatchdogHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    config: Arc<ArcSwap<WatchdogConfig>>,
}

impl fmt::Debug for WatchdogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchdogHandle")
            .field("config", &**self.config.load())
            .field(
                "running",
                &self.task.as_ref().is_some_and(|t| !t.is_finished()),
            )
            .finish()
    }
}

impl WatchdogHandle {
    /// Replaces the thresholds; the next scan uses them (a new interval applies after the current
    /// wait). Requests already reported keep their reports.
    ///
    /// # Errors
    ///
    /// The new thresholds do not fit together; the old ones stay.
    pub fn set_config(&self, config: WatchdogConfig) -> Result<(), WatchdogError> {
        config.validate()?;
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// The thresholds in force.
    #[must_use]
    pub fn config(&self) -> WatchdogConfig {
        **self.config.load()
    }

    /// Stops the watchdog and waits for its task to end (a scan in progress finishes first).
    pub async fn stop(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for WatchdogHandle {
    fn drop(&mut self) {
        // Dropping the sender wakes the task, which leaves its loop.
        drop(self.stop.take());
    }
}
