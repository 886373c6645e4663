//! `[server] runtime = per_core`: the worker threads beyond the first, each with a
//! single-threaded tokio runtime of its own that runs the connections the main port hands it
//! (see [`Runtime`](crate::config::Runtime)). The thread that called `run` is the first worker.

use std::thread::JoinHandle;

use tokio::{runtime, sync::oneshot};

use crate::server::startup::StartError;

/// The extra worker threads, running until [`stop`](Self::stop).
#[derive(Debug)]
pub(super) struct WorkerThreads {
    threads: Vec<(JoinHandle<()>, oneshot::Sender<()>)>,
    handles: Vec<runtime::Handle>,
}

impl WorkerThreads {
    /// Starts `count` threads, each blocked on its own runtime until it is told to stop.
    pub(super) fn start(count: usize) -> Result<Self, StartError> {
        let mut workers = Self {
            threads: Vec::with_capacity(count),
            handles: Vec::with_capacity(count),
        };
        for index in 1..=count {
            let cannot = |e: std::io::Error| {
                StartError::Setup(format!(
                    "server.workers: cannot start worker {}: {e}",
                    index + 1
                ))
            };
            let runtime = runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(cannot)?;
            workers.handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("genro-worker-{}", index + 1))
                .spawn(move || {
                    // Its connections run while this waits; when it returns, the runtime is
                    // dropped with whatever the drain left (nothing, unless it was cut short).
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })
                .map_err(cannot)?;
            workers.threads.push((thread, stop));
        }
        Ok(workers)
    }

    /// The workers' runtimes, for the main port to spawn connections on.
    pub(super) fn handles(&self) -> Vec<runtime::Handle> {
        self.handles.clone()
    }

    /// Ends every worker's runtime and waits for its thread.
    pub(super) fn stop(self) {
        drop(self.handles);
        for (thread, stop) in self.threads {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}
