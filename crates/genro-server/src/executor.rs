//! Executors: a bounded pool for blocking work, and a pool of worker processes for CPU-bound or
//! crash-prone jobs. Both are part of the drain: it waits for their running jobs.
//!
//! The thread pool runs closures on tokio's blocking threads, at most `threads` at a time, with at
//! most `queue` more waiting; past that a call fails at once with [`ExecutorError::Full`] rather
//! than growing a queue without bound.
//!
//! The process pool re-executes the server's own binary in worker mode. The application lists
//! its jobs by name in a [`ProcessJobs`] and calls [`ProcessJobs::serve_if_worker`] first thing
//! in `main`; in a worker that call never returns: it reads jobs from stdin and writes results to
//! stdout, one JSON line each (serde_json). A worker that crashes fails its job with a clear
//! error and is replaced; `processes` workers run, with at most `process_queue` jobs waiting.

use std::{
    collections::HashMap,
    fmt,
    io::{BufRead, Write},
    panic::AssertUnwindSafe,
    process::Stdio,
    sync::{Arc, OnceLock},
    time::Duration,
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    sync::{mpsc, oneshot, Mutex, Semaphore},
};

/// The environment variable that puts the binary in worker mode.
pub const WORKER_ENV: &str = "GENRO_ASGI_PROCESS_WORKER";

/// Why a job did not produce its result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The pool and its queue are full; try again later.
    Full,
    /// The server is shutting down and takes no new jobs.
    ShuttingDown,
    /// The job panicked; the message is the panic's.
    Panicked(String),
    /// The job returned an error.
    Failed(String),
    /// The worker process running the job exited or broke its pipe; it has been replaced.
    WorkerLost(String),
    /// No job of this name is registered.
    UnknownJob(String),
    /// The job ran past `job_timeout`; its worker was killed and replaced.
    TimedOut(Duration),
    /// The process pool is off (`[executors] processes = 0`).
    NoProcessPool,
}

impl fmt::Display for ExecutorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("executor full: every worker is busy and the queue is full"),
            Self::ShuttingDown => f.write_str("executor shutting down: no new jobs"),
            Self::Panicked(why) => write!(f, "job panicked: {why}"),
            Self::Failed(why) => write!(f, "job failed: {why}"),
            Self::WorkerLost(why) => write!(f, "worker process lost: {why}"),
            Self::UnknownJob(name) => write!(f, "no process job named {name:?} is registered"),
            Self::TimedOut(limit) => write!(f, "job timed out after {limit:?}"),
            Self::NoProcessPool => {
                f.write_str("the process pool is off: set [executors] processes to 1 or more")
            }
        }
    }
}

impl std::error::Error for ExecutorError {}

/// The bounded pool for blocking work.
#[derive(Clone)]
pub struct ThreadPool {
    /// Running plus waiting: its permits bound the queue.
    slots: Arc<Semaphore>,
    /// Running: its permits bound the parallelism.
    running: Arc<Semaphore>,
    total: u32,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("busy", &self.busy())
            .finish_non_exhaustive()
    }
}

impl ThreadPool {
    /// A pool running at most `threads` closures at once, with at most `queue` more waiting.
    #[must_use]
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let total = u32::try_from(threads + queue).unwrap_or(u32::MAX);
        Self {
            slots: Arc::new(Semaphore::new(total as usize)),
            running: Arc::new(Semaphore::new(threads)),
            total,
        }
    }

    /// Runs `f` on a blocking thread and waits for its result.
    ///
    /// # Errors
    ///
    /// [`ExecutorError::Full`] when the pool and its queue are full; [`ExecutorError::Panicked`]
    /// when `f` panics (the pool goes on); [`ExecutorError::ShuttingDown`] after the drain.
    pub async fn run_in_executor<F, T>(&self, f: F) -> Result<T, ExecutorError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(ExecutorError::ShuttingDown),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(ExecutorError::Full),
        };
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ExecutorError::ShuttingDown)?;
        let result = tokio::task::spawn_blocking(move || {
            let _running = running;
            let _slot = slot;
            std::panic::catch_unwind(AssertUnwindSafe(f))
        })
        .await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(payload)) => Err(ExecutorError::Panicked(panic_text(&*payload))),
            Err(e) => Err(ExecutorError::Panicked(e.to_string())),
        }
    }

    /// Jobs running or waiting.
    #[must_use]
    pub fn busy(&self) -> usize {
        self.total as usize - self.slots.available_permits()
    }

    /// Waits until no job runs or waits.
    pub(crate) async fn idle(&self) {
        let _ = self.slots.acquire_many(self.total).await;
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}

type JobFn = dyn Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync;

/// The jobs a worker process can run, by name. The same list is given to the server (to check
/// names) and used by the binary in worker mode (to run them).
#[derive(Clone, Default)]
pub struct ProcessJobs {
    jobs: HashMap<String, Arc<JobFn>>,
}

impl fmt::Debug for ProcessJobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessJobs")
            .field("jobs", &self.jobs.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct JobRequest {
    job: String,
    input: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum JobReply {
    Ok(serde_json::Value),
    Err(String),
}

impl ProcessJobs {
    /// No jobs.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the job `name`: its input and output travel as JSON.
    #[must_use]
    pub fn job<I, O, F>(mut self, name: impl Into<String>, job: F) -> Self
    where
        I: DeserializeOwned,
        O: Serialize,
        F: Fn(I) -> Result<O, String> + Send + Sync + 'static,
    {
        let run = move |input: serde_json::Value| {
            let input: I = serde_json::from_value(input).map_err(|e| format!("bad input: {e}"))?;
            let output = job(input)?;
            serde_json::to_value(output).map_err(|e| format!("unserialisable output: {e}"))
        };
        self.jobs.insert(name.into(), Arc::new(run));
        self
    }

    /// In a worker process (started by the pool), serves jobs on stdin and stdout until stdin
    /// closes, then exits the process; anywhere else, returns at once. Call it first in `main`.
    #[allow(
        clippy::exit,
        reason = "a worker process ends when its pool closes its stdin"
    )]
    pub fn serve_if_worker(&self) {
        if std::env::var_os(WORKER_ENV).is_none() {
            return;
        }
        let stdin = std::io::stdin();
        let mut stdout = std::io::stdout();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let reply = match serde_json::from_str::<JobRequest>(&line) {
                Err(e) => JobReply::Err(format!("unreadable job: {e}")),
                Ok(request) => match self.jobs.get(&request.job) {
                    None => JobReply::Err(format!("no job named {:?}", request.job)),
                    Some(job) => {
                        match std::panic::catch_unwind(AssertUnwindSafe(|| job(request.input))) {
                            Ok(Ok(value)) => JobReply::Ok(value),
                            Ok(Err(why)) => JobReply::Err(why),
                            Err(payload) => {
                                JobReply::Err(format!("job panicked: {}", panic_text(&*payload)))
                            }
                        }
                    }
                },
            };
            let Ok(text) = serde_json::to_string(&reply) else {
                break;
            };
            if writeln!(stdout, "{text}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                break;
            }
        }
        std::process::exit(0);
    }

    fn has(&self, name: &str) -> bool {
        self.jobs.contains_key(name)
    }
}

type Reply = oneshot::Sender<Result<serde_json::Value, ExecutorError>>;

struct Queued {
    request: JobRequest,
    reply: Reply,
}

/// The pool of worker processes.
#[derive(Clone)]
pub struct ProcessPool {
    jobs: ProcessJobs,
    queue: mpsc::Sender<Queued>,
    in_flight: Arc<Semaphore>,
    total: u32,
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPool")
            .field("jobs", &self.jobs)
            .field(
                "busy",
                &(self.total as usize - self.in_flight.available_permits()),
            )
            .finish_non_exhaustive()
    }
}

impl ProcessPool {
    /// Starts `workers` worker processes of the current binary, with at most `queue` jobs
    /// waiting, each job limited to `timeout` (none when `None`).
    pub(crate) fn start(
        jobs: ProcessJobs,
        workers: usize,
        queue: usize,
        timeout: Option<Duration>,
    ) -> Result<Self, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("executors.processes: cannot find the server's binary: {e}"))?;
        let (tx, rx) = mpsc::channel::<Queued>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for index in 0..workers {
            tokio::spawn(worker_loop(index, exe.clone(), rx.clone(), timeout));
        }
        let total = u32::try_from(workers + queue.max(1)).unwrap_or(u32::MAX);
        Ok(Self {
            jobs,
            queue: tx,
            in_flight: Arc::new(Semaphore::new(total as usize)),
            total,
        })
    }

    /// Runs the job `name` with `input` in a worker process and returns its output.
    ///
    /// # Errors
    ///
    /// The job is unknown, the pool is full, the job fails or panics, its worker crashes (it is
    /// replaced), or it times out.
    pub async fn run_job<I, O>(&self, name: &str, input: &I) -> Result<O, ExecutorError>
    where
        I: Serialize,
        O: DeserializeOwned,
    {
        if !self.jobs.has(name) {
            return Err(ExecutorError::UnknownJob(name.to_owned()));
        }
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(ExecutorError::ShuttingDown),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(ExecutorError::Full),
        };
        let input = serde_json::to_value(input)
            .map_err(|e| ExecutorError::Failed(format!("unserialisable input: {e}")))?;
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Queued {
                request: JobRequest {
                    job: name.to_owned(),
                    input,
                },
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ExecutorError::Full,
                mpsc::error::TrySendError::Closed(_) => ExecutorError::ShuttingDown,
            })?;
        let value = answer.await.map_err(|_| ExecutorError::ShuttingDown)??;
        drop(permit);
        serde_json::from_value(value)
            .map_err(|e| ExecutorError::Failed(format!("unexpected output: {e}")))
    }

    /// Waits until no job runs or waits.
    pub(crate) async fn idle(&self) {
        let _ = self.in_flight.acquire_many(self.total).await;
    }
}

struct Worker {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

fn spawn_worker(exe: &std::path::Path) -> std::io::Result<Worker> {
    let mut child = tokio::process::Command::new(exe)
        .env(WORKER_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    Ok(Worker {
        child,
        stdin,
        stdout: BufReader::new(stdout),
    })
}

async fn exchange(worker: &mut Worker, request: &JobRequest) -> Result<JobReply, String> {
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    worker
        .stdin
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("cannot send the job: {e}"))?;
    let mut answer = String::new();
    let read = worker
        .stdout
        .read_line(&mut answer)
        .await
        .map_err(|e| format!("cannot read the result: {e}"))?;
    if read == 0 {
        let status = worker
            .child
            .wait()
            .await
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Err(format!("the worker exited ({status})"));
    }
    serde_json::from_str(&answer).map_err(|e| format!("unreadable result: {e}"))
}

async fn worker_loop(
    index: usize,
    exe: std::path::PathBuf,
    jobs: Arc<Mutex<mpsc::Receiver<Queued>>>,
    timeout: Option<Duration>,
) {
    let mut worker: Option<Worker> = None;
    loop {
        let next = jobs.lock().await.recv().await;
        let Some(Queued { request, reply }) = next else {
            // The pool is gone: the worker's stdin closes with it and it exits.
            return;
        };
        if worker.is_none() {
            match spawn_worker(&exe) {
                Ok(w) => worker = Some(w),
                Err(e) => {
                    let _ = reply.send(Err(ExecutorError::WorkerLost(format!(
                        "cannot start a worker: {e}"
                    ))));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let running = worker.as_mut().expect("started above");
        let outcome = match timeout {
            Some(limit) => match tokio::time::timeout(limit, exchange(running, &request)).await {
                Ok(outcome) => outcome.map_err(ExecutorError::WorkerLost),
                Err(_) => Err(ExecutorError::TimedOut(limit)),
            },
            None => exchange(running, &request)
                .await
                .map_err(ExecutorError::WorkerLost),
        };
        let result = match outcome {
            Ok(JobReply::Ok(value)) => Ok(value),
            Ok(JobReply::Err(why)) if why.starts_with("job panicked: ") => Err(
                ExecutorError::Panicked(why.trim_start_matches("job panicked: ").to_owned()),
            ),
            Ok(JobReply::Err(why)) => Err(ExecutorError::Failed(why)),
            Err(e) => {
                // Lost or stuck: this worker is dropped (killed) and a new one starts with the
                // next job.
                tracing::warn!(worker = index, job = %request.job, error = %e, "process worker replaced");
                worker = None;
                Err(e)
            }
        };
        let _ = reply.send(result);
    }
}

/// The server's executors: the thread pool, and the process pool once the server has started
/// it.
#[derive(Clone, Debug)]
pub struct Executors {
    threads: ThreadPool,
    processes: Arc<OnceLock<ProcessPool>>,
}

impl Executors {
    pub(crate) fn new(threads: ThreadPool) -> Self {
        Self {
            threads,
            processes: Arc::new(OnceLock::new()),
        }
    }

    pub(crate) fn set_processes(&self, pool: ProcessPool) {
        let _ = self.processes.set(pool);
    }

    /// Runs blocking work on the thread pool; see [`ThreadPool::run_in_executor`].
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::run_in_executor`].
    pub async fn run_in_executor<F, T>(&self, f: F) -> Result<T, ExecutorError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.threads.run_in_executor(f).await
    }

    /// Runs a named job in a worker process; see [`ProcessPool::run_job`].
    ///
    /// # Errors
    ///
    /// As [`ProcessPool::run_job`], and [`ExecutorError::NoProcessPool`] when it is off.
    pub async fn run_job<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        input: &I,
    ) -> Result<O, ExecutorError> {
        match self.processes.get() {
            Some(pool) => pool.run_job(name, input).await,
            None => Err(ExecutorError::NoProcessPool),
        }
    }

    /// The thread pool.
    #[must_use]
    pub fn threads(&self) -> &ThreadPool {
        &self.threads
    }

    /// Waits until both pools are idle.
    pub(crate) async fn idle(&self) {
        self.threads.idle().await;
        if let Some(pool) = self.processes.get() {
            pool.idle().await;
        }
    }
}
