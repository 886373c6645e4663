//! Batches of request traces, within the dumper's limits: each request's future answers on its
//! own task (through the envelope's trace hook); the symbols are resolved on a blocking thread.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::{runtime::dump::Trace, time::Instant};
use uuid::Uuid;

use super::{
    render::{render, Frame},
    DumpLimits, TaskTrace, TraceUnavailable, MAX_TRACES_PER_DUMP,
};
use crate::{trace_hook::Refused, RequestEnvelope};

pub(super) const AVAILABLE: bool = true;

pub(super) const NOT_BUILT: &str = "tracing is in this build";

/// One batch's answers, kept for `min_interval`.
struct Batch {
    at: Instant,
    answers: HashMap<Uuid, Result<(String, bool), TraceUnavailable>>,
}

#[derive(Default)]
struct State {
    /// A batch is being taken.
    running: bool,
    last: Option<Arc<Batch>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Clears `running` when the batch ends, however it ends (its caller may stop waiting).
struct Running<'a>(&'a Mutex<State>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(self.0).running = false;
    }
}

#[derive(Default)]
pub(super) struct Gate {
    state: Arc<Mutex<State>>,
}

impl Gate {
    pub(super) async fn traces(
        &self,
        limits: DumpLimits,
        envelopes: Vec<&RequestEnvelope>,
    ) -> Vec<Result<TaskTrace, TraceUnavailable>> {
        if tokio::runtime::Handle::try_current().is_err() {
            return vec![Err(TraceUnavailable::NoRuntime); envelopes.len()];
        }
        let now = Instant::now();
        let batch = {
            let mut state = lock(&self.state);
            match &state.last {
                Some(last) if now.duration_since(last.at) < limits.min_interval => {
                    Some(last.clone())
                }
                _ if state.running => return vec![Err(TraceUnavailable::Busy); envelopes.len()],
                _ => {
                    state.running = true;
                    None
                }
            }
        };
        let (batch, fresh) = if let Some(last) = batch {
            (last, false)
        } else {
            let _running = Running(&self.state);
            let batch = Arc::new(take(&envelopes, limits).await);
            lock(&self.state).last = Some(batch.clone());
            forget_later(self.state.clone(), &batch, limits);
            (batch, true)
        };
        let age = batch.at.elapsed();
        envelopes
            .iter()
            .map(
                |envelope| match batch.answers.get(&envelope.internal_id()) {
                    Some(Ok((text, cut))) => Ok(TaskTrace {
                        text: text.clone(),
                        age,
                        cut: *cut,
                    }),
                    Some(Err(why)) => Err(why.clone()),
                    None if fresh => Err(TraceUnavailable::Omitted),
                    None => Err(TraceUnavailable::RateLimited {
                        retry_in: limits.min_interval.saturating_sub(age),
                    }),
                },
            )
            .collect()
    }
}

/// Asks each request (the first [`MAX_TRACES_PER_DUMP`]) for its trace, waits for the answers
/// until `timeout`, then resolves their symbols on a blocking thread within `timeout` again.
async fn take(envelopes: &[&RequestEnvelope], limits: DumpLimits) -> Batch {
    let mut answers = HashMap::new();
    let mut asked = Vec::new();
    for envelope in envelopes.iter().take(MAX_TRACES_PER_DUMP) {
        let id = envelope.internal_id();
        match envelope.trace_hook().ask() {
            Ok(reply) => asked.push((id, reply)),
            Err(Refused::Unwatched) => {
                answers.insert(id, Err(TraceUnavailable::Unwatched));
            }
            Err(Refused::Finished) => {
                answers.insert(id, Err(TraceUnavailable::Finished));
            }
        }
    }
    let deadline = Instant::now() + limits.timeout;
    let mut traces = Vec::new();
    for (id, reply) in asked {
        match tokio::time::timeout_at(deadline, reply).await {
            Ok(Ok(Some(trace))) => traces.push((id, trace)),
            Ok(Ok(None)) => {
                answers.insert(id, Err(TraceUnavailable::Failed));
            }
            // The future went away without answering.
            Ok(Err(_)) => {
                answers.insert(id, Err(TraceUnavailable::Finished));
            }
            Err(_) => {
                answers.insert(
                    id,
                    Err(TraceUnavailable::TimedOut {
                        after: limits.timeout,
                    }),
                );
            }
        }
    }
    let at = Instant::now();
    if !traces.is_empty() {
        let ids: Vec<Uuid> = traces.iter().map(|(id, _)| *id).collect();
        let max_bytes = limits.max_bytes;
        let resolving = tokio::task::spawn_blocking(move || {
            traces
                .iter()
                .map(|(_, trace)| rendered(trace, max_bytes))
                .collect::<Vec<_>>()
        });
        match tokio::time::timeout(limits.timeout, resolving).await {
            Ok(Ok(texts)) => answers.extend(ids.into_iter().zip(texts.into_iter().map(Ok))),
            failed => {
                let why = if failed.is_ok() {
                    TraceUnavailable::Failed
                } else {
                    TraceUnavailable::TimedOut {
                        after: limits.timeout,
                    }
                };
                answers.extend(ids.into_iter().map(|id| (id, Err(why.clone()))));
            }
        }
    }
    Batch { at, answers }
}

/// Drops `batch` from the cache after `min_interval`, so an idle server keeps no traces.
fn forget_later(state: Arc<Mutex<State>>, batch: &Arc<Batch>, limits: DumpLimits) {
    let at = batch.at;
    tokio::spawn(async move {
        tokio::time::sleep_until(at + limits.min_interval).await;
        let mut state = lock(&state);
        if state.last.as_ref().is_some_and(|last| last.at == at) {
            state.last = None;
        }
    });
}

/// Resolves `trace`'s symbols (slow: it reads debug info) and renders it.
fn rendered(trace: &Trace, max_bytes: usize) -> (String, bool) {
    let backtraces = trace.resolve_backtraces();
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
    render(&leaves, max_bytes)
}
