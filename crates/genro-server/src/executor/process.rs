//! The pool of worker processes: the server's own binary re-executed in worker mode, running
//! named jobs that travel as JSON lines on its stdin and stdout.

use std::{
    collections::HashMap,
    fmt,
    io::{BufRead, Write},
    panic::AssertUnwindSafe,
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    sync::{mpsc, oneshot, Mutex},
};

use genro_errors::panic_message;

use super::error::ExecutorError;
use crate::slots::Slots;

/// The environment variable that puts the binary in worker mode.
pub const WORKER_ENV: &str = "GENRO_ASGI_PROCESS_WORKER";

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
    Panicked(String),
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
                            Err(payload) => JobReply::Panicked(panic_message(&*payload)),
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
    /// Running plus waiting.
    in_flight: Slots,
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPool")
            .field("jobs", &self.jobs)
            .field("busy", &self.in_flight.in_use())
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
        Ok(Self {
            jobs,
            queue: tx,
            in_flight: Slots::new(workers.saturating_add(queue.max(1))),
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
        let permit = self.in_flight.try_take().map_err(ExecutorError::from)?;
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
        self.in_flight.all_free().await;
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
            Ok(JobReply::Panicked(why)) => Err(ExecutorError::Panicked(why)),
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
