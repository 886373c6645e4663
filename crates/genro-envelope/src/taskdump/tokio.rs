//! Task dumps taken with tokio's `Handle::dump`, within the dumper's limits.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{
    runtime::{Dump, Handle, RuntimeFlavor},
    task::Id,
    time::Instant,
};

use super::{
    render::{render, Frame},
    DumpLimits, TaskTrace, TraceUnavailable, MAX_TRACES_PER_DUMP,
};

pub(super) const AVAILABLE: bool = true;

pub(super) const NOT_BUILT: &str = "task dumps are in this build";

/// How long a worker may go without progress before it counts as blocked: a little over the
/// 250 ms that tokio's dump waits for each worker.
const PROBE: Duration = Duration::from_millis(300);

/// A dump and when it was taken.
#[derive(Clone)]
struct Taken {
    at: Instant,
    dump: Arc<Dump>,
}

#[derive(Default)]
struct State {
    /// A dump is being taken (perhaps one a caller stopped waiting for).
    running: bool,
    last_start: Option<Instant>,
    /// The last dump, kept for `min_interval`.
    last: Option<Taken>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Clears `running` when the dump's task ends, however it ends.
struct Running(Arc<Mutex<State>>);

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.0).running = false;
    }
}

#[derive(Default)]
pub(super) struct Gate {
    state: Arc<Mutex<State>>,
    /// One symbol resolution at a time: it parses debug info on a blocking thread.
    resolving: tokio::sync::Mutex<()>,
}

impl Gate {
    pub(super) async fn traces(
        &self,
        limits: DumpLimits,
        tasks: Vec<(Option<Id>, Instant)>,
    ) -> Vec<Result<TaskTrace, TraceUnavailable>> {
        let mut out: Vec<_> = tasks
            .iter()
            .map(|(task, _)| {
                Err(task.map_or(TraceUnavailable::NoTask, |_| TraceUnavailable::NotFound))
            })
            .collect();
        let Ok(runtime) = Handle::try_current() else {
            fill(&mut out, &TraceUnavailable::NoRuntime);
            return out;
        };
        let (taken, fresh) = match self.dump(&runtime, limits).await {
            Ok(taken) => taken,
            Err(why) => {
                fill(&mut out, &why);
                return out;
            }
        };
        // The tasks to look for. A task in a dump taken before its request started was serving
        // an earlier request on the same connection: that dump says nothing of this one.
        let mut wanted = Vec::new();
        for (i, (task, started)) in tasks.iter().enumerate() {
            let Some(task) = *task else { continue };
            if *started > taken.at {
                out[i] = Err(later(limits, &taken));
            } else if wanted.len() < MAX_TRACES_PER_DUMP {
                wanted.push((i, task));
            } else {
                out[i] = Err(TraceUnavailable::Omitted);
            }
        }
        if wanted.is_empty() {
            return out;
        }
        let _one = self.resolving.lock().await;
        let ids: Vec<Id> = wanted.iter().map(|(_, id)| *id).collect();
        let dump = taken.dump.clone();
        let max_bytes = limits.max_bytes;
        let resolving = tokio::task::spawn_blocking(move || resolve(&dump, &ids, max_bytes));
        let found = match tokio::time::timeout(limits.timeout, resolving).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(_)) => Err(TraceUnavailable::Failed),
            Err(_) => Err(TraceUnavailable::TimedOut {
                after: limits.timeout,
            }),
        };
        let age = taken.at.elapsed();
        for (n, (i, _)) in wanted.into_iter().enumerate() {
            out[i] = match &found {
                Ok(found) => match &found[n] {
                    Some((text, cut)) => Ok(TaskTrace {
                        text: text.clone(),
                        age,
                        cut: *cut,
                    }),
                    None if fresh => Err(TraceUnavailable::NotFound),
                    None => Err(later(limits, &taken)),
                },
                Err(why) => Err(why.clone()),
            };
        }
        out
    }

    /// A dump to search: the last one within `min_interval` (`false`), or a new one (`true`).
    async fn dump(
        &self,
        runtime: &Handle,
        limits: DumpLimits,
    ) -> Result<(Taken, bool), TraceUnavailable> {
        let now = Instant::now();
        {
            let mut state = lock(&self.state);
            if let Some(last) = &state.last {
                if now.duration_since(last.at) < limits.min_interval {
                    return Ok((last.clone(), false));
                }
            }
            if state.running {
                return Err(TraceUnavailable::Busy);
            }
            if let Some(start) = state.last_start {
                let since = now.duration_since(start);
                if since < limits.min_interval {
                    return Err(TraceUnavailable::RateLimited {
                        retry_in: limits.min_interval - since,
                    });
                }
            }
            state.running = true;
            state.last_start = Some(now);
        }
        let probe = if runtime.runtime_flavor() == RuntimeFlavor::CurrentThread {
            Duration::ZERO
        } else {
            PROBE
        };
        let state = self.state.clone();
        let handle = runtime.clone();
        // Its own task: a caller that stops waiting (the timeout below) leaves it to finish, and
        // `running` stays set until it does.
        let job = runtime.spawn(async move {
            let _running = Running(state.clone());
            if let Some(worker) = blocked_worker(&handle, probe).await {
                return Err(TraceUnavailable::WorkerBlocked { worker });
            }
            let dump = handle.dump().await;
            let taken = Taken {
                at: Instant::now(),
                dump: Arc::new(dump),
            };
            lock(&state).last = Some(taken.clone());
            // Forgotten after `min_interval`: an idle server keeps no dump of every task.
            let at = taken.at;
            tokio::spawn(async move {
                tokio::time::sleep_until(at + limits.min_interval).await;
                let mut state = lock(&state);
                if state.last.as_ref().is_some_and(|last| last.at == at) {
                    state.last = None;
                }
            });
            Ok(taken)
        });
        match tokio::time::timeout(probe + limits.timeout, job).await {
            Ok(Ok(Ok(taken))) => Ok((taken, true)),
            Ok(Ok(Err(why))) => Err(why),
            Ok(Err(_)) => Err(TraceUnavailable::Failed),
            Err(_) => Err(TraceUnavailable::TimedOut {
                after: limits.timeout,
            }),
        }
    }
}

fn fill(out: &mut [Result<TaskTrace, TraceUnavailable>], why: &TraceUnavailable) {
    for slot in out {
        if slot != &Err(TraceUnavailable::NoTask) {
            *slot = Err(why.clone());
        }
    }
}

/// For a task the last dump cannot answer for: when the next dump may be taken.
fn later(limits: DumpLimits, taken: &Taken) -> TraceUnavailable {
    TraceUnavailable::RateLimited {
        retry_in: limits.min_interval.saturating_sub(taken.at.elapsed()),
    }
}

/// A worker of a multi-thread runtime that made no progress for `probe` while not parked: it is
/// inside one poll. tokio's dump would wait for it, and meanwhile pause the others again and
/// again, so no dump is taken.
async fn blocked_worker(runtime: &Handle, probe: Duration) -> Option<usize> {
    if probe.is_zero() {
        return None;
    }
    let metrics = runtime.metrics();
    // A worker publishes both at each maintenance pass (every few dozen polls) and each park.
    let sample = |w| {
        (
            metrics.worker_park_unpark_count(w),
            metrics.worker_total_busy_duration(w),
        )
    };
    let before: Vec<_> = (0..metrics.num_workers()).map(sample).collect();
    tokio::time::sleep(probe).await;
    before
        .iter()
        .enumerate()
        // An odd count means parked.
        .find(|&(w, &(count, busy))| count % 2 == 0 && sample(w) == (count, busy))
        .map(|(w, _)| w)
}

/// Finds each task in `dump` and renders its trace (resolving symbols: slow, so on a blocking
/// thread).
fn resolve(dump: &Dump, ids: &[Id], max_bytes: usize) -> Vec<Option<(String, bool)>> {
    ids.iter()
        .map(|id| {
            let task = dump.tasks().iter().find(|task| task.id() == *id)?;
            let backtraces = task.trace().resolve_backtraces();
            let leaves: Vec<Vec<Frame<'_>>> = backtraces
                .iter()
                .map(|backtrace| {
                    backtrace
                        .frames()
                        .flat_map(|frame| frame.symbols())
                        .map(|symbol| Frame {
                            name: symbol.name_demangled(),
                            file: symbol.filename(),
                            line: symbol.lineno(),
                        })
                        .collect()
                })
                .collect();
            Some(render(&leaves, max_bytes))
        })
        .collect()
}
