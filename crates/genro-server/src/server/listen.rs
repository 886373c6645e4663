//! The listening sockets: bound from the configuration (with `SO_REUSEPORT` and a listen queue
//! when asked), or inherited through systemd's socket-activation protocol, which is also how an
//! upgrade hands them to the new process.
//!
//! The protocol: the sockets are descriptors 3, 4, … of the process; `LISTEN_FDS` counts them,
//! `LISTEN_PID` names the process they are meant for, and `LISTEN_FDNAMES` names each, colon
//! separated. The server knows three names: `main` (the main port), `metrics` (`[metrics]
//! export_port`) and `debug` (the debug console). A single socket with any other name (systemd
//! names a socket after its unit unless `FileDescriptorName=` says otherwise) is the main port.
//! A port with no socket inherited is bound as configured.
//!
//! The variables are checked here first: the crates that read them (listenfd, sd-notify) yield
//! no socket at all when `LISTEN_PID` names another process, and a service started with
//! sockets it cannot use should stop with the reason, not bind ports of its own behind the
//! socket unit's back. listenfd then takes each descriptor (checked to be a TCP socket, marked
//! close-on-exec so that the server's own child processes do not hold the port open, and
//! `LISTEN_FDS`/`LISTEN_PID` removed from the environment); socket2 checks that it listens,
//! and binds the sockets that are not inherited.
//!
//! [`AsgiServer::run`](crate::AsgiServer::run) takes the sockets before it starts its runtime's
//! threads, since the environment is changed; `serve` takes them when it starts.

use std::net::SocketAddr;

use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::TcpListener;

use super::startup::StartError;
use crate::{
    config::{Config, ServerSection},
    state::ListenAddrs,
};

/// The names an inherited socket can have.
const SOCKET_NAMES: [&str; 3] = ["main", "metrics", "debug"];

/// The listening sockets: the main port, and the metrics' and the debug console's own ports
/// when configured.
pub(crate) struct Listeners {
    pub(crate) main: TcpListener,
    pub(crate) export: Option<TcpListener>,
    pub(crate) debug: Option<TcpListener>,
}

impl Listeners {
    /// The sockets `config` asks for: `inherited` where the environment passed them, else bound.
    pub(crate) async fn open(
        config: &Config,
        mut inherited: Inherited,
    ) -> Result<Self, StartError> {
        if !inherited.sockets.is_empty() {
            tracing::info!(
                sockets = %inherited.describe(),
                "serving on inherited sockets (LISTEN_FDS)"
            );
        }
        let server = &config.server;
        let main = inherited
            .take_or_bind(
                "main",
                "server.host/server.port",
                &server.host,
                server.port,
                server,
            )
            .await?;
        let export = match (config.metrics.enabled, config.metrics.export_port) {
            (true, Some(port)) => Some(
                inherited
                    .take_or_bind("metrics", "metrics.export_port", &server.host, port, server)
                    .await?,
            ),
            _ => None,
        };
        let debug = match &config.debug {
            debug if debug.enabled => Some(
                inherited
                    .take_or_bind(
                        "debug",
                        "debug.host/debug.debug_port",
                        &debug.host,
                        debug.debug_port,
                        server,
                    )
                    .await?,
            ),
            _ => None,
        };
        inherited.finish()?;
        Ok(Self {
            main,
            export,
            debug,
        })
    }

    /// Each socket with the name it is inherited by.
    pub(crate) fn named(&self) -> impl Iterator<Item = (&'static str, &TcpListener)> {
        [
            ("main", Some(&self.main)),
            ("metrics", self.export.as_ref()),
            ("debug", self.debug.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, listener)| Some((name, listener?)))
    }

    pub(crate) fn bound(&self) -> ListenAddrs {
        ListenAddrs {
            main: self.main.local_addr().ok(),
            export: self.export.as_ref().and_then(|l| l.local_addr().ok()),
            debug: self.debug.as_ref().and_then(|l| l.local_addr().ok()),
        }
    }
}

/// Binds `host:port` (each address the host resolves to, in turn) with the server's socket
/// options: `SO_REUSEADDR` (a restart binds at once, whatever connections of the last run are
/// still closing), `SO_REUSEPORT` when `[server] reuse_port` is on, and `[server] backlog`.
async fn bind(
    what: &'static str,
    host: &str,
    port: u16,
    server: &ServerSection,
) -> Result<TcpListener, StartError> {
    let addr = format!("{host}:{port}");
    let failed = |source| StartError::Bind {
        what,
        addr: addr.clone(),
        source,
    };
    let mut last = None;
    for candidate in tokio::net::lookup_host(&addr).await.map_err(failed)? {
        match listen(candidate, server) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(failed(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address")
    })))
}

fn listen(addr: SocketAddr, server: &ServerSection) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if server.reuse_port {
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        #[cfg(not(unix))]
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "server.reuse_port: SO_REUSEPORT exists only on Unix",
        ));
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(server.backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// The sockets the environment passes, by name.
#[derive(Debug)]
pub(crate) struct Inherited {
    sockets: Vec<(String, Option<std::net::TcpListener>)>,
}

impl Inherited {
    /// Takes the sockets the environment passes (none when `LISTEN_FDS` is not set).
    pub(crate) fn from_env() -> Result<Self, StartError> {
        let var = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        let passed = parse_listen_env(
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
            std::process::id(),
        )
        .map_err(StartError::Setup)?;
        if passed.is_empty() {
            return Ok(Self {
                sockets: Vec::new(),
            });
        }
        let mut fds = listenfd::ListenFd::from_env();
        let mut sockets = Vec::with_capacity(passed.len());
        for (index, name) in passed.into_iter().enumerate() {
            let listener = adopt(&mut fds, index, &name).map_err(StartError::Setup)?;
            sockets.push((name, Some(listener)));
        }
        one_socket_each(&sockets).map_err(StartError::Setup)?;
        Ok(Self { sockets })
    }

    fn describe(&self) -> String {
        self.sockets
            .iter()
            .map(|(name, l)| {
                let addr = l.as_ref().and_then(|l| l.local_addr().ok());
                format!(
                    "{name}={}",
                    addr.map_or_else(String::new, |a| a.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The socket inherited as `name`, else a new one bound to `host:port` (`what` names the
    /// keys that set them).
    async fn take_or_bind(
        &mut self,
        name: &str,
        what: &'static str,
        host: &str,
        port: u16,
        server: &ServerSection,
    ) -> Result<TcpListener, StartError> {
        let found =
            self.sockets
                .iter_mut()
                .find_map(|(n, listener)| if n == name { listener.take() } else { None });
        match found {
            Some(listener) => TcpListener::from_std(listener).map_err(|e| {
                StartError::Setup(format!(
                    "LISTEN_FDS: the socket {name:?} cannot be served: {e}"
                ))
            }),
            None => bind(what, host, port, server).await,
        }
    }

    /// Fails on a socket no port took: a name the server does not know, or a port the
    /// configuration leaves off.
    fn finish(self) -> Result<(), StartError> {
        let left: Vec<_> = self
            .sockets
            .iter()
            .filter(|(_, l)| l.is_some())
            .map(|(name, _)| name.as_str())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        Err(StartError::Setup(format!(
            "LISTEN_FDNAMES: inherited socket(s) {left:?} not used: the server takes `main`, \
             `metrics` (with [metrics] export_port set) and `debug` (with [debug] enabled); name \
             each socket with FileDescriptorName= in the socket unit"
        )))
    }
}

/// Fails when one socket is passed under two names (two descriptors of it, a `dup`): each port
/// would accept from the same queue, the application's and the console's connections alike.
fn one_socket_each(sockets: &[(String, Option<std::net::TcpListener>)]) -> Result<(), String> {
    let identities: Vec<_> = sockets
        .iter()
        .map(|(_, listener)| listener.as_ref().and_then(identity))
        .collect();
    for (j, b) in identities.iter().enumerate() {
        for (i, a) in identities[..j].iter().enumerate() {
            if a.is_some() && a == b {
                return Err(format!(
                    "LISTEN_FDS: the sockets {:?} (descriptor {}) and {:?} (descriptor {}) are one \
                     socket passed twice: each port needs a socket of its own",
                    sockets[i].0,
                    descriptor(i),
                    sockets[j].0,
                    descriptor(j)
                ));
            }
        }
    }
    Ok(())
}

/// What a descriptor refers to (the device and inode `fstat` gives a socket): shared by every
/// descriptor of one socket.
#[cfg(unix)]
fn identity(listener: &std::net::TcpListener) -> Option<(u64, u64)> {
    use std::os::{fd::AsFd, unix::fs::MetadataExt};
    let descriptor = listener.as_fd().try_clone_to_owned().ok()?;
    let metadata = std::fs::File::from(descriptor).metadata().ok()?;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::net::TcpListener) -> Option<(u64, u64)> {
    None
}

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// The names of the sockets the variables pass, in descriptor order; none when `LISTEN_FDS` is
/// not set. An error names the variable and what is wrong with it.
fn parse_listen_env(
    fds: Option<&str>,
    pid: Option<&str>,
    names: Option<&str>,
    own_pid: u32,
) -> Result<Vec<String>, String> {
    let Some(fds) = fds else {
        return Ok(Vec::new());
    };
    let count: usize = digits(fds)
        .and_then(|fds| fds.parse().ok())
        .filter(|n| (1..=SOCKET_NAMES.len()).contains(n))
        .ok_or_else(|| {
            format!(
                "LISTEN_FDS: {fds:?} is not a count of sockets from 1 to {}",
                SOCKET_NAMES.len()
            )
        })?;
    match pid {
        None => {
            return Err(
                "LISTEN_FDS is set without LISTEN_PID: the sockets may be meant for another \
                 process"
                    .to_owned(),
            )
        }
        Some(pid) if digits(pid).and_then(|pid| pid.parse::<u32>().ok()) != Some(own_pid) => {
            return Err(format!(
                "LISTEN_PID: the sockets are meant for process {pid:?}, and this is {own_pid}"
            ))
        }
        Some(_) => {}
    }
    let mut names: Vec<String> = match names {
        Some(names) => names.split(':').map(str::to_owned).collect(),
        None => SOCKET_NAMES
            .iter()
            .take(count)
            .map(|&n| n.to_owned())
            .collect(),
    };
    if names.len() != count {
        return Err(format!(
            "LISTEN_FDNAMES: {} name(s) for LISTEN_FDS={count} socket(s)",
            names.len()
        ));
    }
    let unknown: Vec<_> = names
        .iter()
        .filter(|n| !SOCKET_NAMES.contains(&n.as_str()))
        .collect();
    if count == 1 && !unknown.is_empty() {
        // One socket under systemd's default name (the unit's): the main port.
        names[0] = "main".to_owned();
    } else if !unknown.is_empty() {
        return Err(format!(
            "LISTEN_FDNAMES: unknown socket name(s) {unknown:?}: the server takes `main`, \
             `metrics` and `debug` (FileDescriptorName= in the socket unit)"
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(format!("LISTEN_FDNAMES: {name:?} names two sockets"));
        }
    }
    Ok(names)
}

/// `value` when it is a decimal number written with digits alone, as systemd writes these
/// variables (Rust's integer parse also takes a sign: `+1234`).
fn digits(value: &str) -> Option<&str> {
    (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())).then_some(value)
}

/// The descriptor of the inherited socket at `index`.
pub(crate) fn descriptor(index: usize) -> i32 {
    FIRST_FD + i32::try_from(index).unwrap_or(i32::MAX)
}

/// Takes the inherited socket at `index`, once it is checked to be a listening TCP socket.
fn adopt(
    fds: &mut listenfd::ListenFd,
    index: usize,
    name: &str,
) -> Result<std::net::TcpListener, String> {
    let fd = descriptor(index);
    let wrong = |why: String| format!("LISTEN_FDS: the socket {name:?} (descriptor {fd}) {why}");
    let listener = fds
        .take_tcp_listener(index)
        .map_err(|e| wrong(format!("is not a TCP socket: {e}")))?
        .ok_or_else(|| wrong("is missing".into()))?;
    let socket = SockRef::from(&listener);
    #[cfg(target_os = "linux")]
    if !socket.is_listener().unwrap_or(false) {
        return Err(wrong("is not listening".into()));
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| wrong(format!("cannot be served: {e}")))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::parse_listen_env;

    #[test]
    fn the_variables_name_the_sockets_or_say_what_is_wrong() {
        assert_eq!(
            parse_listen_env(None, None, None, 7).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            parse_listen_env(Some("1"), Some("7"), None, 7).unwrap(),
            ["main"]
        );
        assert_eq!(
            parse_listen_env(Some("2"), Some("7"), Some("debug:main"), 7).unwrap(),
            ["debug", "main"]
        );
        // systemd's default name (the unit's) for the one socket: the main port.
        assert_eq!(
            parse_listen_env(Some("1"), Some("7"), Some("app.socket"), 7).unwrap(),
            ["main"]
        );
        let err = |fds, pid, names| parse_listen_env(Some(fds), pid, names, 7).unwrap_err();
        assert!(err("1", Some("8"), None).contains("meant for process \"8\""));
        assert!(err("1", None, None).contains("without LISTEN_PID"));
        assert!(err("x", Some("7"), None).contains("LISTEN_FDS"));
        assert!(err("0", Some("7"), None).contains("LISTEN_FDS"));
        assert!(err("2", Some("7"), Some("main")).contains("1 name(s) for LISTEN_FDS=2"));
        assert!(err("2", Some("7"), Some("main:admin")).contains("\"admin\""));
        assert!(err("2", Some("7"), Some("main:main")).contains("names two sockets"));
        // Digits only, as systemd writes them.
        assert!(err("1", Some("+7"), None).contains("meant for process \"+7\""));
        assert!(err("1", Some(" 7"), None).contains("meant for process"));
        assert!(err("+1", Some("7"), None).contains("LISTEN_FDS: \"+1\""));
    }
}
