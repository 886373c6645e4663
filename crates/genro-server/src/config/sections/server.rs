//! `[server]`: its struct, its defaults (`Default`), and `read`.

use std::{path::PathBuf, time::Duration};

use crate::config::{
    resolver::Resolver,
    value::{BACKLOG, BOOLEAN, COUNT, HOST, PATH, PORT},
};

/// `[server]`: where and how to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerSection {
    /// Address to bind (`host`).
    pub host: String,
    /// Port (`port`); 0 picks a free port.
    pub port: u16,
    /// Tokio worker threads (`workers`); 0 means one per CPU.
    pub workers: usize,
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
            reuse_port: r.get(s, "reuse_port", d.reuse_port, &BOOLEAN),
            backlog: r.get(s, "backlog", d.backlog, &BACKLOG),
            pid_file: r.get(s, "pid_file", d.pid_file, &PATH),
            upgrade_executable: r.get(s, "upgrade_executable", d.upgrade_executable, &PATH),
            upgrade_timeout: r.positive(s, "upgrade_timeout", d.upgrade_timeout),
        }
    }
}
