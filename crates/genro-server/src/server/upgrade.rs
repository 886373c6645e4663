//! The zero-downtime upgrade (SIGUSR2, or [`ServerHandle::upgrade`](super::ServerHandle)): the
//! server starts a new process of its executable with its listening sockets, waits until that
//! process accepts on them, then drains itself and exits. The sockets never close, so no
//! connection is refused: until the old process stops accepting, the kernel hands each new
//! connection to one of the two.
//!
//! The sockets go to the new process by systemd's socket-activation protocol (descriptors 3,
//! 4, … with `LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`; see `listen`), so the new process
//! starts exactly as under systemd. command-fds (a small crate for placing descriptors in a
//! child, the one unsafe step being its own) puts them at those numbers. `LISTEN_PID` must be
//! the new process's own pid, known only once it runs: `/bin/sh` sets it to its own pid (`$$`)
//! and `exec`s the executable, which keeps that pid.
//!
//! The new process says it is ready with a datagram (`READY=1`, as in systemd's protocol) to a
//! socket the old one listens on, named by `GENRO_UPGRADE_NOTIFY`. The old one waits for that,
//! for the new process to exit (it failed to start: the old one keeps serving, and has reaped
//! it), or for `[server] upgrade_timeout` (the new process is killed and reaped).

use std::{
    ffi::OsString,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use command_fds::{CommandFdExt, FdMapping};
use tokio::process::Child;

use super::listen::{descriptor, Listeners};
use crate::config::Config;

/// The variable that names the socket a new process reports ready to.
pub(crate) const NOTIFY: &str = "GENRO_UPGRADE_NOTIFY";

/// What the server needs to start its successor: the executable and arguments, and a copy of
/// each listening socket.
#[derive(Debug)]
pub(crate) struct Upgrader {
    executable: PathBuf,
    args: Vec<OsString>,
    sockets: Vec<(&'static str, OwnedFd)>,
    timeout: Duration,
}

impl Upgrader {
    /// Copies of `listeners`' sockets, and `[server] upgrade_executable` or this process's own
    /// executable, resolved now: once a new build replaces the file, `/proc/self/exe` no longer
    /// names it.
    pub(crate) fn new(config: &Config, listeners: &Listeners) -> Result<Self, String> {
        let executable = match &config.server.upgrade_executable {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("upgrade: cannot find this executable: {e}"))?,
        };
        let sockets = listeners
            .named()
            .map(|(name, listener)| {
                socket2::SockRef::from(listener)
                    .try_clone()
                    .map(|copy| (name, OwnedFd::from(copy)))
                    .map_err(|e| format!("upgrade: cannot keep the {name} socket: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            executable,
            args: std::env::args_os().skip(1).collect(),
            sockets,
            timeout: config.server.upgrade_timeout,
        })
    }

    /// Starts the new process and waits until it is ready: its pid. On an error (it cannot be
    /// started, exits, or is not ready within `upgrade_timeout`) it is stopped and reaped, and
    /// the error says why. Dropped before it ends (the server is stopping), it kills the new
    /// process.
    pub(crate) async fn start(&self) -> Result<u32, String> {
        static UPGRADES: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "genro-upgrade-{}-{}.sock",
            std::process::id(),
            UPGRADES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let notify = tokio::net::UnixDatagram::bind(&path)
            .map_err(|e| format!("upgrade: cannot listen on {}: {e}", path.display()))?;
        let _remove = RemoveOnDrop(&path);
        let mut child = KillOnDrop(Some(self.spawn(&path)?));
        let pid = child.0.as_ref().and_then(Child::id).unwrap_or_default();
        tracing::info!(
            pid,
            executable = %self.executable.display(),
            "upgrade: new process started; waiting until it is ready"
        );
        let outcome = tokio::select! {
            received = ready(&notify) => received.map_err(|e| format!("upgrade: cannot hear from the new process {pid}: {e}")),
            status = child.wait() => Err(format!(
                "upgrade: the new process {pid} exited before it was ready ({})",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            )),
            () = tokio::time::sleep(self.timeout) => Err(format!(
                "upgrade: the new process {pid} was not ready within server.upgrade_timeout \
                 ({:?}); it was stopped",
                self.timeout
            )),
        };
        match outcome {
            Ok(()) => {
                // It serves on: no longer ours to kill.
                child.0 = None;
                Ok(pid)
            }
            Err(e) => {
                child.kill_and_reap().await;
                Err(e)
            }
        }
    }

    /// Starts the new process with the sockets as `LISTEN_FDS` and `notify` to report ready
    /// to.
    fn spawn(&self, notify: &Path) -> Result<Child, String> {
        let mut mappings = Vec::with_capacity(self.sockets.len());
        for (index, (name, fd)) in self.sockets.iter().enumerate() {
            mappings.push(FdMapping {
                parent_fd: fd
                    .try_clone()
                    .map_err(|e| format!("upgrade: cannot pass the {name} socket: {e}"))?,
                child_fd: descriptor(index),
            });
        }
        let names: Vec<&str> = self.sockets.iter().map(|(name, _)| *name).collect();
        let mut command = tokio::process::Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(
                "LISTEN_PID=$$; export LISTEN_PID; \
                 if [ -n \"${WATCHDOG_USEC:-}\" ]; then WATCHDOG_PID=$$; export WATCHDOG_PID; fi; \
                 exec \"$0\" \"$@\"",
            )
            .arg(&self.executable)
            .args(&self.args)
            .env("LISTEN_FDS", self.sockets.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env(NOTIFY, notify)
            .env_remove("LISTEN_PID")
            .fd_mappings(mappings)
            .map_err(|e| format!("upgrade: {e}"))?;
        // The command holds the copies of the sockets until it is dropped, at the end of this
        // function.
        command
            .spawn()
            .map_err(|e| format!("upgrade: cannot start {}: {e}", self.executable.display()))
    }
}

/// Waits for `READY=1` on `notify`.
async fn ready(notify: &tokio::net::UnixDatagram) -> std::io::Result<()> {
    let mut message = [0u8; 64];
    loop {
        let n = notify.recv(&mut message).await?;
        if message[..n].split(|&b| b == b'\n').any(|l| l == b"READY=1") {
            return Ok(());
        }
    }
}

/// The new process until it is ready: killed if the upgrade fails or is dropped.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match &mut self.0 {
            Some(child) => child.wait().await,
            None => std::future::pending().await,
        }
    }

    async fn kill_and_reap(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            // tokio reaps it once it has exited.
            let _ = child.start_kill();
        }
    }
}

/// Removes the ready socket's file.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// Where a process started by an upgrade reports ready (taken from the environment at start-up).
#[derive(Debug)]
pub(crate) struct UpgradeNotify(PathBuf);

impl UpgradeNotify {
    pub(crate) fn from_env() -> Option<Self> {
        std::env::var_os(NOTIFY).map(|path| Self(PathBuf::from(path)))
    }

    /// Tells the process that started this one: ready.
    pub(crate) fn ready(self) {
        let sent = std::os::unix::net::UnixDatagram::unbound()
            .and_then(|socket| socket.send_to(b"READY=1\n", &self.0));
        if let Err(e) = sent {
            tracing::warn!(error = %e, "upgrade: cannot tell the old process this one is ready");
        }
    }
}
