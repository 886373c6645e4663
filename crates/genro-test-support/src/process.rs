//! A server binary run as a real process: started with its stdout piped (it prints the address
//! it listens on), signalled with `kill`, read through its log file, and killed when dropped.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// A fresh, empty directory for one test: `genro-<name>-<pid>` in the system's temp dir.
#[must_use]
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genro-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".stderr");
    PathBuf::from(name)
}

/// Sends the signal `name` (`TERM`, `INT`, `HUP`, `USR2`) to process `pid` with `kill`.
///
/// # Panics
///
/// When `kill` fails (no such process).
pub fn signal(name: &str, pid: u32) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{name} {pid} failed");
}

/// A running server process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `command` and waits (up to 20 s) for the first line on its stdout that names an
    /// `http://` or `https://` address. `log` is the file the server logs to; its stderr goes
    /// beside it, to `<log>.stderr` ([`stderr`](Self::stderr)).
    #[must_use]
    pub fn spawn(mut command: Command, log: PathBuf) -> Self {
        let stderr = std::fs::File::create(stderr_path(&log)).unwrap();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Drains stdout for the life of the process, so that the server never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = address_in(&line) {
                    let _ = tx.send(addr);
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(20)) else {
            let exited = child.try_wait().ok().flatten();
            panic!(
                "no address printed (exited: {exited:?}); log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        };
        Self { child, log, addr }
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://ADDRESS` followed by `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file it logs to.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What it wrote on stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(stderr_path(&self.log)).unwrap_or_default()
    }

    /// Sends the signal `name` (`TERM`, `INT`, `HUP`) with `kill`.
    pub fn signal(&self, name: &str) {
        signal(name, self.pid());
    }

    /// Waits (up to 10 s) until the log holds `needle`; returns the log.
    #[allow(
        clippy::must_use_candidate,
        reason = "most callers only wait for the line"
    )]
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_until_holds(|| self.log(), needle, "logged")
    }

    /// Waits (up to 10 s) until its stderr holds `needle`; returns what it wrote there.
    #[allow(
        clippy::must_use_candidate,
        reason = "most callers only wait for the line"
    )]
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        wait_until_holds(|| self.stderr(), needle, "on stderr")
    }

    /// Its exit status and how long it took to exit, or `None` if it still runs after `limit`.
    pub fn exit_within(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some((status, started.elapsed()));
            }
            if started.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// As [`exit_within`](Self::exit_within), failing the test if it does not exit in time.
    pub fn wait(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        self.exit_within(limit)
            .unwrap_or_else(|| panic!("the server did not exit within {limit:?}"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `text` every 20 ms, for up to 10 s, until it holds `needle`.
fn wait_until_holds(text: impl Fn() -> String, needle: &str, place: &str) -> String {
    let started = Instant::now();
    loop {
        let now = text();
        if now.contains(needle) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{needle:?} not {place}:\n{now}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The address in `http://127.0.0.1:8000/...` or `https://[::1]:8443`, if the line has one.
fn address_in(line: &str) -> Option<SocketAddr> {
    let at = line
        .find("http://")
        .map(|i| i + 7)
        .or_else(|| line.find("https://").map(|i| i + 8))?;
    let rest = &line[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
