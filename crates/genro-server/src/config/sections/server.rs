//! `[server]`: its struct, its defaults (`Default`), and `read`.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use crate::config::{
    resolver::Resolver,
    value::{self, BACKLOG, BOOLEAN, COUNT, HOST, PATH, PORT},
};

/// How [`run`](crate::AsgiServer::run) lays its `workers` out on threads (`[server] runtime`).
///
/// - **`per_core`** (the default): one single-threaded tokio runtime per worker, as actix-web
///   runs its workers. Each accepted connection goes to the next worker in turn and stays
///   there with every task it spawns, so a request never wakes another thread; over HTTP/2,
///   where hyper runs each stream as a task of its own, that is most of the difference (see
///   the README's benchmarks). The thread that called `run` is the first worker and also runs
///   the server's own parts (signals, the watchdog, the export port, the console). A handler
///   that blocks its thread holds up the other connections of its worker only; it cannot call
///   `tokio::task::block_in_place` (tokio allows it only on a multi-threaded runtime): use
///   `spawn_blocking` or the server's [executors](crate::executor) for blocking work.
/// - **`work_stealing`**: one tokio multi-threaded runtime of `workers` threads, tokio's own
///   default: idle threads take tasks from busy ones, so a few slow or blocking requests are
///   spread out; `block_in_place` works. Every task may move between threads, which costs a
///   cross-thread wake-up where `per_core` has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Runtime {
    /// One single-threaded runtime per worker, connections spread between them.
    #[default]
    PerCore,
    /// One multi-threaded, work-stealing runtime of `workers` threads.
    WorkStealing,
}

impl FromStr for Runtime {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "per_core" => Ok(Self::PerCore),
            "work_stealing" => Ok(Self::WorkStealing),
            _ => Err("per_core or work_stealing".to_owned()),
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PerCore => "per_core",
            Self::WorkStealing => "work_stealing",
        })
    }
}

/// `[server]`: where and how to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerSection {
    /// Address to bind (`host`).
    pub host: String,
    /// Port (`port`); 0 picks a free port.
    pub port: u16,
    /// Worker threads (`workers`); 0 means one per CPU.
    pub workers: usize,
    /// How `run` lays the workers out on threads (`runtime`): [`Runtime::PerCore`] or
    /// [`Runtime::WorkStealing`].
    pub runtime: Runtime,
    /// Development defaults (`debug`): tracebacks in error bodies, DEBUG logs, readable logs.
    pub debug: bool,
    /// Bind with `SO_REUSEPORT` (`reuse_port`), so that another instance can bind the same port
    /// and the two overlap during a restart; the kernel spreads new connections between them.
    pub reuse_port: bool,
    /// The listen queue (`backlog`): connections the kernel holds until they are
    /// accepted (capped by `net.core.somaxconn`).
    pub backlog: u32,
    /// A file the serving process writes its pid to (`pid_file`); after an upgrade it names
    /// the new process.
    pub pid_file: Option<PathBuf>,
    /// The executable an upgrade starts (`upgrade_executable`); unset, the one this process was
    /// started from, as it is on disk at the time of the upgrade.
    pub upgrade_executable: Option<PathBuf>,
    /// Longest an upgrade waits for the new process to be ready (`upgrade_timeout`); past
    /// it the new process is stopped and this one keeps serving.
    pub upgrade_timeout: Duration,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            workers: 0,
            runtime: Runtime::PerCore,
            debug: false,
            reuse_port: false,
            backlog: 1024,
            pid_file: None,
            upgrade_executable: None,
            upgrade_timeout: Duration::from_secs(30),
        }
    }
}

/// One per CPU for a setting of 0, else the setting.
pub(super) fn per_cpu(setting: usize) -> usize {
    match setting {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    }
}

impl ServerSection {
    /// The tokio worker threads `workers` asks for: one per CPU for 0.
    #[must_use]
    pub fn worker_threads(&self) -> usize {
        per_cpu(self.workers)
    }

    pub(crate) fn read(r: &mut Resolver<'_>) -> Self {
        let d = Self::default();
        let s = "server";
        Self {
            debug: r.get(s, "debug", d.debug, &BOOLEAN),
            host: r.get(s, "host", d.host, &HOST),
            port: r.get(s, "port", d.port, &PORT),
            workers: r.get(s, "workers", d.workers, &COUNT),
            runtime: r.get(s, "runtime", d.runtime, &value::parsed::<Runtime>()),
            reuse_port: r.get(s, "reuse_port", d.reuse_port, &BOOLEAN),
            backlog: r.get(s, "backlog", d.backlog, &BACKLOG),
            pid_file: r.get(s, "pid_file", d.pid_file, &PATH),
            upgrade_executable: r.get(s, "upgrade_executable", d.upgrade_executable, &PATH),
            upgrade_timeout: r.positive(s, "upgrade_timeout", d.upgrade_timeout),
        }
    }
}
